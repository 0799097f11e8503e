"""The one naming function: branch allow-list, slugs, and every name within Google's limits."""

import dataclasses
import hashlib
import json
import os
import re
import string
import subprocess
import sys

import pytest

from cloudbuild.config import DEFAULT_PATH, ROOT, ConfigError, load
from cloudbuild.names import BranchNameError, CommitShaError, check_branch, names, slug

ALLOWED = set(string.ascii_letters + string.digits + "._/-")
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98"

# Written from the services' documentation (gcp-reference §3, §6.1, G1, G19, G26), not
# imported from cloudbuild.names, so a loosened rule there still fails here.
DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
DOCKER_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DOCKER_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
DOCKER_PATH = re.compile(rf"^{DOCKER_COMPONENT}(?:/{DOCKER_COMPONENT})*$")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")

LEGAL_BRANCHES = [
    "main",
    "x",
    "UPPER",
    "a_b",
    "1234-fix",
    "release/2026.11",
    "feature/New_Model",
    "v1.2.3",
    "__init__",
    "___",
    "9",
    "a-b-c",
    "a.-_b",
    "dependabot/pip/training/scikit-learn-1.7.2",
    "a" * 200,
    "1" * 200,
    "_" * 200,
    "A/" * 99 + "Z",
    "feature/" + "very-long-name-" * 12,
]

HOSTILE_BRANCHES = [
    "a;id",
    "a$(id)",
    "a`id`",
    "a|b",
    "a'b",
    'a"b',
    "a&b",
    "a>b",
    "a<b",
    "x${IFS}y",
    "a b",
    "a\nb",
    "a\tb",
    "a(b",
    "a{b",
    "a\\b",
    "a~b",
    "a^b",
    "a:b",
    "a?b",
    "a*b",
    "a[b",
    "a@{b",
    "a#b",
    "a!b",
    "a%b",
    "a+b",
    "a=b",
    "a,b",
    "caf\u00e9",
    "a\u200bb",
    "a\x00b",
]

MALFORMED_BRANCHES = [
    "",
    "-x",
    "/x",
    ".x",
    "a..b",
    "a//b",
    "a/",
    "a.",
    "a.lock",
    "a/.b",
    "a.lock/b",
    "a" * 201,
]


@pytest.fixture(scope="module")
def config():
    return load(DEFAULT_PATH)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cloudbuild", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def expected_hash(branch: str) -> str:
    return hashlib.sha256(branch.encode()).hexdigest()[:6]


def test_names_of_a_feature_branch(config):
    found = names(config, "feature/New_Model", SHA)
    slug_ = f"feature-new-m-{expected_hash('feature/New_Model')}"
    project, registry, bucket = config.project_name, config.registry, config.bucket
    assert found.as_dict() == {
        "branch": "feature/New_Model",
        "sha": SHA,
        "short_sha": SHA[:7],
        "slug": slug_,
        "is_production": False,
        "production_slug": slug(config.production_branch),
        "api_service": f"{project}-api",
        "gateway_service": f"{project}-gateway",
        "revision_tag": slug_,
        "revision_suffix": f"{slug_}-{SHA[:7]}",
        "training_image": f"{registry}/{project}-training:{slug_}-{SHA}",
        "training_image_cache": f"{registry}/{project}-training/cache",
        "api_image": f"{registry}/{project}-api:{slug_}-{SHA}",
        "api_image_cache": f"{registry}/{project}-api/cache",
        "model_uri": f"gs://{bucket}/models/{slug_}/{SHA}/",
        "latest_model_pointer": f"gs://{bucket}/models/{slug_}/LATEST",
        "production_latest_model_pointer": (
            f"gs://{bucket}/models/{slug(config.production_branch)}/LATEST"
        ),
        "data_copy_uri": f"gs://{bucket}/runs/{slug_}/{SHA}/data/",
        "vertex_job_display_name": f"{project}-train-{slug_}-{SHA[:7]}",
        "vertex_labels": {"branch": slug_, "commit": SHA, "project": project},
        "build_tags": [slug_, f"sha-{SHA[:7]}"],
    }


