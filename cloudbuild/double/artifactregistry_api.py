"""Artifact Registry: repositories, their cleanup policies and IAM policies.

What `gcloud artifacts repositories` sends:

- `POST .../locations/L/repositories?repositoryId=R` (create): a Repository checked
  against the `artifactregistry.v1` discovery document; answered with a finished
  long-running Operation (kept for `GET .../operations/ID`); 409 when it exists.
- `GET .../repositories/R` (describe); 404 when absent.
- `PATCH .../repositories/R?updateMask=...` (set-cleanup-policies reads the repository,
  then patches the fields it changed); cleanup policies are checked as the service
  checks them and stored.
- `GET .../repositories/R:getIamPolicy` and `POST ...:setIamPolicy`
  (add-iam-policy-binding); the policy is kept and checked by the IAM double.

State under the folder given: `repositories/<project>/<location>/<repository>.json`
and `operations/<id>.json`.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from cloudbuild.double import discovery, state
from cloudbuild.double.http import ApiError, Request, Response
from cloudbuild.double.iam_api import IamApi

DOCUMENT = "artifactregistry.v1"
REPOSITORY_ID = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Project ids and locations ("europe-west1", "us") both fit; they become folder names.
PATH_NAME = re.compile(r"[a-z][-a-z0-9]*")
# Durations as proto3 JSON writes them, which is what gcloud turns "14d" into.
DURATION = re.compile(r"[0-9]+(?:\.[0-9]+)?s")
MAX_CLEANUP_POLICIES = 10
IMMUTABLE = ("format", "mode", "kmsKeyName")
TYPE_PREFIX = "type.googleapis.com/google.devtools.artifactregistry.v1."

_LOCATION = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_REPOSITORIES = re.compile(_LOCATION + r"/repositories")
_REPOSITORY = re.compile(_REPOSITORIES.pattern + r"/(?P<repository>[^/:]+)")
_REPOSITORY_POLICY = re.compile(_REPOSITORY.pattern + r":(?P<verb>getIamPolicy|setIamPolicy)")
_OPERATION = re.compile(_LOCATION + r"/operations/(?P<operation>[^/:]+)")


class ArtifactRegistryApi:
    service = "artifactregistry"
    path_prefixes: tuple[str, ...] = ()  # reached by host only: "/v1/projects/" is not unique

    def __init__(self, folder: Path, iam: IamApi) -> None:
        self._repositories = folder / "repositories"
        self._operations = folder / "operations"
        self._repositories.mkdir(parents=True, exist_ok=True)
        self._operations.mkdir(parents=True, exist_ok=True)
        self.iam = iam
        self._lock = threading.Lock()

    # ---- requests -------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path, method = request.path, request.method
        if m := _REPOSITORY_POLICY.fullmatch(path):
            name = self.repository(m["project"], m["location"], m["repository"])["name"]
            if method == "GET" and m["verb"] == "getIamPolicy":
                return Response.json(self.iam.policy(name))
            if method == "POST" and m["verb"] == "setIamPolicy":
                return Response.json(self.iam.set_policy(name, request.json(), DOCUMENT))
        if method == "POST" and (m := _REPOSITORIES.fullmatch(path)):
            repository_id = request.query.get("repositoryId", "")
            body = _repository(request.json())
            return self._create(m["project"], m["location"], repository_id, body)
        if method == "GET" and (m := _REPOSITORY.fullmatch(path)):
            return Response.json(self.repository(m["project"], m["location"], m["repository"]))
        if method == "PATCH" and (m := _REPOSITORY.fullmatch(path)):
            mask, body = request.query.get("updateMask"), _repository(request.json())
            return Response.json(
                self._update(m["project"], m["location"], m["repository"], body, mask)
            )
        if method == "GET" and (m := _OPERATION.fullmatch(path)):
            return Response.json(self._operation(m["operation"]))
        raise ApiError(404, f"Artifact Registry has no {method} {path}")

    def _create(self, project: str, location: str, repository_id: str, body: dict) -> Response:
        if not REPOSITORY_ID.fullmatch(repository_id):
            raise ApiError(
                400,
                f"Invalid repository id {repository_id!r}: lowercase letters, digits and "
                "hyphens, starting with a letter, at most 63.",
            )
        name = f"projects/{project}/locations/{location}/repositories/{repository_id}"
        if body.get("name", name) != name:
            raise ApiError(400, f"The repository's name {body['name']!r} is not {name!r}.")
        if body.get("format", "FORMAT_UNSPECIFIED") == "FORMAT_UNSPECIFIED":
            raise ApiError(400, "The repository format must be specified.")
        _check_cleanup_policies(body.get("cleanupPolicies", {}))
        fields = discovery.output_only(discovery.document(DOCUMENT), "Repository")
        now = state.now()
        repository = {key: value for key, value in body.items() if key not in fields}
        repository.update(
            {
                "name": name,
                "mode": (
                    "STANDARD_REPOSITORY"
                    if body.get("mode", "MODE_UNSPECIFIED") == "MODE_UNSPECIFIED"
                    else body["mode"]
                ),
                "createTime": now,
                "updateTime": now,
                "registryUri": (
                    f"{location}-{body['format'].lower()}.pkg.dev/{project}/{repository_id}"
                ),
                "sizeBytes": "0",
            }
        )
        path = self._path(project, location, repository_id)
        with self._lock:
            if path.exists():
                raise ApiError(409, "the repository already exists")
            state.write_json(path, repository)
        operation_id = str(uuid.uuid4())
        operation = {
            "name": f"projects/{project}/locations/{location}/operations/{operation_id}",
            "metadata": {"@type": TYPE_PREFIX + "OperationMetadata"},
            "done": True,
            "response": {"@type": TYPE_PREFIX + "Repository", **repository},
        }
        state.write_json(self._operations / f"{operation_id}.json", operation)
        return Response.json(operation)

    def _update(
        self, project: str, location: str, repository_id: str, body: dict, mask: str | None
    ) -> dict[str, Any]:
        # Without a mask, every field the request carries is replaced.
        named = [_camel(field) for field in mask.split(",")] if mask else list(body)
        output_only = discovery.output_only(discovery.document(DOCUMENT), "Repository")
        fields = [field for field in named if field not in (*output_only, "name")]
        if "cleanupPolicies" in fields:
            _check_cleanup_policies(body.get("cleanupPolicies", {}))
        with self._lock:
            repository = self.repository(project, location, repository_id)
            for field in fields:
                if field in IMMUTABLE and body.get(field) != repository.get(field):
                    raise ApiError(400, f"Field {field} of a repository cannot be changed.")
                if field in body:
                    repository[field] = body[field]
                else:
                    repository.pop(field, None)
            repository["updateTime"] = state.now()
            state.write_json(self._path(project, location, repository_id), repository)
        return repository

    def _operation(self, operation_id: str) -> dict[str, Any]:
        path = self._operations / f"{operation_id}.json"
        if not re.fullmatch(r"[0-9a-f-]+", operation_id) or not path.exists():
            raise ApiError(404, f"Operation {operation_id} not found.")
        return json.loads(path.read_text())

    # ---- state ----------------------------------------------------------------------

    def repository(self, project: str, location: str, repository_id: str) -> dict[str, Any]:
        """The repository as GET returns it; 404 when it does not exist."""
        path = self._path(project, location, repository_id)
        return state.read_json(path, "Requested entity was not found.")

    def repositories(self, project: str) -> list[dict[str, Any]]:
        """Every repository of `project`, in any location."""
        if not PATH_NAME.fullmatch(project):
            return []
        folder = self._repositories / project
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*/*.json"))]

    def _path(self, project: str, location: str, repository_id: str) -> Path:
        names_fit = PATH_NAME.fullmatch(project) and PATH_NAME.fullmatch(location)
        if not names_fit or not REPOSITORY_ID.fullmatch(repository_id):
            raise ApiError(404, "Requested entity was not found.")
        return self._repositories / project / location / f"{repository_id}.json"


def _repository(body: Any) -> dict[str, Any]:
    """A request's Repository, checked against the discovery document.

    Cleanup policies come back as the API spells them: gcloud sends the policy file's
    own spelling ("Delete", "any", "1209600.0s"), which Artifact Registry accepts and
    answers as DELETE, ANY and 1209600s.
    """
    if isinstance(body, dict) and isinstance(body.get("cleanupPolicies"), dict):
        body = {**body, "cleanupPolicies": _canonical(body["cleanupPolicies"])}
    discovery.require(discovery.document(DOCUMENT), "Repository", body)
    return body


def _canonical(policies: dict[str, Any]) -> dict[str, Any]:
    found = {}
    for key, policy in policies.items():
        if not isinstance(policy, dict):
            found[key] = policy
            continue
        policy = {**policy}
        if isinstance(policy.get("action"), str):
            policy["action"] = policy["action"].upper()
        condition = policy.get("condition")
        if isinstance(condition, dict):
            condition = policy["condition"] = {**condition}
            if isinstance(condition.get("tagState"), str):
                condition["tagState"] = condition["tagState"].upper()
            for field in ("olderThan", "newerThan"):
                if isinstance(condition.get(field), str) and DURATION.fullmatch(condition[field]):
                    seconds = Decimal(condition[field][:-1]).normalize()
                    condition[field] = f"{seconds:f}s"
        found[key] = policy
    return found


def _check_cleanup_policies(policies: dict[str, Any]) -> None:
    """Refuse what Artifact Registry refuses in a repository's cleanup policies."""
    if len(policies) > MAX_CLEANUP_POLICIES:
        raise ApiError(400, f"A repository has at most {MAX_CLEANUP_POLICIES} cleanup policies.")
    for key, policy in policies.items():
        where = f"cleanupPolicies[{key!r}]"
        if policy.get("id", key) != key:
            raise ApiError(400, f"{where}.id: {policy['id']!r} differs from its key.")
        if policy.get("action", "ACTION_UNSPECIFIED") == "ACTION_UNSPECIFIED":
            raise ApiError(400, f"{where}.action: must be DELETE or KEEP.")
        if ("condition" in policy) == ("mostRecentVersions" in policy):
            raise ApiError(400, f"{where}: needs one of condition and mostRecentVersions.")
        condition = policy.get("condition", {})
        for field in ("olderThan", "newerThan"):
            if field in condition and not DURATION.fullmatch(condition[field]):
                raise ApiError(
                    400, f"{where}.condition.{field}: {condition[field]!r} is not a duration."
                )


def _camel(field: str) -> str:
    """An update mask may name fields as in the proto (snake_case) or in JSON."""
    head, *rest = field.strip().split("_")
    return head + "".join(word.title() for word in rest)
