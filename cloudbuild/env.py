"""`python -m cloudbuild env`: the names and settings a build's shell steps use.

The first step of every pipeline writes this file and later steps `source` it, so
no step recomputes a name or holds a project value. The raw branch name is not
in it: steps read that only from BRANCH_NAME, as data.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path

from cloudbuild.cli_common import PROG, add_config_argument, checked
from cloudbuild.config import Config, load
from cloudbuild.names import Names, check_branch, check_sha, names
from cloudbuild.openapi import esp_version
from cloudbuild.triggers import trigger_name

# Deployed once, privately, to reserve the gateway's URL before its spec can name it;
# the same build replaces it with the real gateway.
GATEWAY_PLACEHOLDER_IMAGE = "us-docker.pkg.dev/cloudrun/container/hello"
# Cloud Run sends a revision traffic only once this probe passes. The API's health
# route answers only after the model is loaded (api/main.py), so no request meets a
# cold model: probed every second, for up to two minutes of start-up.
API_STARTUP_PROBE = "httpGet.path=/health,periodSeconds=1,timeoutSeconds=1,failureThreshold=120"


def variables(config: Config, n: Names) -> dict[str, str]:
    found = {
        key.upper(): value
        for key, value in n.as_dict().items()
        if key != "branch" and isinstance(value, str)
    }
    labels = ",".join(f"{k}={v}" for k, v in sorted(n.vertex_labels.items()))
    found.update(
        PROJECT=config.gcp_project_id,
        REGION=config.region,
        IS_PRODUCTION="true" if n.is_production else "false",
        GATEWAY_ENABLED="true" if config.gateway_enabled else "false",
        RUN_SA=config.service_account("run"),
        GW_SA=config.service_account("gw"),
        RUN_LABELS=labels,
        API_TRIGGER=trigger_name(config, "api"),
        API_CPU=config.api.cpu,
        API_MEMORY=config.api.memory,
        API_CONCURRENCY=str(config.api.concurrency),
        API_MIN_INSTANCES=str(config.api.min_instances),
        API_MAX_INSTANCES=str(config.api.max_instances),
        API_STARTUP_PROBE=API_STARTUP_PROBE,
        GATEWAY_IMAGE_REPO=f"{config.registry}/{config.project_name}-gateway",
        GATEWAY_PLACEHOLDER_IMAGE=GATEWAY_PLACEHOLDER_IMAGE,
        ESP_VERSION=esp_version(),
    )
    return dict(sorted(found.items()))


def render(found: dict[str, str]) -> str:
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in found.items())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} env", description="Write the build's names as shell variables."
    )
    parser.add_argument("--branch", required=True, type=checked(check_branch))
    parser.add_argument("--sha", required=True, type=checked(check_sha))
    parser.add_argument("--out", type=Path, help="write here (default: print)")
    add_config_argument(parser)
    args = parser.parse_args(argv)
    config = load(args.config)
    text = render(variables(config, names(config, args.branch, args.sha)))
    if args.out is None:
        print(text, end="")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0
