"""Every name a build of one (branch, commit) uses, made by one function: `names()`.

Build steps ask for a name (`python -m cloudbuild names --branch "$BRANCH" --sha "$SHA"
--field api_image`) instead of deriving it in shell, so the image tag, the model folder and
the Cloud Run revision of a branch can never disagree.

The raw branch name is attacker-controlled text: anyone who can push can name a branch
`a$(id)`, which git accepts (gcp-reference G2). It is checked against an allow-list before
anything uses it, and every name is checked against the limits Google Cloud enforces, so a
bad name fails here, with its reason, rather than halfway through a deploy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType

from cloudbuild.cli_common import PROG, add_config_argument, checked, print_json
from cloudbuild.config import Config, ConfigError, load

MAX_BRANCH_LENGTH = 200
BRANCH_CHARACTERS = frozenset(string.ascii_letters + string.digits + "._/-")
SHA = re.compile(r"[0-9a-f]{40}")

# A slug is the readable part of the branch plus "-" and a hash of the raw branch. Twenty
# characters keep the API service (at most 24: a 20-character project name plus "-api")
# and the revision tag within Cloud Run's combined limit of 46 (gcp-reference G19).
SLUG_LENGTH = 20
HASH_LENGTH = 6
READABLE_LENGTH = SLUG_LENGTH - 1 - HASH_LENGTH

# Limits Google Cloud enforces (gcp-reference §3, §6.1, G1, G26).
DNS_LABEL = re.compile(r"[a-z](?:[a-z0-9-]*[a-z0-9])?")
CLOUD_RUN_SERVICE_LENGTH = 49
CLOUD_RUN_TAG_PLUS_SERVICE_LENGTH = 46
CLOUD_RUN_REVISION_LENGTH = 63
DOCKER_TAG = re.compile(r"\w[\w.-]{0,127}", re.ASCII)  # also Cloud Build's build-tag grammar
DOCKER_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
DOCKER_NAME_LENGTH = 255
GCS_OBJECT = re.compile(r"[A-Za-z0-9._/-]+")
GCS_OBJECT_BYTES = 1024
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
VERTEX_DISPLAY_NAME_LENGTH = 128


class BranchNameError(ValueError):
    """The branch name is outside the allow-list, so no build may use it."""


class CommitShaError(ValueError):
    """The commit is not a full 40-character commit id."""


def _character(char: str) -> str:
    return f"{char!r} (U+{ord(char):04X})"


def check_branch(branch: str) -> str:
    """Return `branch` unchanged if it is safe to use, else raise BranchNameError.

    Allowed: A-Z a-z 0-9 . _ / - and git's own rules for what may sit where, so a name
    passing here is a name git accepts and no shell treats as code or as an option.
    """
    if not branch:
        raise BranchNameError("the branch name is empty")
    for char in branch:
        if char not in BRANCH_CHARACTERS:
            raise BranchNameError(
                f"branch name {branch!r} contains {_character(char)}; "
                "only letters A-Z a-z, digits and . _ / - are allowed"
            )
    if len(branch) > MAX_BRANCH_LENGTH:
        raise BranchNameError(
            f"branch name is {len(branch)} characters long; the limit is {MAX_BRANCH_LENGTH}"
        )
    if branch.startswith("-"):
        raise BranchNameError(f"branch name {branch!r} starts with '-'")
    if ".." in branch:
        raise BranchNameError(f"branch name {branch!r} contains '..'")
    if branch.endswith("."):
        raise BranchNameError(f"branch name {branch!r} ends with '.'")
    for part in branch.split("/"):
        if not part:
            raise BranchNameError(
                f"branch name {branch!r} starts or ends with '/' or contains '//'"
            )
        if part.startswith("."):
            raise BranchNameError(f"branch name {branch!r} has a part starting with '.'")
        if part.endswith(".lock"):
            raise BranchNameError(f"branch name {branch!r} has a part ending with '.lock'")
    return branch


def check_sha(sha: str) -> str:
    """Return `sha` if it is a full lowercase commit id, as Cloud Build's $COMMIT_SHA is."""
    if not SHA.fullmatch(sha):
        raise CommitShaError(
            f"commit {sha!r} is not a full commit id: expected 40 lowercase hex characters"
        )
    return sha


