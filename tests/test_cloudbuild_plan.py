"""Which pipelines a push fires: Go's glob semantics, Cloud Build's file filter, the plan CLI."""

import dataclasses
import importlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from cloudbuild.__main__ import COMMANDS
from cloudbuild.config import DEFAULT_PATH, ROOT, SERVICE_ACCOUNTS, load
from cloudbuild.names import BranchNameError, names
from cloudbuild.pipelines import PIPELINES, Pipeline
from cloudbuild.plan import (
    ChangedFileError,
    GlobError,
    changed_file,
    fired_files,
    glob_match,
    glob_regex,
    plan,
)

SHA = "0123456789abcdef0123456789abcdef01234567"

# Go's own table for filepath.Match (src/path/filepath/match_test.go), the cases that are
# not malformed; expected results as Go returns them.
GO_MATCH_TESTS = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("*x", "xxx", True),
]

# Further cases, each worked through Go's Match, scanChunk and matchChunk by hand.
GO_SEMANTICS = [
    ("", "", True),
    ("", "a", False),
    ("*", "", True),
    ("[!a]", "!", True),  # Go negates with '^' only; '!' is an ordinary member
    ("[!a]", "b", False),
    ("[^!a]", "b", True),
    ("[*]", "*", True),  # inside a class, '*' is a character
    ("[*]", "a", False),
    ("a[/]b", "a/b", True),  # a class is not barred from matching '/'
    ("a[^x]b", "a/b", True),
    ("a\\/b", "a/b", True),
    ("[z-a]", "m", False),  # a reversed range is legal and matches nothing
    ("[^z-a]", "m", True),
    ("[a-cx-z]", "y", True),
    ("[a-cx-z]", "m", False),
    ("\\[x]", "[x]", True),
    ("a/*/c", "a/b/c", True),
    ("a/*/c", "a/b/x/c", False),
    ("*.md", "README.md", True),
    ("*.md", "docs/README.md", False),
    ("training/*", "training/a.py", True),
    ("training/*", "training/a/b.py", False),  # gcp-reference G7
    ("?", "/", False),
    ("*/*", "a/b", True),
    ("*/*", "a/b/c", False),
    # Go commits "*" to the first place "a[^x]" matches ("aa"), leaving "/c" for "*c",
    # which cannot cross '/'; a backtracking regex would instead match "a/" and succeed.
    ("*a[^x]*c", "aa/c", False),
    ("*a[^x]*c", "xab/c", False),
    ("*a[^x]*c", "xabc", True),
    # The last chunk after "*" may match anywhere that uses up the name.
    ("*ab", "abab", True),
    ("a*b*", "axxbyy", True),
    ("a*b*", "axxbyy/z", False),
]

