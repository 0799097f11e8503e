"""What `copier copy` produces: complete, Jinja-free, identical to the root code."""

from __future__ import annotations

import filecmp
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from cloudbuild import config
from template_tests.snapshot import ROOT, example_answers

# A Jinja expression or statement left in a rendered file.
UNRENDERED = re.compile(r"\{\{-?\s*[A-Za-z_]|\{%-?\s*[a-z]")
NEVER_SHIPPED = ["copier.yml", "template.mk", "example-answers.yml", "template_tests", "template"]


def project_files(project: Path) -> list[Path]:
    return sorted(
        p for p in project.rglob("*") if p.is_file() and ".git" not in p.relative_to(project).parts
    )


def test_root_config_is_the_example_answers_rendered(example_project):
    assert (example_project / "project.yaml").read_text() == (ROOT / "project.yaml").read_text()


def test_no_template_syntax_is_left(example_project):
    leftovers = [
        str(path.relative_to(example_project))
        for path in project_files(example_project)
        if path.suffix not in {".csv"} and UNRENDERED.search(path.read_text(errors="replace"))
    ]
    assert leftovers == []


def test_linked_code_ships_as_identical_real_files(example_project):
    linked = [p for p in (ROOT / "template").iterdir() if p.is_symlink()]
    assert linked, "template/ should link to the root code"
    for link in linked:
        shipped = example_project / link.name
        assert shipped.exists() and not shipped.is_symlink(), link.name
        if shipped.is_dir():
            comparison = filecmp.dircmp(link.resolve(), shipped, ignore=["__pycache__", "model"])
            assert not comparison.diff_files and not comparison.right_only, link.name
        else:
            assert shipped.read_bytes() == link.resolve().read_bytes(), link.name
    assert (example_project / ".gitignore").read_text() == (ROOT / ".gitignore").read_text()


def test_nothing_of_the_template_repository_leaks(example_project):
    for name in NEVER_SHIPPED:
        assert not (example_project / name).exists(), name
    junk = [
        p
        for p in example_project.rglob("*")
        if p.is_symlink() or p.name in {"__pycache__", ".venv", ".pytest_cache"}
    ]
    assert junk == []


def test_answers_file_records_every_answer(example_project):
    recorded = yaml.safe_load((example_project / ".copier-answers.yml").read_text())
    for key, value in example_answers().items():
        assert recorded[key] == value, key
    assert recorded["_commit"] == "v99.0.0"


def test_rendered_project_is_lint_and_format_clean(example_project):
    ruff = str(Path(ROOT / ".venv/bin/ruff"))
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([ruff, *args], cwd=example_project, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


MATRIX = {
    "no-gateway": {"gateway_enabled": False},
    "gpu": {"training_accelerator_type": "NVIDIA_TESLA_T4", "training_accelerator_count": 2},
    "us-release-branch": {
        "region": "us-central1",
        "production_branch": "release/prod",
        "project_name": "a-twenty-char-name-x",
        "bucket": "other-bucket_name",
        "training_data_uri": "gs://other-bucket_name/raw/train.csv",
    },
    "scaled": {"api_min_instances": 1, "api_max_instances": 200, "training_replica_count": 4},
}


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_answer_matrix_renders_a_valid_config(render, case):
    changes = MATRIX[case]
    project = render(changes, name=case)
    loaded = config.load(project / "project.yaml")
    answers = {**example_answers(), **changes}
    assert loaded.project_name == answers["project_name"]
    assert loaded.region == answers["region"]
    assert loaded.production_branch == answers["production_branch"]
    assert loaded.gateway_enabled is answers["gateway_enabled"]
    assert loaded.training.data_uri == answers["training_data_uri"]
    assert loaded.training.replica_count == answers["training_replica_count"]
    assert loaded.api.max_instances == answers["api_max_instances"]
    if answers["training_accelerator_type"] == "none":
        assert (loaded.training.accelerator_type, loaded.training.accelerator_count) == ("", 0)
    else:
        assert loaded.training.accelerator_type == answers["training_accelerator_type"]
        assert loaded.training.accelerator_count == answers["training_accelerator_count"]
    assert not [
        p for p in project_files(project) if p.suffix != ".csv" and UNRENDERED.search(p.read_text())
    ]
