"""Preflight runs a push's pipelines end to end, offline, and tells the truth about them.

(a) the production branch touching every folder: training, api (pushed and chained),
    auth; a prediction through the gateway;
(b) a feature branch touching only training/: its own model and tagged revision;
(c) a feature branch touching only api/ with no model of its own: production's model;
(d) a branch name that tries to inject a command: refused, nothing executes;
(e) a broken training change: the build fails at the job, no pointer moves, no deploy;
(f) an A/B experiment pushed to production: a gateway route and a prediction per
    variant, the config published; ending it removes the routes;
(g) an experiment naming an undeployed branch: refused before anything deploys.

Case (a) runs once; each other case starts from a copy of its state, as a second
push finds the first one's model and services.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cloudbuild.config import ROOT, load
from cloudbuild.names import slug

CONFIG = load()
PRODUCTION = CONFIG.production_branch


def head(root: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def preflight(state: Path, branch: str, *changed: str, root: Path = ROOT, fresh=False):
    report = state.parent / f"{state.name}.json"
    command = [sys.executable, "-m", "cloudbuild", "preflight", "--branch", branch,
               "--changed", *changed, "--state", str(state), "--json", str(report)]  # fmt: skip
    if fresh:
        command.append("--fresh")
    result = subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=900, env=dict(os.environ)
    )
    found = json.loads(report.read_text()) if report.exists() else None
    return result, found


def by_pipeline(found: dict) -> list[tuple[str, str]]:
    return [(b["pipeline"], b["status"]) for b in found["builds"]]


def service(found: dict, name: str) -> dict:
    return next(s for s in found["services"] if s["name"] == name)


def test_a_push_that_fires_nothing_says_so_and_succeeds(tmp_path):
    result, found = preflight(tmp_path / "state", "feature/docs", "README.md", "docs/guide.md")
    assert result.returncode == 0, result.stderr
    assert "fires no pipeline" in result.stdout
    assert found["triggers"] == [] and found["builds"] == []
    assert not (tmp_path / "state").exists()  # no double was started


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    state = tmp_path_factory.mktemp("production") / "state"
    result, found = preflight(
        state, PRODUCTION, "training/train.py", "api/main.py", "openapi/openapi.yaml", fresh=True
    )
    return state, result, found


@pytest.fixture
def after_production(production, tmp_path):
    state = tmp_path / "state"
    shutil.copytree(production[0], state, symlinks=True)
    return state


def test_a_production_push_touching_everything_runs_all_three_and_serves_via_gateway(
    production,
):
    _, result, found = production
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert found["triggers"] == ["training", "api", "auth"]
    assert sorted(by_pipeline(found)) == sorted(
        [("training", "SUCCESS"), ("api", "SUCCESS"), ("auth", "SUCCESS"), ("api", "SUCCESS")]
    )
    production_slug = slug(PRODUCTION)
    assert found["models"][production_slug]["commit"] == head(ROOT)
    api = service(found, f"{CONFIG.project_name}-api")
    serving = [t for t in api["traffic"] if t["percent"] == 100]
    assert len(serving) == 1
    tagged = next(t for t in api["traffic"] if t["tag"] == production_slug)
    assert tagged["revision"] == serving[0]["revision"]
    # Private: only the gateway's identity may invoke the API.
    assert api["invokers"] == [f"serviceAccount:{CONFIG.service_account('gw')}"]
    gateway = service(found, f"{CONFIG.project_name}-gateway")
    assert gateway["invokers"] == ["allUsers"]
    prediction = found["prediction"]
    assert prediction["via"] == "gateway" and prediction["status"] == 200
    assert [p["label"] for p in prediction["response"]["predictions"]] == [
        "Gentoo",
        "Chinstrap",
        "Adelie",
    ]
    images = {i["image"] for i in found["images"]}
    assert any(":2.55.7-" in image for image in images)  # the gateway, named by ESPv2 + config
    assert "fires: training, api, auth" in result.stdout


def test_b_a_feature_branch_touching_training_gets_its_own_model_and_tagged_revision(
    after_production,
):
    branch = "feature/New_Model"
    result, found = preflight(after_production, branch, "training/train.py")
    assert result.returncode == 0, result.stdout[-3000:]
    assert found["triggers"] == ["training"]
    assert by_pipeline(found) == [("training", "SUCCESS"), ("api", "SUCCESS")]  # chained
    own = slug(branch)
    assert own in found["models"] and slug(PRODUCTION) in found["models"]
    api = service(found, f"{CONFIG.project_name}-api")
    tags = {t["tag"]: t for t in api["traffic"] if t["tag"]}
    assert tags[own]["percent"] == 0  # a branch never takes production traffic
    assert sum(t["percent"] for t in api["traffic"]) == 100
    assert found["prediction"]["via"] == "branch revision tag"
    assert found["prediction"]["response"]["model"]["branch"] == branch


def test_c_a_feature_branch_touching_only_the_api_falls_back_to_production_model(
    after_production,
):
    branch = "feature/faster-api"
    result, found = preflight(after_production, branch, "api/main.py")
    assert result.returncode == 0, result.stdout[-3000:]
    assert by_pipeline(found) == [("api", "SUCCESS")]
    resolve = next(s for s in found["builds"][0]["steps"] if s["id"] == "resolve-model")
    assert f"serves the production branch '{PRODUCTION}'" in resolve["output"]
    assert slug(branch) not in found["models"]
    assert found["prediction"]["response"]["model"]["branch"] == PRODUCTION


def test_d_a_branch_name_that_injects_a_command_is_refused_and_nothing_runs(
    after_production, tmp_path
):
    canary = tmp_path / "pwned"
    ifs = "${" + "IFS}"  # spelt apart: the template's own check reads "{{" as Jinja
    branch = f"feature/x;touch{ifs}{canary};$(touch {canary})`touch {canary}`"
    result, found = preflight(after_production, branch, "training/train.py")
    assert result.returncode != 0
    [build] = found["builds"]
    assert build["status"] == "FAILURE"
    assert [s["status"] for s in build["steps"]][:2] == ["FAILURE", "CANCELLED"]
    assert "not allowed" in build["steps"][0]["output"] or "contains" in build["steps"][0]["output"]
    assert not canary.exists()
    assert "step 'names' failed" in result.stdout


def project_with(project: Path, edits: dict[str, str]) -> Path:
    """A committed copy of the working tree at `project`, with `edits` (path -> text)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    if not project.exists():
        for name in filter(None, files):
            if (ROOT / name).exists():
                (project / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, project / name, follow_symlinks=False)
        subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    for name, text in edits.items():
        (project / name).write_text(text)
    for command in (["add", "-A"], ["commit", "-qm", "change", "--allow-empty"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *command],
            cwd=project, check=True,
        )  # fmt: skip
    return project