def slug(branch: str) -> str:
    """The branch's short, DNS-safe name: lowercase [a-z0-9-], a letter first, ≤ 20 chars.

    The readable part alone would map `feat/a-b` and `feat-a/b` (or `Fix` and `fix`) to
    the same text, so a hash of the raw branch name always follows it.
    """
    check_branch(branch)
    readable = re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-")
    if not re.match(r"[a-z]", readable):
        readable = f"b-{readable}"
    readable = readable[:READABLE_LENGTH].rstrip("-")
    digest = hashlib.sha256(branch.encode()).hexdigest()[:HASH_LENGTH]
    return f"{readable}-{digest}"


@dataclass(frozen=True)
class Names:
    branch: str  # the raw branch, validated; pass it as data (an env var), never in script text
    sha: str
    short_sha: str
    slug: str
    is_production: bool
    production_slug: str
    api_service: str  # one Cloud Run service for every branch; branches get tagged revisions
    gateway_service: str
    revision_tag: str  # the branch's tag on api_service: https://TAG---SERVICE-...run.app
    revision_suffix: str  # --revision-suffix; the revision is "{service}-{suffix}"
    training_image: str
    training_image_cache: str  # kaniko --cache-repo
    api_image: str
    api_image_cache: str
    model_uri: str  # this commit's model folder; written once, never overwritten
    latest_model_pointer: str  # moved to model_uri only after a run succeeds
    production_latest_model_pointer: str  # what a branch without its own model serves
    data_copy_uri: str  # the data this run checked and trained on, copied once
    vertex_job_display_name: str
    vertex_labels: Mapping[str, str]
    build_tags: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        """The names as plain JSON types."""
        plain: dict[str, object] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            plain[field.name] = value
        return plain


def names(config: Config, branch: str, sha: str) -> Names:
    """Every name a build of `sha` on `branch` uses. Raises ValueError on bad input."""
    own_slug = slug(branch)
    sha = check_sha(sha)
    short_sha = sha[:7]
    try:
        production_slug = slug(config.production_branch)
    except BranchNameError as error:
        raise ConfigError(f"project.yaml: 'production_branch' is not usable: {error}") from None
    project = config.project_name
    models = f"gs://{config.bucket}/models"
    result = Names(
        branch=branch,
        sha=sha,
        short_sha=short_sha,
        slug=own_slug,
        is_production=branch == config.production_branch,
        production_slug=production_slug,
        api_service=f"{project}-api",
        gateway_service=f"{project}-gateway",
        revision_tag=own_slug,
        revision_suffix=f"{own_slug}-{short_sha}",
        training_image=f"{config.registry}/{project}-training:{own_slug}-{sha}",
        training_image_cache=f"{config.registry}/{project}-training/cache",
        api_image=f"{config.registry}/{project}-api:{own_slug}-{sha}",
        api_image_cache=f"{config.registry}/{project}-api/cache",
        model_uri=f"{models}/{own_slug}/{sha}/",
        # Upper case, so it can never be mistaken for a (lowercase) commit folder beside it.
        latest_model_pointer=f"{models}/{own_slug}/LATEST",
        production_latest_model_pointer=f"{models}/{production_slug}/LATEST",
        data_copy_uri=f"gs://{config.bucket}/runs/{own_slug}/{sha}/data/",
        vertex_job_display_name=f"{project}-train-{own_slug}-{short_sha}",
        vertex_labels=MappingProxyType({"branch": own_slug, "commit": sha, "project": project}),
        build_tags=(own_slug, f"sha-{short_sha}"),
    )
    _check_limits(result, config)
    return result


def _require(ok: bool, field: str, value: object, rule: str) -> None:
    if not ok:
        raise ValueError(
            f"{field} {value!r} breaks a Google Cloud limit ({rule}); "
            "project.yaml's values make this name impossible"
        )


def _check_image(field: str, reference: str, config: Config, tagged: bool) -> None:
    name, _, tag = reference.rpartition(":") if tagged else (reference, "", "")
    domain, _, path = name.partition("/")
    _require(domain == f"{config.region}-docker.pkg.dev", field, reference, "Artifact Registry")
    _require(
        all(DOCKER_PATH_COMPONENT.fullmatch(part) for part in path.split("/")),
        field,
        reference,
        "image path components are lowercase [a-z0-9] joined by . _ __ or -",
    )
    _require(len(name) <= DOCKER_NAME_LENGTH, field, reference, "image name ≤ 255 characters")
    if tagged:
        _require(bool(DOCKER_TAG.fullmatch(tag)), field, reference, r"tag [\w][\w.-]{0,127}")


