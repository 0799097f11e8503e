"""The Cloud Build triggers, made from PIPELINES and project.yaml.

`python -m cloudbuild triggers` prints the file `gcloud builds triggers import
--source=FILE` takes (one YAML document per trigger); `make bootstrap` imports it.
Importing is idempotent by trigger name, so re-running bootstrap applies changes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import yaml

from cloudbuild.builders import BUILDERS
from cloudbuild.cli_common import PROG, add_config_argument
from cloudbuild.config import Config, load
from cloudbuild.pipelines import PIPELINES, Pipeline


def trigger_name(config: Config, pipeline: str) -> str:
    return f"{config.project_name}-{pipeline}"


def active_pipelines(config: Config, pipelines: Sequence[Pipeline] = PIPELINES) -> list[Pipeline]:
    """The pipelines this project runs: no auth pipeline without a gateway."""
    return [p for p in pipelines if p.name != "auth" or config.gateway_enabled]


def trigger(config: Config, pipeline: Pipeline) -> dict:
    """One BuildTrigger resource, as the Cloud Build API spells it."""
    return {
        "name": trigger_name(config, pipeline.name),
        "description": pipeline.description,
        # A 1st-gen GitHub trigger needs only the owner and repository: no connection
        # resource to create first (install the Cloud Build GitHub App on the repository).
        "github": {
            "owner": config.github_owner,
            "name": config.github_repository,
            "push": {"branch": pipeline.branch_pattern},
        },
        "filename": pipeline.build_config,
        "includedFiles": list(pipeline.included_files),
        "ignoredFiles": list(pipeline.ignored_files),
        # One identity per pipeline, holding only its own roles (see bootstrap.GRANTS).
        "serviceAccount": (
            f"projects/{config.gcp_project_id}/serviceAccounts/"
            f"{config.service_account(pipeline.name)}"
        ),
        "substitutions": dict(BUILDERS),
    }


def render(config: Config) -> str:
    return yaml.safe_dump_all(
        [trigger(config, p) for p in active_pipelines(config)], sort_keys=False, width=100
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} triggers",
        description="Print the trigger definitions for `gcloud builds triggers import`.",
    )
    add_config_argument(parser)
    args = parser.parse_args(argv)
    print(render(load(args.config)), end="")
    return 0
