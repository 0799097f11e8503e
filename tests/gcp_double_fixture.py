"""The loopback Google Cloud double as a pytest fixture, and the CLI commands it serves.

Test modules load it with `pytest_plugins = ["tests.gcp_double_fixture"]`. The fixture
points this process's SDKs at the double through the environment, so the code under
test runs unchanged. It holds no assertions, so pytest need not rewrite it
(PYTEST_DONT_REWRITE).
"""

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from google.cloud.aiplatform import jobs as aiplatform_jobs

from cloudbuild.__main__ import COMMANDS
from cloudbuild.cli_common import main
from cloudbuild.config import ROOT
from cloudbuild.double import Double
from cloudbuild.double.gcloud import gcloud_env


def cli(*argv: str | Path) -> int:
    """Run a `python -m cloudbuild` command in-process; its exit code."""
    return main(COMMANDS, [str(arg) for arg in argv])


def call(double: Double, method: str, url: str, **kwargs) -> requests.Response:
    """A request to a made-up Google host, through the double as the proxy."""
    proxies = {"http": double.url, "https": double.url}
    return requests.request(method, url, proxies=proxies, timeout=10, **kwargs)


@pytest.fixture
def double(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Double]:
    with Double(tmp_path / "gcp") as running:
        for name, value in running.env().items():
            monkeypatch.setenv(name, value)
        # The SDK sleeps five seconds between looks at a job; jobs here take milliseconds.
        monkeypatch.setattr(aiplatform_jobs, "_JOB_WAIT_TIME", 0.01)
        yield running


def gcloud_runner(
    double: Double, folder: Path, project: str, add_project_flag: bool = False
) -> Callable[..., subprocess.CompletedProcess]:
    """The real gcloud CLI pointed at `double`; the runner carries the double along."""
    env = {**os.environ, **gcloud_env(double, folder / "gcloud", project)}
    extra = ["--project", project] if add_project_flag else []

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["gcloud", *args, *extra], env=env, capture_output=True, text=True, cwd=ROOT,
            timeout=120,
        )  # fmt: skip

    run.double = double
    return run
