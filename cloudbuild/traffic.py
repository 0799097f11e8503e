"""`python -m cloudbuild traffic split|rollback`: a server-side A/B split on Cloud Run.

For sites without an A/B framework of their own. `split` sends the API's traffic
to the experiment's variants by their weights in auth/experiment.yaml, through
each branch's revision tag; `rollback` sends all of it back to the production
branch's tag. Both run `gcloud run services update-traffic` with your own
credentials, after checking every tag exists, so a typo never half-applies.

Know what this split is: Cloud Run picks a revision per request, at random, so a
user is not kept on one variant and the site has no exposure log to analyse.
That is fine for a canary; for an experiment, use the gateway routes and the
reference client (auth/abclient), which assign users stickily and log exposures.
A production deploy sends all traffic to the production tag again, ending a split.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cloudbuild.cli_common import PROG, add_config_argument
from cloudbuild.config import Config, ConfigError, load
from cloudbuild.experiment import EXPERIMENT_FILE, ExperimentError, load_file, tag_urls
from cloudbuild.names import slug


def split_targets(config: Config, experiment_file: Path) -> dict[str, int]:
    """Revision tag -> percent, for each variant with a weight."""
    experiment = load_file(experiment_file, config)
    if experiment is None:
        raise ExperimentError(f"{experiment_file} declares no experiment: nothing to split")
    return {slug(v.branch): v.weight for v in experiment.variants if v.weight > 0}


def rollback_targets(config: Config) -> dict[str, int]:
    return {slug(config.production_branch): 100}


def _gcloud(config: Config, *args: str) -> list[str]:
    return ["gcloud", *args, f"--project={config.gcp_project_id}", f"--region={config.region}"]


def update_traffic_command(config: Config, targets: dict[str, int]) -> list[str]:
    to_tags = ",".join(f"{tag}={percent}" for tag, percent in targets.items())
    service = f"{config.project_name}-api"
    return _gcloud(config, "run", "services", "update-traffic", service, f"--to-tags={to_tags}")


def _missing_tags(config: Config, targets: dict[str, int]) -> list[str]:
    described = subprocess.run(
        _gcloud(config, "run", "services", "describe", f"{config.project_name}-api")
        + ["--format=json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if described.returncode != 0:
        raise ExperimentError(f"cannot describe the API service:\n{described.stderr.strip()}")
    deployed = tag_urls(json.loads(described.stdout))
    return [tag for tag in targets if tag not in deployed]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} traffic",
        description="Split the API's Cloud Run traffic across the experiment's branches.",
    )
    add_config_argument(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the gcloud command only")
    commands = parser.add_subparsers(dest="command", required=True)
    split = commands.add_parser("split", help="traffic by the weights in auth/experiment.yaml")
    split.add_argument("--file", type=Path, default=EXPERIMENT_FILE)
    commands.add_parser("rollback", help="all traffic to the production branch's revision")
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
        targets = (
            split_targets(config, args.file)
            if args.command == "split"
            else rollback_targets(config)
        )
        command = update_traffic_command(config, targets)
        if args.dry_run:
            print(shlex.join(command))
            return 0
        missing = _missing_tags(config, targets)
        if missing:
            raise ExperimentError(
                f"no revision tagged {', '.join(missing)} on {config.project_name}-api; "
                "push those branches first so their api pipelines deploy them"
            )
    except (ConfigError, ExperimentError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("+ " + shlex.join(command), flush=True)
    return subprocess.run(command, check=False).returncode