def test_the_production_branch_is_marked_and_names_its_own_pointer(config):
    found = names(config, config.production_branch, SHA)
    assert found.is_production
    assert found.production_slug == found.slug
    assert found.production_latest_model_pointer == found.latest_model_pointer
    assert not names(config, config.production_branch + "-fix", SHA).is_production


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("feat/a-b", "feat-a/b"),
        ("Feature/X", "feature/x"),
        ("a_b", "a.b"),
        ("fix", "FIX"),
        ("x" * 199 + "a", "x" * 199 + "b"),
    ],
)
def test_branches_with_the_same_readable_part_get_different_slugs(first, second):
    readable = slug(first).rsplit("-", 1)[0]
    assert readable == slug(second).rsplit("-", 1)[0]
    assert slug(first) != slug(second)


@pytest.mark.parametrize(
    ("branch", "expected_readable"),
    [
        ("main", "main"),
        ("1234-fix", "b-1234-fix"),
        ("___", "b"),
        ("9", "b-9"),
        ("UPPER", "upper"),
        ("release/2026.11", "release-2026"),
        # Cut to 13 characters, "abcdefghijkl-", then the dangling "-" goes.
        ("abcdefghijkl/mnop", "abcdefghijkl"),
    ],
)
def test_slug_is_the_cut_readable_branch_plus_a_hash_of_the_raw_branch(branch, expected_readable):
    assert slug(branch) == f"{expected_readable}-{expected_hash(branch)}"


@pytest.mark.parametrize("branch", LEGAL_BRANCHES)
def test_every_name_fits_its_limits(config, branch):
    found = names(config, branch, SHA)
    assert found.branch == branch

    assert DNS_LABEL.match(found.slug) and len(found.slug) <= 20
    for service in (found.api_service, found.gateway_service):
        assert DNS_LABEL.match(service) and len(service) <= 49
        revision = f"{service}-{found.revision_suffix}"
        assert DNS_LABEL.match(revision) and len(revision) < 64
    assert DNS_LABEL.match(found.revision_tag)
    assert len(found.revision_tag) + len(found.api_service) <= 46

    for image in (found.training_image, found.api_image):
        name, tag = image.rsplit(":", 1)
        assert DOCKER_TAG.match(tag)
        domain, path = name.split("/", 1)
        assert domain == f"{config.region}-docker.pkg.dev"
        assert DOCKER_PATH.match(path)
    for cache in (found.training_image_cache, found.api_image_cache):
        assert DOCKER_PATH.match(cache.split("/", 1)[1])

    for uri in (
        found.model_uri,
        found.latest_model_pointer,
        found.production_latest_model_pointer,
        found.data_copy_uri,
    ):
        key = uri.removeprefix(f"gs://{config.bucket}/")
        assert key != uri and len(key.encode()) <= 1024
        assert re.fullmatch(r"[A-Za-z0-9._/-]+", key)
        assert "//" not in key and "/./" not in key and "/../" not in key

    assert len(found.vertex_labels) <= 64
    for key, value in found.vertex_labels.items():
        assert LABEL_KEY.match(key) and LABEL_VALUE.match(value)
    assert len(found.vertex_job_display_name) <= 128
    for tag in found.build_tags:
        assert DOCKER_TAG.match(tag)


def test_the_longest_project_name_still_fits(config):
    longest = dataclasses.replace(config, project_name="p" * 20)
    found = names(longest, "b" * 200, SHA)
    assert len(found.revision_tag) + len(found.api_service) == 44


@pytest.mark.parametrize(
    ("change", "broken"),
    [
        ({"project_name": "p" * 46}, "api_service"),  # a service id of 50 characters
        ({"project_name": "p" * 30}, "revision_suffix"),  # a gateway revision of 67
        ({"project_name": "p" * 24}, "revision_tag"),  # tag and service 48 together
        ({"artifact_registry_repository": "ML"}, "training_image"),  # upper-case path
    ],
)
def test_a_config_that_makes_a_name_impossible_is_refused(config, change, broken):
    # project.yaml's checks keep these out; a Config built another way must not slip by.
    # The branch is long enough for a slug of the full 20 characters.
    impossible = dataclasses.replace(config, **change)
    with pytest.raises(ValueError, match=f"^{broken} .* breaks a Google Cloud limit"):
        names(impossible, "feature/a-twenty-character-slug", SHA)