def _check_object(field: str, uri: str, config: Config) -> None:
    prefix = f"gs://{config.bucket}/"
    _require(uri.startswith(prefix), field, uri, f"an object in {prefix}")
    key = uri.removeprefix(prefix)
    parts = key.removesuffix("/").split("/")
    _require(
        bool(GCS_OBJECT.fullmatch(key)) and all(part not in ("", ".", "..") for part in parts),
        field,
        uri,
        "object names of [A-Za-z0-9._/-] with no empty, '.' or '..' parts",
    )
    _require(len(key.encode()) <= GCS_OBJECT_BYTES, field, uri, "object name ≤ 1024 bytes")


def _check_limits(n: Names, config: Config) -> None:
    """Invariants: every name fits what the service it is for accepts."""
    _require(
        bool(DNS_LABEL.fullmatch(n.slug)) and len(n.slug) <= SLUG_LENGTH,
        "slug",
        n.slug,
        "lowercase [a-z0-9-], a letter first, no '-' last, ≤ 20 characters",
    )
    for field in ("api_service", "gateway_service"):
        service = getattr(n, field)
        _require(
            bool(DNS_LABEL.fullmatch(service)) and len(service) <= CLOUD_RUN_SERVICE_LENGTH,
            field,
            service,
            "Cloud Run service: lowercase [a-z0-9-], a letter first, ≤ 49 characters",
        )
        revision = f"{service}-{n.revision_suffix}"
        _require(
            bool(DNS_LABEL.fullmatch(revision)) and len(revision) <= CLOUD_RUN_REVISION_LENGTH,
            "revision_suffix",
            revision,
            "Cloud Run revision: lowercase [a-z0-9-], a letter first, < 64 characters",
        )
    _require(
        bool(DNS_LABEL.fullmatch(n.revision_tag))
        and len(n.revision_tag) + len(n.api_service) <= CLOUD_RUN_TAG_PLUS_SERVICE_LENGTH,
        "revision_tag",
        n.revision_tag,
        "Cloud Run tag: a DNS label; tag and service together ≤ 46 characters",
    )
    _check_image("training_image", n.training_image, config, tagged=True)
    _check_image("api_image", n.api_image, config, tagged=True)
    _check_image("training_image_cache", n.training_image_cache, config, tagged=False)
    _check_image("api_image_cache", n.api_image_cache, config, tagged=False)
    for field in (
        "model_uri",
        "latest_model_pointer",
        "production_latest_model_pointer",
        "data_copy_uri",
    ):
        _check_object(field, getattr(n, field), config)
    for key, value in n.vertex_labels.items():
        _require(bool(LABEL_KEY.fullmatch(key)), "vertex_labels", key, "label key")
        _require(bool(LABEL_VALUE.fullmatch(value)), "vertex_labels", value, "label value")
    _require(
        len(n.vertex_job_display_name) <= VERTEX_DISPLAY_NAME_LENGTH,
        "vertex_job_display_name",
        n.vertex_job_display_name,
        "≤ 128 characters",
    )
    for tag in n.build_tags:
        _require(bool(DOCKER_TAG.fullmatch(tag)), "build_tags", tag, r"^[\w][\w.-]{0,127}$")


FIELDS = tuple(field.name for field in fields(Names))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} names",
        description="Print every name a build of BRANCH at SHA uses, as JSON.",
    )
    parser.add_argument(
        "--branch", required=True, type=checked(check_branch), help="the branch, as pushed"
    )
    parser.add_argument(
        "--sha", required=True, type=checked(check_sha), help="the full 40-character commit id"
    )
    parser.add_argument(
        "--field",
        choices=FIELDS,
        metavar="NAME",
        help="print only this name, bare, for a shell step (one of: %(choices)s)",
    )
    add_config_argument(parser)
    args = parser.parse_args(argv)

    found = names(load(args.config), args.branch, args.sha).as_dict()
    if args.field is None:
        print_json(found)
        return 0
    value = found[args.field]
    # Text prints bare so `$(...)` captures exactly the name; anything else prints as JSON.
    print(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
    return 0