def test_e_a_broken_training_change_fails_at_the_job_and_moves_nothing(after_production, tmp_path):
    train = ROOT / "training" / "train.py"
    broken = train.read_text() + (
        "\n\ndef train(*args, **kwargs):\n    raise RuntimeError('a broken change')\n"
    )
    project = project_with(tmp_path / "project", {"training/train.py": broken})
    branch = "feature/broken"
    result, found = preflight(after_production, branch, "training/train.py", root=project)
    assert result.returncode != 0
    assert by_pipeline(found) == [("training", "FAILURE")]  # and no chained api run
    steps = {s["id"]: s["status"] for s in found["builds"][0]["steps"]}
    assert steps["train"] == "FAILURE"
    assert steps["promote-model"] == "CANCELLED" and steps["run-api-pipeline"] == "CANCELLED"
    assert "a broken change" in found["builds"][0]["steps"][3]["output"]
    assert slug(branch) not in found["models"]
    api = service(found, f"{CONFIG.project_name}-api")
    assert slug(branch) not in {t["tag"] for t in api["traffic"]}


EXPERIMENT = """\
experiment: bigger-c
salt: bigger-c-2026-11
variants:
  - name: control
    branch: {production}
    weight: 70
  - name: treatment
    branch: feature/bigger-c
    weight: 30
"""