def test_a_production_branch_no_build_may_use_is_a_config_error(config):
    # project.yaml's own check lets "release..x" through; names() must not.
    bad = dataclasses.replace(config, production_branch="release..x")
    with pytest.raises(ConfigError, match="production_branch"):
        names(bad, "main", SHA)


def test_every_commit_gets_its_own_model_folder_and_the_pointer_stays(config):
    first = names(config, "feature/x", SHA)
    second = names(config, "feature/x", OTHER_SHA)
    assert first.model_uri != second.model_uri
    assert first.latest_model_pointer == second.latest_model_pointer
    assert first.api_image != second.api_image


def test_names_are_deterministic(config):
    assert names(config, "feature/x", SHA) == names(config, "feature/x", SHA)


def test_names_do_not_depend_on_the_python_process():
    # Python salts str hashes per process; a slug built on hash() would change here.
    outputs = set()
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-m", "cloudbuild", "names", "--branch", "feature/x", "--sha", SHA],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1


def test_names_are_frozen(config):
    found = names(config, "main", SHA)
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.slug = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        found.vertex_labels["branch"] = "other"  # type: ignore[index]


@pytest.mark.parametrize("branch", LEGAL_BRANCHES)
def test_legal_branches_pass_unchanged(branch):
    assert check_branch(branch) == branch


@pytest.mark.parametrize("branch", HOSTILE_BRANCHES)
def test_hostile_branches_are_refused_naming_the_character(branch, config):
    bad = next(char for char in branch if char not in ALLOWED)
    with pytest.raises(BranchNameError, match=re.escape(f"U+{ord(bad):04X}")):
        names(config, branch, SHA)


@pytest.mark.parametrize("branch", MALFORMED_BRANCHES)
def test_branches_git_refuses_are_refused(branch, config):
    with pytest.raises(BranchNameError):
        names(config, branch, SHA)


@pytest.mark.parametrize(
    "sha",
    ["", SHA[:7], SHA[:39], SHA + "0", SHA.upper(), "g" * 40, SHA[:39] + "\n", "0" * 64],
)
def test_anything_but_a_full_lowercase_commit_id_is_refused(sha, config):
    with pytest.raises(CommitShaError):
        names(config, "main", sha)


def test_cli_prints_every_name_as_json(config):
    done = cli("names", "--branch", "feature/New_Model", "--sha", SHA)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == names(config, "feature/New_Model", SHA).as_dict()
    assert done.stdout == json.dumps(json.loads(done.stdout), sort_keys=True, indent=2) + "\n"


def test_cli_prints_one_field_bare_for_shell_steps(config):
    done = cli("names", "--branch", "feature/x", "--sha", SHA, "--field", "api_image")
    assert done.returncode == 0, done.stderr
    assert done.stdout == names(config, "feature/x", SHA).api_image + "\n"


def test_cli_prints_a_structured_field_as_json(config):
    done = cli("names", "--branch", "feature/x", "--sha", SHA, "--field", "vertex_labels")
    assert json.loads(done.stdout) == dict(names(config, "feature/x", SHA).vertex_labels)


# A process argument cannot hold NUL, so that one is tested above only.
@pytest.mark.parametrize(
    "branch", [b for b in HOSTILE_BRANCHES if "\x00" not in b] + ["-x", "a..b"]
)
def test_cli_refuses_a_hostile_branch_with_exit_2_and_no_traceback(branch):
    done = cli("names", f"--branch={branch}", "--sha", SHA)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "error: argument --branch: " in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--branch", "main", "--sha", SHA[:7]],
        ["--branch", "main", "--sha", SHA, "--field", "nope"],
        ["--branch", "main", "--sha", SHA, "--config", "/nonexistent/project.yaml"],
        ["--sha", SHA],
    ],
)
def test_cli_refuses_other_bad_input_with_exit_2_and_no_traceback(args):
    done = cli("names", *args)
    assert done.returncode == 2
    assert "error: " in done.stderr
    assert "Traceback" not in done.stderr
