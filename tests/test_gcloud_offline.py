"""The real gcloud CLI accepts our build configs, triggers and bootstrap commands.

gcloud parses each file itself (unknown fields fail before any request) and sends
what it parsed to the loopback double, which checks it against the discovery
document and Cloud Build's substitution rules, as the service would.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from cloudbuild import triggers
from cloudbuild.builders import BUILDERS
from cloudbuild.config import ROOT, load, parse
from cloudbuild.double import Double
from cloudbuild.pipelines import PIPELINES
from tests.gcp_double_fixture import gcloud_runner

PROJECT = load().gcp_project_id


@pytest.fixture
def gcloud(tmp_path):
    with Double(tmp_path / "gcp") as double:
        yield gcloud_runner(double, tmp_path, PROJECT)


def submit(gcloud, config: Path, substitutions: dict[str, str]) -> subprocess.CompletedProcess:
    pairs = ",".join(f"{key}={value}" for key, value in substitutions.items())
    return gcloud(
        "builds", "submit", "--no-source", "--async", "--config", str(config),
        "--substitutions", pairs,
    )  # fmt: skip


@pytest.mark.parametrize("pipeline", [p.build_config for p in PIPELINES])
def test_gcloud_accepts_each_build_config_as_written(gcloud, pipeline):
    result = submit(gcloud, ROOT / pipeline, BUILDERS)
    assert result.returncode == 0, result.stderr
    [sent] = [r for r in gcloud.double.requests() if r["method"] == "POST"]
    assert sent["status"] == 200
    written = yaml.safe_load((ROOT / pipeline).read_text())
    assert [s["id"] for s in sent["body"]["steps"]] == [s["id"] for s in written["steps"]]
    assert [s["script"] for s in sent["body"]["steps"]] == [s["script"] for s in written["steps"]]
    assert sent["body"]["options"]["logging"] == "CLOUD_LOGGING_ONLY"


def api_config_variant(folder: Path, change) -> Path:
    """A copy of the api build config with `change(config)` applied."""
    config = yaml.safe_load((ROOT / "cloudbuild/api.yaml").read_text())
    change(config)
    path = folder / "variant.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_an_unknown_field_fails_in_gcloud_before_any_request(gcloud, tmp_path):
    path = api_config_variant(tmp_path, lambda c: c["steps"][0].update(argz=["oops"]))
    result = submit(gcloud, path, BUILDERS)
    assert result.returncode != 0
    assert "argz" in result.stderr
    assert [r for r in gcloud.double.requests() if r["method"] == "POST"] == []


def test_a_shell_variable_without_dollar_dollar_is_refused_like_the_service_does(gcloud, tmp_path):
    path = api_config_variant(tmp_path, lambda c: c["steps"][0].update(env=["HOME_DIR=$HOME"]))
    result = submit(gcloud, path, BUILDERS)
    assert result.returncode != 0
    assert 'key in the template "HOME" is not a valid built-in substitution' in result.stderr


def test_an_unknown_substitution_is_refused_under_must_match(gcloud, tmp_path):
    path = api_config_variant(
        tmp_path, lambda c: c["options"].update(substitutionOption="MUST_MATCH")
    )
    result = submit(gcloud, path, {**BUILDERS, "_UNUSED": "x"})
    assert result.returncode != 0
    assert 'key "_UNUSED" in the substitution data is not matched' in result.stderr


def test_gcloud_imports_the_triggers_and_reimports_them_idempotently(gcloud, tmp_path):
    source = tmp_path / "triggers.yaml"
    source.write_text(triggers.render(load()))
    first = gcloud("builds", "triggers", "import", "--source", str(source))
    assert first.returncode == 0, first.stderr
    stored = {t["name"]: t for t in gcloud.double.cloudbuild.triggers()}
    assert set(stored) == {f"penguins-{p.name}" for p in PIPELINES}
    for pipeline in PIPELINES:
        expected = triggers.trigger(load(), pipeline)
        got = stored[expected["name"]]
        for key in ("filename", "includedFiles", "ignoredFiles", "serviceAccount", "github"):
            assert got[key] == expected[key], key
        assert got["substitutions"] == BUILDERS
    second = gcloud("builds", "triggers", "import", "--source", str(source))
    assert second.returncode == 0, second.stderr
    patches = [r for r in gcloud.double.requests() if r["method"] == "PATCH"]
    assert [r["status"] for r in patches] == [404, 404, 404, 200, 200, 200]


def test_a_project_without_gateway_has_no_auth_trigger():
    data = yaml.safe_load((ROOT / "project.yaml").read_text())
    data["gateway"]["enabled"] = False
    names = [d["name"] for d in yaml.safe_load_all(triggers.render(parse(data)))]
    assert names == ["penguins-training", "penguins-api"]
