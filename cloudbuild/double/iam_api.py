"""IAM: service accounts, and the IAM policies of every resource the double holds.

- `POST /v1/projects/P/serviceAccounts` (`gcloud iam service-accounts create`): the
  account `{accountId}@P.iam.gserviceaccount.com`; 409 when it exists.
- `GET /v1/projects/P/serviceAccounts[/EMAIL]` (describe, list); `P` may be `-`, as
  gcloud sends it, and an account may be named by its unique id too.
- `POST .../serviceAccounts/EMAIL:getIamPolicy` and `:setIamPolicy`
  (`gcloud iam service-accounts add-iam-policy-binding`).

Policies are kept here for the other APIs too (a project's for Resource Manager, a
repository's for Artifact Registry), because IAM checks a policy the same way
wherever it is attached: the etag must be the one last read, and a user-managed
service account named in a binding must exist ("Service account ... does not
exist."), which only this module knows. Google-managed accounts (Cloud Build's, the
service agents) are taken on trust: the double cannot know them.

State under the folder given:

    accounts/<email>.json       each service account
    policies/<resource>.json    each policy set so far, the resource name %-encoded
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from cloudbuild.double import discovery
from cloudbuild.double.http import ApiError, Request, Response, same_etag
from cloudbuild.double.state import write_json

DOCUMENT = "iam.v1"
ACCOUNT_ID = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
ACCOUNT_ID_LENGTHS = range(6, 31)
PROJECT_ID = re.compile(r"[a-z][-a-z0-9]{4,28}[a-z0-9]")
# A user-managed account; service agents live in projects named gcp-sa-*.
USER_MANAGED = re.compile(r"[^@]+@(?!gcp-sa-)[a-z][-a-z0-9]*\.iam\.gserviceaccount\.com")
ROLE = re.compile(r"(?:roles|(?:projects|organizations)/[^/]+/roles)/[A-Za-z0-9_.]+")
MEMBER_KINDS = ("user:", "serviceAccount:", "group:", "domain:", "deleted:", "principal")
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
# Conditional bindings exist only in policy version 3.
CONDITIONAL_VERSION = 3

_ACCOUNTS = re.compile(r"/v1/projects/(?P<project>[^/]+)/serviceAccounts")
_ACCOUNT = re.compile(_ACCOUNTS.pattern + r"/(?P<account>[^/:]+)")
_ACCOUNT_POLICY = re.compile(_ACCOUNT.pattern + r":(?P<verb>getIamPolicy|setIamPolicy)")


class ConcurrentChange(ApiError):
    """A setIamPolicy whose etag is stale; Google answers ABORTED, which gcloud retries."""

    def __init__(self) -> None:
        super().__init__(
            409,
            "There were concurrent policy changes. Please retry the whole read-modify-write "
            "with exponential backoff.",
            status="ABORTED",
        )


class IamApi:
    service = "iam"
    path_prefixes: tuple[str, ...] = ()  # reached by host only: "/v1/projects/" is not unique

    def __init__(self, folder: Path) -> None:
        self._accounts = folder / "accounts"
        self._policies = folder / "policies"
        self._accounts.mkdir(parents=True, exist_ok=True)
        self._policies.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    # ---- requests -------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path, method = request.path, request.method
        if method == "POST" and (m := _ACCOUNT_POLICY.fullmatch(path)):
            resource = self.service_account(unquote(m["account"]))["name"]
            if m["verb"] == "getIamPolicy":
                return Response.json(self.policy(resource))
            return Response.json(self.set_policy(resource, request.json(), DOCUMENT))
        if method == "POST" and (m := _ACCOUNTS.fullmatch(path)):
            return Response.json(self._create(m["project"], request.json()))
        if method == "GET" and (m := _ACCOUNT.fullmatch(path)):
            account = self.service_account(unquote(m["account"]))
            if m["project"] not in ("-", account["projectId"]):
                raise ApiError(404, "Unknown service account")
            return Response.json(account)
        if method == "GET" and (m := _ACCOUNTS.fullmatch(path)):
            accounts = self.service_accounts(m["project"])
            # Google leaves out an empty repeated field.
            return Response.json({"accounts": accounts} if accounts else {})
        raise ApiError(404, f"IAM has no {method} {path}")

    def _create(self, project: str, body: dict) -> dict[str, Any]:
        discovery.require(discovery.document(DOCUMENT), "CreateServiceAccountRequest", body)
        if project == "-":
            raise ApiError(400, "A service account is created in a named project, not '-'.")
        fields = body.get("serviceAccount", {})
        return self.create_service_account(
            project,
            body.get("accountId", ""),
            display_name=fields.get("displayName", ""),
            description=fields.get("description", ""),
        )

    # ---- service accounts -----------------------------------------------------------

    def create_service_account(
        self, project: str, account_id: str, display_name: str = "", description: str = ""
    ) -> dict[str, Any]:
        """Create `account_id@project.iam.gserviceaccount.com` as the API would."""
        if not PROJECT_ID.fullmatch(project):
            raise ApiError(400, f"Invalid project id {project!r}.")
        if not ACCOUNT_ID.fullmatch(account_id) or len(account_id) not in ACCOUNT_ID_LENGTHS:
            raise ApiError(
                400,
                f"Invalid account ID {account_id!r}: 6 to 30 lowercase letters, digits and "
                "hyphens, starting with a letter and not ending with a hyphen.",
            )
        email = f"{account_id}@{project}.iam.gserviceaccount.com"
        # Stable for an email, as a real account's id is for its lifetime.
        unique_id = str(int(hashlib.sha256(email.encode()).hexdigest(), 16) % 10**20 + 10**20)
        account = {
            "name": f"projects/{project}/serviceAccounts/{email}",
            "projectId": project,
            "uniqueId": unique_id,
            "email": email,
            "etag": "MDEwMjE5MjA=",
            "oauth2ClientId": unique_id,
        }
        if display_name:
            account["displayName"] = display_name
        if description:
            account["description"] = description
        path = self._accounts / f"{email}.json"
        with self._lock:
            if path.exists():
                raise ApiError(
                    409,
                    f"Service account {account_id} already exists within project "
                    f"projects/{project}.",
                )
            write_json(path, account)
        return account

    def service_account(self, email_or_id: str) -> dict[str, Any]:
        """The account with this email or unique id; 404 "Unknown service account"."""
        path = self._accounts / f"{email_or_id}.json"
        if "@" in email_or_id and "/" not in email_or_id and path.exists():
            return json.loads(path.read_text())
        for account in self._all_accounts():
            if account["uniqueId"] == email_or_id:
                return account
        raise ApiError(404, "Unknown service account")

    def service_accounts(self, project: str) -> list[dict[str, Any]]:
        """The accounts of `project` (every project's for "-"), by email."""
        return [a for a in self._all_accounts() if project in ("-", a["projectId"])]

    def _all_accounts(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self._accounts.glob("*.json"))]

    # ---- policies, for every API ----------------------------------------------------

    def policy(self, resource: str) -> dict[str, Any]:
        """The IAM policy of `resource` (e.g. "projects/P"); empty until one is set."""
        path = self._policy_path(resource)
        if path.exists():
            return json.loads(path.read_text())
        return {"version": 1, "etag": _etag(0)}

    def set_policy(self, resource: str, request: Any, document: str) -> dict[str, Any]:
        """Apply a SetIamPolicyRequest of `document`'s API to `resource`, as IAM does."""
        discovery.require(discovery.document(document), "SetIamPolicyRequest", request)
        policy = request.get("policy", {})
        bindings = _merged(policy.get("bindings", []))
        for binding in bindings:
            self._check_binding(binding, policy.get("version", 1))
        with self._lock:
            current = self.policy(resource)
            if not same_etag(policy.get("etag"), current["etag"]):
                raise ConcurrentChange()
            revision = int.from_bytes(base64.b64decode(current["etag"]), "big") + 1
            conditional = any("condition" in binding for binding in bindings)
            stored: dict[str, Any] = {
                "version": CONDITIONAL_VERSION if conditional else 1,
                "etag": _etag(revision),
            }
            if bindings:
                stored["bindings"] = bindings
            if policy.get("auditConfigs"):
                stored["auditConfigs"] = policy["auditConfigs"]
            write_json(self._policy_path(resource), stored)
        return stored

    def _check_binding(self, binding: dict[str, Any], version: int) -> None:
        role = binding.get("role", "")
        if not ROLE.fullmatch(role):
            raise ApiError(400, f"Role {role!r} is not a role name (roles/..., or a custom role).")
        if "condition" in binding and version < CONDITIONAL_VERSION:
            raise ApiError(
                400, f"A binding with a condition needs policy version {CONDITIONAL_VERSION}."
            )
        for member in binding.get("members", []):
            if member not in PUBLIC_MEMBERS and not member.startswith(MEMBER_KINDS):
                raise ApiError(400, f"Invalid principal {member!r} in the binding for {role}.")
            email = member.removeprefix("serviceAccount:")
            user_managed = member.startswith("serviceAccount:") and USER_MANAGED.fullmatch(email)
            if user_managed and not (self._accounts / f"{email}.json").exists():
                raise ApiError(400, f"Service account {email} does not exist.")

    def _policy_path(self, resource: str) -> Path:
        return self._policies / f"{quote(resource, safe='')}.json"


def _merged(bindings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bindings as IAM stores them: one per role and condition, members sorted, none empty."""
    by_key: dict[str, dict[str, Any]] = {}
    for binding in bindings:
        key = json.dumps([binding.get("role"), binding.get("condition")], sort_keys=True)
        merged = by_key.setdefault(key, {**binding, "members": []})
        merged["members"] = sorted(set(merged["members"]) | set(binding.get("members", [])))
    found = [binding for binding in by_key.values() if binding["members"]]
    return sorted(found, key=lambda binding: binding.get("role", ""))


def _etag(revision: int) -> str:
    return base64.b64encode(revision.to_bytes(8, "big")).decode()