# Cloud Build's "**" as plan.py defines it (see its docstring).
DOUBLE_STAR = [
    ("training/**", "training/a.py", True),
    ("training/**", "training/a/b.py", True),
    ("training/**", "training", False),
    ("training/**", "trainingx/a.py", False),
    ("training/**", "x/training/a.py", False),
    ("training/**/*", "training/a.py", True),
    ("training/**/*", "training/a/b/c.py", True),
    ("training/**/*", "training", False),
    ("**/*.md", "README.md", True),
    ("**/*.md", "docs/a/b.md", True),
    ("**/*.md", "README.mdx", False),
    ("**/*.md", "a.md/x", False),
    ("**", "a", True),
    ("**", "a/b/c", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/xb", False),
    ("a/**/b", "ab", False),
    ("**/training/**", "training/a", True),
    ("**/training/**", "x/y/training/a", True),
    ("x**y", "x/a/y", True),
    ("x**y", "xy", True),
    ("**.md", "a/b.md", True),
    ("a**/b", "ax/y/b", True),
    ("a**/b", "a/b", True),
    ("a**/b", "ab", False),
    ("***", "a/b", True),
]

# Malformed: Go returns ErrBadPattern (the last rows of Go's own table, and two more).
BAD_PATTERNS = [
    "[]a]",
    "[-]",
    "[x-]",
    "[-x]",
    "\\",
    "[a-b-c]",
    "[",
    "[^",
    "[^bc",
    "a[",
    "a/b[",
    "[]",
    "[^]",
    "training/\\",
]


@pytest.fixture(scope="module")
def config():
    return load(DEFAULT_PATH)


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cloudbuild", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


def a_pipeline(included=(), ignored=()) -> Pipeline:
    return Pipeline(
        name="t",
        description="",
        build_config="cloudbuild/t.yaml",
        included_files=included,
        ignored_files=ignored,
        branch_pattern=".*",
    )


@pytest.mark.parametrize(("pattern", "name", "expected"), GO_MATCH_TESTS + GO_SEMANTICS)
def test_globs_match_as_go_filepath_match_does(pattern, name, expected):
    assert glob_match(pattern, name) is expected


@pytest.mark.parametrize(("pattern", "name", "expected"), DOUBLE_STAR)
def test_double_star_spans_folders(pattern, name, expected):
    assert glob_match(pattern, name) is expected


@pytest.mark.parametrize("pattern", BAD_PATTERNS)
def test_malformed_globs_are_refused(pattern):
    with pytest.raises(GlobError):
        glob_regex(pattern)


def test_ignored_files_alone_fire_nothing():
    pipeline = a_pipeline(ignored=("**/*.md",))
    assert fired_files(pipeline, ["README.md", "docs/a.md"]) == []


def test_without_included_files_any_file_left_fires():
    pipeline = a_pipeline(ignored=("**/*.md",))
    assert fired_files(pipeline, ["README.md", "setup.cfg"]) == ["setup.cfg"]


def test_with_included_files_only_matching_files_fire():
    pipeline = a_pipeline(included=("src/**",))
    assert fired_files(pipeline, ["src/a.py", "b.py"]) == ["src/a.py"]
    assert fired_files(pipeline, ["b.py"]) == []


def test_ignored_files_are_dropped_before_included_files_are_looked_at():
    pipeline = a_pipeline(included=("docs/**",), ignored=("**/*.md",))
    assert fired_files(pipeline, ["docs/a.md"]) == []
    assert fired_files(pipeline, ["docs/a.md", "docs/conf.py"]) == ["docs/conf.py"]


def test_a_push_touching_training_and_openapi(config):
    result = plan(config, "feature/New_Model", ["training/train.py", "openapi/openapi.yaml"], SHA)
    assert result == {
        "branch": "feature/New_Model",
        "triggers": ["training", "auth"],
        "chained": [{"after": "training", "run": "api", "branch": "feature/New_Model"}],
        "files": {"training": ["training/train.py"], "auth": ["openapi/openapi.yaml"]},
        "names": names(config, "feature/New_Model", SHA).as_dict(),
    }


@pytest.mark.parametrize(
    "changed",
    [
        ["README.md"],
        ["training/README.md", "api/README.md"],
        ["pyproject.toml", "project.yaml", "cloudbuild/names.py", "tests/test_x.py"],
    ],
)
def test_documentation_and_shared_files_fire_nothing(config, changed):
    result = plan(config, "main", changed, SHA)
    assert (result["triggers"], result["chained"], result["files"]) == ([], [], {})


def test_code_beside_documentation_still_fires(config):
    result = plan(config, "main", ["training/README.md", "training/data.py"], SHA)
    assert result["files"] == {"training": ["training/data.py"]}


@pytest.mark.parametrize("pipeline", PIPELINES, ids=lambda pipeline: pipeline.name)
def test_a_change_to_a_pipelines_own_build_config_fires_it(config, pipeline):
    result = plan(config, "main", [pipeline.build_config], SHA)
    assert result["triggers"] == [pipeline.name]


def test_triggers_come_in_pipeline_order_and_api_may_run_twice(config):
    result = plan(config, "main", ["api/main.py", "auth/Dockerfile", "training/x/y.py"], SHA)
    assert result["triggers"] == ["training", "api", "auth"]
    assert result["chained"] == [{"after": "training", "run": "api", "branch": "main"}]


def test_an_api_change_alone_chains_nothing(config):
    result = plan(config, "main", ["cloudbuild/api.yaml"], SHA)
    assert (result["triggers"], result["chained"]) == (["api"], [])


def test_changed_paths_are_normalised_and_deduplicated(config):
    changed = ["./training/a.py", "training//a.py", "training/./a.py", "training/a.py"]
    assert plan(config, "main", changed, SHA)["files"] == {"training": ["training/a.py"]}


@pytest.mark.parametrize(
    "path", ["", "/etc/passwd", "../x", "training/../api/x.py", "training/", ".", "./"]
)
def test_paths_outside_the_repository_or_not_files_are_refused(path):
    with pytest.raises(ChangedFileError):
        changed_file(path)


def test_plan_refuses_a_hostile_branch(config):
    with pytest.raises(BranchNameError):
        plan(config, "a$(id)", ["training/train.py"], SHA)


def test_the_branch_pattern_is_searched_unanchored(config, monkeypatch):
    only_main = dataclasses.replace(a_pipeline(), name="deploy", branch_pattern="^main$")
    loose = dataclasses.replace(a_pipeline(), name="loose", branch_pattern="main")
    monkeypatch.setattr("cloudbuild.plan.PIPELINES", (only_main, loose))
    assert plan(config, "main", ["x.py"], SHA)["triggers"] == ["deploy", "loose"]
    # gcp-reference G6: an unanchored "main" also fires for this branch.
    assert plan(config, "feature/main-fix", ["x.py"], SHA)["triggers"] == ["loose"]


def test_chained_pipelines_start_their_own_chains(config, monkeypatch):
    first = dataclasses.replace(a_pipeline(included=("a/**",)), name="a", chains=("b",))
    second = dataclasses.replace(a_pipeline(included=("b/**",)), name="b", chains=("c",))
    third = dataclasses.replace(a_pipeline(included=("c/**",)), name="c")
    monkeypatch.setattr("cloudbuild.plan.PIPELINES", (first, second, third))
    result = plan(config, "main", ["a/x.py"], SHA)
    assert result["triggers"] == ["a"]
    assert result["chained"] == [
        {"after": "a", "run": "b", "branch": "main"},
        {"after": "b", "run": "c", "branch": "main"},
    ]


def test_pipelines_are_well_formed():
    assert [pipeline.name for pipeline in PIPELINES] == ["training", "api", "auth"]
    known = {pipeline.name for pipeline in PIPELINES}
    for pipeline in PIPELINES:
        assert pipeline.name in SERVICE_ACCOUNTS
        assert re.fullmatch(r"cloudbuild/[a-z]+\.yaml", pipeline.build_config)
        assert set(pipeline.chains) <= known - {pipeline.name}
        re.compile(pipeline.branch_pattern)
        for glob in pipeline.included_files + pipeline.ignored_files:
            glob_regex(glob)


def test_chains_do_not_loop():
    by_name = {pipeline.name: pipeline for pipeline in PIPELINES}

    def reachable(start: str) -> set[str]:
        found, waiting = set(), list(by_name[start].chains)
        while waiting:
            name = waiting.pop()
            if name not in found:
                found.add(name)
                waiting.extend(by_name[name].chains)
        return found

    for name in by_name:
        assert name not in reachable(name)


def test_every_branch_builds():
    for pipeline in PIPELINES:
        for branch in ("main", "feature/x", "1"):
            assert re.search(pipeline.branch_pattern, branch)


def test_cli_prints_the_plan_as_json(config):
    changed = ["training/train.py", "openapi/openapi.yaml"]
    done = cli("plan", "--branch", "feature/New_Model", "--changed", *changed, "--sha", SHA)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == plan(config, "feature/New_Model", changed, SHA)


def test_cli_prints_an_empty_plan_and_succeeds():
    done = cli("plan", "--branch", "main", "--changed", "README.md", "--sha", SHA)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["triggers"] == []


@pytest.mark.parametrize(
    "args",
    [
        ["--branch=a;id", "--changed", "training/x.py", "--sha", SHA],
        ["--branch", "main", "--changed", "../x", "--sha", SHA],
        ["--branch", "main", "--changed", "training/x.py", "--sha", "abc1234"],
    ],
)
def test_cli_refuses_bad_input_with_exit_2_and_no_traceback(args):
    done = cli("plan", *args)
    assert done.returncode == 2
    assert "error: " in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_without_sha_names_the_build_after_git_head(tmp_path):
    shutil.copy(DEFAULT_PATH, tmp_path / "project.yaml")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "start"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()

    config = str(tmp_path / "project.yaml")
    done = cli("plan", "--branch", "main", "--changed", "api/app.py", "--config", config)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["names"]["sha"] == head
    assert head in done.stderr


def test_cli_without_sha_outside_git_asks_for_it(tmp_path):
    shutil.copy(DEFAULT_PATH, tmp_path / "project.yaml")
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)}
    config = str(tmp_path / "project.yaml")
    done = cli("plan", "--branch", "main", "--changed", "api/app.py", "--config", config, env=env)
    assert done.returncode == 2
    assert "error: pass --sha" in done.stderr
    assert done.stdout == ""


def test_cli_help_reaches_the_command():
    done = cli("plan", "--help")
    assert done.returncode == 0
    assert "--changed FILE" in done.stdout


def test_cli_refuses_an_unknown_command():
    done = cli("deploy-everything")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_every_registered_command_resolves_to_a_function(name):
    module, _, function = COMMANDS[name].entry.partition(":")
    assert callable(getattr(importlib.import_module(module), function))