def test_f_an_experiment_gets_a_route_and_a_prediction_per_variant(after_production, tmp_path):
    treatment = "feature/bigger-c"
    result, found = preflight(after_production, treatment, "training/train.py")
    assert result.returncode == 0, result.stdout[-3000:]

    # Declaring it on a feature branch only checks it: what production published stays.
    declared = {"auth/experiment.yaml": EXPERIMENT.format(production=PRODUCTION)}
    project = project_with(tmp_path / "project", declared)
    result, found = preflight(after_production, treatment, "auth/experiment.yaml", root=project)
    assert result.returncode == 0, result.stdout[-3000:]
    assert found["experiment"]["document"]["variants"] == []

    result, found = preflight(after_production, PRODUCTION, "auth/experiment.yaml", root=project)
    assert result.returncode == 0, result.stdout[-3000:]
    assert by_pipeline(found) == [("auth", "SUCCESS")]
    document = found["experiment"]["document"]
    assert document["experiment"] == "bigger-c" and document["control"] == "control"
    assert [(v["name"], v["weight"]) for v in document["variants"]] == [
        ("control", 70),
        ("treatment", 30),
    ]
    models = {v["name"]: v["model_commit"] for v in document["variants"]}
    assert models["treatment"] == found["models"][slug(treatment)]["commit"]
    assert models["control"] == found["models"][slug(PRODUCTION)]["commit"]
    answers = {p["variant"]: p for p in found["experiment"]["predictions"]}
    for name, branch in (("control", PRODUCTION), ("treatment", treatment)):
        assert answers[name]["status"] == 200, answers[name]
        assert answers[name]["url"].endswith(f"/variants/{name}/predict")
        assert answers[name]["response"]["model"] == {"commit": models[name], "branch": branch}
    assert "treatment     30%  POST /variants/treatment/predict -> 200" in result.stdout

    # Ending the experiment removes the routes: the gateway answers 404 for them.
    ended = project_with(project, {"auth/experiment.yaml": "variants: []\n"})
    result, found = preflight(after_production, PRODUCTION, "auth/experiment.yaml", root=ended)
    assert result.returncode == 0, result.stdout[-3000:]
    assert found["experiment"]["document"]["variants"] == []
    deployed = after_production / "runs" / f"1-{CONFIG.project_name}-auth" / "workspace"
    spec = (deployed / "build" / "openapi.yaml").read_text()
    assert "/predict:" in spec and "/variants/" not in spec


def test_g_an_experiment_naming_an_undeployed_branch_stops_before_anything_deploys(
    after_production, tmp_path
):
    declared = EXPERIMENT.format(production=PRODUCTION).replace("feature/bigger-c", "feature/never")
    project = project_with(tmp_path / "project", {"auth/experiment.yaml": declared})
    objects = after_production / "gcp" / "storage" / "objects" / CONFIG.bucket
    published_before = (objects / "experiments" / "current.json").read_text()
    result, found = preflight(after_production, PRODUCTION, "auth/experiment.yaml", root=project)
    assert result.returncode != 0
    [build] = found["builds"]
    steps = {s["id"]: s["status"] for s in build["steps"]}
    assert steps["experiment"] == "FAILURE"
    assert "feature/never" in next(s for s in build["steps"] if s["id"] == "experiment")["output"]
    # Nothing after the check ran: no placeholder, no Endpoints config, no gateway, no config.
    later = ("gateway-address", "render-openapi", "publish-openapi", "gateway-image",
             "deploy-gateway", "publish-experiment")  # fmt: skip
    assert {steps[step] for step in later} == {"CANCELLED"}
    assert (objects / "experiments" / "current.json").read_text() == published_before
