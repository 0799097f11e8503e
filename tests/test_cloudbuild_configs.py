"""The build configs follow the rules that keep real pipelines from breaking.

Each test guards one gotcha of gcp-reference §9: the branch only as data, a log
destination for the trigger's service account, consistent substitutions, pinned
builders, absolute kaniko Dockerfiles, no `images:` for kaniko output, and every
name and command a step uses actually existing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cloudbuild import substitutions
from cloudbuild.__main__ import COMMANDS
from cloudbuild.builders import BUILDERS
from cloudbuild.config import ROOT, load
from cloudbuild.env import variables
from cloudbuild.names import names
from cloudbuild.pipelines import PIPELINES

CONFIGS = {p.name: ROOT / p.build_config for p in PIPELINES}
SHA = "0123456789abcdef0123456789abcdef01234567"


def build(name: str) -> dict:
    return yaml.safe_load(CONFIGS[name].read_text())


def scripts(config: dict) -> list[tuple[str, str]]:
    return [(step["id"], step.get("script", "")) for step in config["steps"]]


@pytest.fixture(scope="module")
def names_env() -> set[str]:
    config = load()
    return set(variables(config, names(config, "feature/x", SHA)))


@pytest.mark.parametrize("pipeline", CONFIGS)
def test_logs_go_where_a_user_service_account_allows(pipeline):
    options = build(pipeline)["options"]
    assert options["logging"] == "CLOUD_LOGGING_ONLY"
    assert options["automapSubstitutions"] is True
    assert options["substitutionOption"] == "ALLOW_LOOSE"


@pytest.mark.parametrize("pipeline", CONFIGS)
def test_every_step_is_a_script_so_the_branch_is_never_script_text(pipeline):
    for step in build(pipeline)["steps"]:
        assert "script" in step, step["id"]
        assert not {"args", "entrypoint"} & set(step), step["id"]
        assert "${BRANCH_NAME}" not in step["name"] and "$BRANCH_NAME" not in step["name"]


@pytest.mark.parametrize("pipeline", CONFIGS)
def test_the_branch_reaches_programs_only_quoted(pipeline):
    for step_id, script in scripts(build(pipeline)):
        for match in re.finditer(r".?\$\{?BRANCH_NAME\}?.?", script):
            assert match[0].startswith('"') and match[0].endswith('"'), (step_id, match[0])


@pytest.mark.parametrize("pipeline", CONFIGS)
def test_substitutions_are_consistent(pipeline):
    config = build(pipeline)
    supplied = {**BUILDERS, **config.get("substitutions", {})}
    assert substitutions.problems(config, supplied, must_match=True) == []
    # Every key used is supplied or built in; every supplied key is used somewhere.
    used = substitutions.referenced_keys(config) | substitutions.script_variables(config)
    assert used - substitutions.BUILT_INS <= set(supplied)
    own = set(config.get("substitutions", {}))
    assert own <= used


@pytest.mark.parametrize("pipeline", CONFIGS)
def test_steps_run_only_the_pinned_builders(pipeline):
    for step in build(pipeline)["steps"]:
        assert step["name"] in {"${" + key + "}" for key in BUILDERS}, step["id"]
    for image in BUILDERS.values():
        assert ":latest" not in image and re.search(r":v?\d+\.\d+\.\d+", image), image


@pytest.mark.parametrize("pipeline", CONFIGS)
def test_kaniko_builds_a_real_dockerfile_by_absolute_path(pipeline):
    config = build(pipeline)
    assert "images" not in config  # kaniko pushes itself; listing it would fail the build
    kaniko = [s for s in config["steps"] if s["name"] == "${_KANIKO_IMAGE}"]
    assert len(kaniko) == 1
    script = kaniko[0]["script"]
    context = re.search(r"--context=dir:///workspace/(\S+)", script)[1]
    dockerfile = re.search(r"--dockerfile=(\S+)", script)[1]
    assert dockerfile == f"/workspace/{context}/Dockerfile"
    assert (ROOT / context / "Dockerfile").is_file()
    assert script.startswith("#!/busybox/sh")


@pytest.mark.parametrize("pipeline", CONFIGS)
def test_steps_call_only_commands_that_exist(pipeline):
    for step_id, script in scripts(build(pipeline)):
        for command in re.findall(r"python -m cloudbuild ([a-z-]+)", script):
            assert command in COMMANDS, (step_id, command)
        for command in re.findall(r"python -m training ([a-z-]+)", script):
            assert command in {"train", "validate"}, (step_id, command)


@pytest.mark.parametrize("pipeline", CONFIGS)
def test_names_the_steps_read_are_written_by_the_names_step(pipeline, names_env):
    config = build(pipeline)
    automapped = substitutions.BUILT_INS | set(BUILDERS) | set(config.get("substitutions", {}))
    written_later = {"DATA_URI", "DATA_SHA256", "MODEL_URI", "MODEL_BRANCH", "MODEL_COMMIT"}
    for step_id, script in scripts(config):
        assigned = set(re.findall(r"^\s*(?:local\s+)?([A-Za-z_][A-Za-z0-9_]*)=", script, re.M))
        assigned |= set(re.findall(r"\b(\w+)\(\)\s*\{", script))
        for variable in set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", script)):
            if variable.islower() or variable in assigned:
                continue
            assert variable in names_env | automapped | written_later, (step_id, variable)


def test_the_training_build_outlasts_the_longest_job():
    timeout = int(build("training")["timeout"].removesuffix("s"))
    assert timeout > 23 * 60 * 60  # project.yaml refuses a job longer than 23 h


def test_configs_hold_no_project_values():
    config = load()
    for path in CONFIGS.values():
        text = Path(path).read_text()
        for value in (config.gcp_project_id, config.bucket, config.region, config.project_name):
            assert value not in text, (path.name, value)
