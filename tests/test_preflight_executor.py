"""The preflight executor runs a build as Cloud Build would: order, env, dir,
substitutions (never into scripts), `$$`, timeouts, and the first failure ending it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudbuild.preflight.builders import Builder
from cloudbuild.preflight.executor import local_environment, run_build

SHELL = "local-shell"


def run(tmp_path: Path, build: dict, values: dict | None = None):
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    return run_build(
        build, values or {}, workspace, {SHELL: Builder(SHELL)}, local_environment([])
    ), workspace


def test_args_are_substituted_and_dollar_dollar_is_a_literal_dollar(tmp_path):
    build = {
        "steps": [
            {
                "id": "echo",
                "name": SHELL,
                "entrypoint": "bash",
                "args": ["-c", "echo ${_GREETING} $BRANCH_NAME $$HOME_IS_SET > out.txt"],
                "env": ["HOME_IS_SET=yes"],
            }
        ]
    }
    result, workspace = run(tmp_path, build, {"_GREETING": "hi", "BRANCH_NAME": "main"})
    assert result.status == "SUCCESS", result.steps[0].output
    assert (workspace / "out.txt").read_text() == "hi main yes\n"


def test_scripts_are_never_substituted_but_see_automapped_values(tmp_path):
    build = {
        "options": {"automapSubstitutions": True},
        "steps": [{"id": "s", "name": SHELL, "script": 'echo "$_GREETING $$" > out.txt'}],
    }
    result, workspace = run(tmp_path, build, {"_GREETING": "hi"})
    assert result.status == "SUCCESS", result.steps[0].output
    greeting, pid = (workspace / "out.txt").read_text().split()
    assert greeting == "hi" and pid.isdigit()  # `$$` stayed the shell's own PID


def test_a_hostile_value_in_a_script_step_is_data_not_code(tmp_path):
    canary = tmp_path / "pwned"
    build = {
        "options": {"automapSubstitutions": True},
        "steps": [{"id": "s", "name": SHELL, "script": 'printf %s "$BRANCH_NAME" > out.txt'}],
    }
    hostile = f"a;touch {canary};$(touch {canary})`touch {canary}`"
    result, workspace = run(tmp_path, build, {"BRANCH_NAME": hostile})
    assert result.status == "SUCCESS"
    assert (workspace / "out.txt").read_text() == hostile
    assert not canary.exists()


def test_steps_run_in_order_with_dir_and_the_shared_workspace(tmp_path):
    build = {
        "steps": [
            {"id": "one", "name": SHELL, "script": "mkdir -p sub && echo 1 > sub/a"},
            {"id": "two", "name": SHELL, "dir": "sub", "script": "cat a > b", "waitFor": ["one"]},
            {"id": "three", "name": SHELL, "script": "cat /workspace/sub/b > c"},
        ]
    }
    result, workspace = run(tmp_path, build)
    assert result.status == "SUCCESS", [s.output for s in result.steps]
    assert (workspace / "c").read_text() == "1\n"


def test_the_first_failure_ends_the_build_and_later_steps_never_run(tmp_path):
    build = {
        "steps": [
            {"id": "ok", "name": SHELL, "script": "true"},
            {"id": "bad", "name": SHELL, "script": "echo broken >&2; exit 3"},
            {"id": "never", "name": SHELL, "script": "touch ran"},
        ]
    }
    result, workspace = run(tmp_path, build)
    assert result.status == "FAILURE"
    assert [s.status for s in result.steps] == ["SUCCESS", "FAILURE", "CANCELLED"]
    assert "broken" in result.failed_step.output and "exit status 3" in result.failed_step.output
    assert not (workspace / "ran").exists()


def test_the_build_timeout_stops_a_step(tmp_path):
    build = {"timeout": "1s", "steps": [{"id": "slow", "name": SHELL, "script": "sleep 5"}]}
    result, _ = run(tmp_path, build)
    assert result.status == "TIMEOUT"
    assert result.seconds < 4


def test_an_unknown_builder_fails_the_step_with_a_reason(tmp_path):
    build = {"steps": [{"id": "x", "name": "gcr.io/somewhere/else:1", "script": "true"}]}
    result, _ = run(tmp_path, build)
    assert result.status == "FAILURE"
    assert "no local stand-in" in result.steps[0].output


def test_a_wait_for_a_later_step_is_refused(tmp_path):
    build = {
        "steps": [
            {"id": "a", "name": SHELL, "script": "true", "waitFor": ["b"]},
            {"id": "b", "name": SHELL, "script": "true"},
        ]
    }
    with pytest.raises(ValueError, match="not an earlier step"):
        run(tmp_path, build)
