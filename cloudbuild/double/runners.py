"""What running a Vertex AI custom job means inside the double: one function per choice.

    succeed         nothing runs; the job succeeds (the default)
    train_locally   the training image's entrypoint runs here, as a local process

Images are not built offline, so `train_locally` runs the code the image would hold,
`python -m training train`, from this checkout, with the job's arguments and the
environment Vertex AI would give it. The storage double's folder is laid out like the
`/gcs/` FUSE mount, so it stands in for it: `GCS_FUSE_ROOT` tells the training code to
read and write `gs://` locations (AIP_MODEL_DIR among them) there, and arguments naming
`/gcs/...` paths are pointed there too. Only the first worker pool's first replica runs;
it is the one that writes the model.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from cloudbuild.config import ROOT
from cloudbuild.double.vertex import Outcome, container_env

if TYPE_CHECKING:
    from cloudbuild.double.server import Double

# The training image's ENTRYPOINT, after `python`.
TRAINING_ENTRYPOINT = ("-m", "training", "train")
# A FUSE path as a whole argument or as an option's value: "/gcs/b/x", "--data=/gcs/b/x".
FUSE_PATH = re.compile(r"(^|=)/gcs/")


def succeed(job: dict[str, Any], double: Double) -> Outcome:
    return Outcome(succeeded=True)


def train_locally(job: dict[str, Any], double: Double) -> Outcome:
    container = job["jobSpec"]["workerPoolSpecs"][0].get("containerSpec", {})
    if container.get("command"):
        return Outcome(False, "train_locally runs only the image's entrypoint, not a command")
    fuse_root = str(double.storage.fuse_root)
    env = {**os.environ, **container_env(job), "GCS_FUSE_ROOT": fuse_root}
    args = [
        FUSE_PATH.sub(lambda match: f"{match[1]}{fuse_root}/", arg)
        for arg in container.get("args", [])
    ]
    timeout = _seconds(job["jobSpec"].get("scheduling", {}).get("timeout"))
    try:
        process = subprocess.run(
            [sys.executable, *TRAINING_ENTRYPOINT, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        return Outcome(False, f"Job exceeded its timeout of {expired.timeout:g} seconds.")
    logs = process.stdout + process.stderr
    if process.returncode != 0:
        last_line = (process.stderr.strip().splitlines() or [""])[-1]
        return Outcome(
            False,
            "The replica workerpool0-0 exited with a non-zero status of "
            f"{process.returncode}. {last_line}".strip(),
            logs,
        )
    return Outcome(True, logs=logs)


def _seconds(duration: str | None) -> float | None:
    """A protobuf Duration as JSON ("3600s") in seconds."""
    return float(duration.removesuffix("s")) if duration else None
