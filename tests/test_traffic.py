"""The server-side split: the real gcloud sets Cloud Run traffic by the experiment's weights.

Runs `python -m cloudbuild traffic` as a person would, with gcloud pointed at the
loopback double, after deploying the production and a branch revision as the api
pipeline does.
"""

import os
import subprocess
import sys

import pytest
import yaml

from cloudbuild.config import ROOT, load
from cloudbuild.double import Double
from cloudbuild.double.gcloud import gcloud_env
from cloudbuild.names import slug

CONFIG = load()
PROJECT, REGION = CONFIG.gcp_project_id, CONFIG.region
API = f"{CONFIG.project_name}-api"
TREATMENT = "feature/bigger-c"


@pytest.fixture
def cloud(tmp_path):
    with Double(tmp_path / "gcp") as double:
        double.run.on_revision = lambda service, revision: "http://127.0.0.1:9"
        env = {**os.environ, **gcloud_env(double, tmp_path / "gcloud", PROJECT)}

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
            )

        for branch, traffic in ((CONFIG.production_branch, []), (TREATMENT, ["--no-traffic"])):
            deployed = run(
                "gcloud", "run", "deploy", API, f"--project={PROJECT}", f"--region={REGION}",
                f"--image={CONFIG.registry}/{API}:{slug(branch)}", "--no-allow-unauthenticated",
                f"--tag={slug(branch)}", *traffic,
            )  # fmt: skip
            assert deployed.returncode == 0, deployed.stderr
        run.double = double
        yield run


def shares(cloud) -> dict[str, int]:
    [service] = [s for s in cloud.double.run.services() if s["name"] == API]
    by_revision = {t["revision"]: t["tag"] for t in service["traffic"] if t.get("tag")}
    found: dict[str, int] = {}
    for target in service["traffic"]:
        tag = by_revision.get(target["revision"])
        found[tag] = found.get(tag, 0) + target["percent"]
    return {tag: percent for tag, percent in found.items() if percent}


def experiment_file(tmp_path, control: int, treatment: str = TREATMENT):
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump({
        "experiment": "bigger-c", "salt": "bigger-c-2026-11",
        "variants": [
            {"name": "control", "branch": CONFIG.production_branch, "weight": control},
            {"name": "treatment", "branch": treatment, "weight": 100 - control},
        ],
    }))  # fmt: skip
    return path


def traffic(cloud, *args) -> subprocess.CompletedProcess:
    return cloud(sys.executable, "-m", "cloudbuild", "traffic", *map(str, args))


def test_split_sets_the_weights_by_tag_and_rollback_restores_production(cloud, tmp_path):
    assert shares(cloud) == {slug(CONFIG.production_branch): 100}
    result = traffic(cloud, "split", "--file", experiment_file(tmp_path, 80))
    assert result.returncode == 0, result.stderr
    assert shares(cloud) == {slug(CONFIG.production_branch): 80, slug(TREATMENT): 20}
    result = traffic(cloud, "rollback")
    assert result.returncode == 0, result.stderr
    assert shares(cloud) == {slug(CONFIG.production_branch): 100}


def test_split_to_an_undeployed_branch_changes_nothing(cloud, tmp_path):
    result = traffic(cloud, "split", "--file", experiment_file(tmp_path, 50, "feature/never"))
    assert result.returncode == 2
    assert f"no revision tagged {slug('feature/never')}" in result.stderr
    assert shares(cloud) == {slug(CONFIG.production_branch): 100}


def test_split_refuses_an_invalid_or_empty_experiment(cloud, tmp_path):
    result = traffic(cloud, "split", "--file", experiment_file(tmp_path, 120))
    assert result.returncode == 2 and "weight" in result.stderr
    empty = tmp_path / "none.yaml"
    empty.write_text("variants: []\n")
    result = traffic(cloud, "split", "--file", empty)
    assert result.returncode == 2 and "declares no experiment" in result.stderr


def test_dry_run_prints_the_command_and_sends_nothing(cloud, tmp_path):
    before = len(cloud.double.requests())
    result = traffic(cloud, "--dry-run", "split", "--file", experiment_file(tmp_path, 90))
    assert result.returncode == 0
    command = result.stdout.strip()
    assert command.startswith(f"gcloud run services update-traffic {API} ")
    assert f"--to-tags={slug(CONFIG.production_branch)}=90,{slug(TREATMENT)}=10" in command
    assert len(cloud.double.requests()) == before
