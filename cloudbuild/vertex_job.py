"""`train-job`: run the training image as a Vertex AI custom job and wait for it to end.

    python -m cloudbuild train-job --branch B --sha S --data-sha256 HEX
                                   [--data-uri URI] [--job-out PATH]

The job trains on `--data-uri` (default: training.data_uri in project.yaml) and refuses
any data whose sha256 is not `--data-sha256`, the hash the build's fetch step checked.
It writes the model into this commit's model folder, `model_dir_uri(names)`. The step
blocks until the job ends, so the build fails when the job fails (exit 1), and then
promote-model never runs.

Machine, accelerator, replicas and timeout come from project.yaml; the job runs as the
project's "job" service account, which the build's account must be allowed to act as.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.api_core.exceptions import GoogleAPICallError
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform

from cloudbuild.cli_common import PROG, CommandError, add_config_argument, checked
from cloudbuild.config import Config, load
from cloudbuild.models import base_output_dir, model_dir_uri, split_uri
from cloudbuild.names import Names, check_branch, check_sha, names

# Set only by the loopback double (cloudbuild/double); see _connection().
ENDPOINT_VARIABLE = "VERTEX_API_ENDPOINT"
SHA256 = re.compile(r"[0-9a-f]{64}")


class TrainingJobError(RuntimeError):
    """Vertex AI refused the job, or the job did not succeed."""


def custom_job_spec(
    config: Config, names: Names, data_uri: str, data_sha256: str
) -> dict[str, Any]:
    """The arguments of `aiplatform.CustomJob(...)` for this commit's training run."""
    training = config.training
    machine: dict[str, Any] = {"machine_type": training.machine_type}
    if training.accelerator_count:
        machine["accelerator_type"] = training.accelerator_type
        machine["accelerator_count"] = training.accelerator_count
    container = {
        "image_uri": names.training_image,
        # Appended to the image's ENTRYPOINT, `python -m training train`. The branch is
        # passed as data, never through a shell; `--x=value` keeps any value a value.
        "args": [
            f"--data={data_uri}",
            f"--expect-sha256={data_sha256}",
            f"--branch={names.branch}",
            f"--commit={names.sha}",
            f"--data-uri={data_uri}",
        ],
        "env": [
            {"name": "BRANCH_NAME", "value": names.branch},
            {"name": "COMMIT_SHA", "value": names.sha},
        ],
    }
    # Pool 0 is the chief and must have exactly one replica; any more are workers in
    # pool 1 with the same machine and container.
    pools = [{"machine_spec": machine, "replica_count": 1, "container_spec": container}]
    if training.replica_count > 1:
        pools.append({**pools[0], "replica_count": training.replica_count - 1})
    return {
        "display_name": names.vertex_job_display_name,
        "worker_pool_specs": pools,
        "base_output_dir": base_output_dir(names),
        "labels": dict(names.vertex_labels),
    }


def run_training_job(config: Config, names: Names, data_uri: str, data_sha256: str) -> str:
    """Submit the job, wait for it to end, and return its resource name.

    Raises TrainingJobError when Vertex AI refuses the job or the job does not succeed.
    """
    aiplatform.init(
        project=config.gcp_project_id,
        location=config.region,
        staging_bucket=f"gs://{config.bucket}/staging",
        **_connection(),
    )
    job = aiplatform.CustomJob(**custom_job_spec(config, names, data_uri, data_sha256))
    # submit() and wait_for_completion() are what run(sync=True) does, taken apart so a
    # refused request and a failed job each get their own message.
    try:
        job.submit(
            service_account=config.service_account("job"),
            timeout=config.training.timeout_minutes * 60,
        )
    except GoogleAPICallError as error:
        raise TrainingJobError(f"Vertex AI refused the training job: {error.message}") from None
    try:
        job.wait_for_completion()
    except RuntimeError:
        raise TrainingJobError(
            f"Vertex AI job {job.resource_name} ended {job.state.name}: {job.error.message}"
        ) from None
    except GoogleAPICallError as error:
        raise TrainingJobError(
            f"lost track of Vertex AI job {job.resource_name}: {error.message}"
        ) from None
    return job.resource_name


def _connection() -> dict[str, Any]:
    """How to reach Vertex AI: its real endpoint with the build's credentials, or the double.

    VERTEX_API_ENDPOINT exists for the loopback double only (cloudbuild.double sets it):
    plain HTTP through its proxy, anonymous, over REST since the double speaks no gRPC.
    """
    endpoint = os.environ.get(ENDPOINT_VARIABLE)
    if not endpoint:
        return {}
    return {
        "api_endpoint": endpoint,
        "api_transport": "rest",
        "credentials": AnonymousCredentials(),
    }


def _sha256(text: str) -> str:
    if not SHA256.fullmatch(text):
        raise ValueError(f"{text!r} is not a sha256: expected 64 lowercase hex characters")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} train-job",
        description="Train this commit's model as a Vertex AI custom job; wait for it to end.",
    )
    parser.add_argument(
        "--branch", required=True, type=checked(check_branch), help="the branch, as pushed"
    )
    parser.add_argument(
        "--sha", required=True, type=checked(check_sha), help="the full 40-character commit id"
    )
    parser.add_argument(
        "--data-sha256",
        required=True,
        type=checked(_sha256),
        metavar="HEX",
        help="the sha256 the fetch step printed; the job refuses other data",
    )
    parser.add_argument(
        "--data-uri",
        default="",
        metavar="URI",
        help="gs:// object to train on (default, also when empty: training.data_uri)",
    )
    parser.add_argument(
        "--job-out", type=Path, metavar="PATH", help="also write the job's name to this file"
    )
    add_config_argument(parser)
    args = parser.parse_args(argv)

    config = load(args.config)
    data_uri = args.data_uri or config.training.data_uri
    try:
        if not split_uri(data_uri)[1]:
            raise ValueError(f"{data_uri!r} names a bucket, not an object")
        run_names = names(config, args.branch, args.sha)
    except ValueError as error:
        raise CommandError(str(error)) from None
    try:
        job_name = run_training_job(config, run_names, data_uri, args.data_sha256)
    except TrainingJobError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.job_out:
        args.job_out.parent.mkdir(parents=True, exist_ok=True)
        args.job_out.write_text(job_name + "\n")
    print(f"job: {job_name}")
    print(f"model folder: {model_dir_uri(run_names)}")
    return 0
