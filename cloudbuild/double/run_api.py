"""Cloud Run: services, revisions, traffic and who may invoke them, as `gcloud run` uses them.

gcloud deploys through the Knative-style v1 API on the regional host
(`<region>-run.googleapis.test`):

- `GET/POST .../namespaces/<project>/services` and `GET/PUT .../services/<name>`. A create
  or replace is checked against the `run.v1` discovery document (`Service`: unknown fields
  are refused) and against Cloud Run's own rules: service and revision names, reserved
  environment variables, traffic targets (percents sum to 100, a named revision exists,
  tag + service name at most 46 characters) and `resourceVersion` against concurrent
  writes. The answer is the service as it is once its revision has started (or failed
  to: see `on_revision` below), so gcloud has nothing to wait for.
- `GET .../revisions[/<name>]`, by name or by label (`gcloud run revisions list
  --service` selects `serving.knative.dev/service`).

and the v1 resource API on either host:

- `GET :getIamPolicy`, `POST :setIamPolicy` and `POST :testIamPermissions` on
  `/v1/projects/<p>/locations/<region>/services/<name>`: each service's own policy, with
  etags; `allUsers` holding `roles/run.invoker` makes the service public. gcloud tests
  its permissions before a deploy that says nothing about unauthenticated access.
- `GET /v1/projects/<p>/locations`: the regions, which gcloud lists when one does not
  answer.

A template that differs from the current one makes a revision, named as gcloud asks (it
names them itself for `--tag` and `--revision-suffix`) or `<service>-<generation:05>-<abc>`
as Cloud Run does; a replace that changes only the traffic makes none. `status.traffic`
is `spec.traffic` resolved. `--no-traffic` needs nothing here: gcloud pins the traffic
itself, and refuses the flag for a new service before sending anything.

URLs take Cloud Run's deterministic form `https://<service>-<number>.<region>.run.app`,
where <number> stands in for the project number, which the double does not know: the
first 12 digits of the SHA-256 of the project id read as a number. A tag is served at
`https://<tag>---<that host>`.

Revisions can really serve. `RunApi(folder, on_revision)` calls `on_revision(service,
revision)` (both as gcloud reads them) for each new revision, while the deploy waits as
it waits on Cloud Run for the revision to start. It returns the local URL where that
revision answers, or None, or raises `RevisionFailed(message)` when the container would
not start, which fails the deploy as Cloud Run does and leaves the traffic where it was.
`services()`, `serving_revision()` and `route()` tell the preflight what is deployed,
which revision a request would reach, and where that revision answers here.

State: one JSON file per service, `services/<project>/<region>/<name>.json`, with the
service as GET answers it, its revisions (each with its local URL, never sent to
clients) and its IAM policy.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
import string
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloudbuild.double import discovery, state
from cloudbuild.double.http import ApiError, Request, Response, same_etag
from cloudbuild.double.iam_api import ConcurrentChange

DOCUMENT = "run.v1"
KNATIVE_API = "serving.knative.dev/v1"
INVOKER = "roles/run.invoker"
PUBLIC = "allUsers"
# What Cloud Run answers for a policy nobody has set yet.
EMPTY_POLICY_ETAG = "ACAB"
# Cloud Run's regions in 2025. A request for another answers 404, as an unknown region's
# endpoint does; a region opened since belongs here.
REGIONS = (
    "africa-south1", "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast2",
    "asia-northeast3", "asia-south1", "asia-south2", "asia-southeast1", "asia-southeast2",
    "australia-southeast1", "australia-southeast2", "europe-central2", "europe-north1",
    "europe-north2", "europe-southwest1", "europe-west1", "europe-west10", "europe-west12",
    "europe-west2", "europe-west3", "europe-west4", "europe-west6", "europe-west8",
    "europe-west9", "me-central1", "me-central2", "me-west1", "northamerica-northeast1",
    "northamerica-northeast2", "northamerica-south1", "southamerica-east1",
    "southamerica-west1", "us-central1", "us-east1", "us-east4", "us-east5", "us-south1",
    "us-west1", "us-west2", "us-west3", "us-west4",
)  # fmt: skip

# Service names, revision names and tags alike: one DNS label, starting with a letter.
DNS_LABEL = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
MAX_SERVICE_NAME = 49
MAX_REVISION_NAME = 63
# The tag is prepended to the service's host, and the whole must stay one DNS label.
MAX_TAG_AND_SERVICE = 46
RESERVED_ENV = ("PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION")
MEMBER_PREFIXES = (
    "user:", "serviceAccount:", "group:", "domain:", "principal:", "principalSet:", "deleted:",
)  # fmt: skip
# Filled in on a revision's template when the deploy leaves them out, as Cloud Run does.
DEFAULT_PORT = {"name": "http1", "containerPort": 8080}
DEFAULT_TIMEOUT_SECONDS = 300
DEFAULT_LIMITS = {"cpu": "1000m", "memory": "512Mi"}
LOCATION_LABEL = "cloud.googleapis.com/location"
# The discovery document calls ObjectMeta.namespace required, but Cloud Run needs it only
# on the service, not on the template within (which gcloud sends without one).
TEMPLATE_NAMESPACE_MISSING = (
    "Field: spec.template.metadata.namespace; Message: Required field is not set."
)

_NAMESPACE = r"/apis/serving\.knative\.dev/v1/namespaces/(?P<project>[^/]+)"
_SERVICES = re.compile(_NAMESPACE + r"/services")
_SERVICE = re.compile(_NAMESPACE + r"/services/(?P<name>[^/]+)")
_REVISIONS = re.compile(_NAMESPACE + r"/revisions")
_REVISION = re.compile(_NAMESPACE + r"/revisions/(?P<name>[^/]+)")
_LOCATIONS = re.compile(r"/v1/projects/(?P<project>[^/]+)/locations")
_IAM = re.compile(
    r"/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)"
    r"/services/(?P<name>[^/:]+):(?P<verb>getIamPolicy|setIamPolicy|testIamPermissions)"
)
_REGIONAL_HOST = re.compile(r"(?P<region>[a-z]+-[a-z]+[0-9]+)-run\.")


class RevisionFailed(Exception):
    """Raised by `on_revision` when the revision's container would not start."""


OnRevision = Callable[[dict[str, Any], dict[str, Any]], "str | None"]


def service_host(project: str, region: str, name: str) -> str:
    """The host of a service's URL (see the module's notes on the number in it)."""
    digest = hashlib.sha256(project.encode()).hexdigest()
    number = str(int(digest, 16))[:12]
    return f"{name}-{number}.{region}.run.app"


class RunApi:
    service = "run"
    path_prefixes: tuple[str, ...] = ()  # reached by host only

    def __init__(self, folder: Path, on_revision: OnRevision | None = None) -> None:
        self.on_revision = on_revision
        self._folder = folder / "services"
        self._folder.mkdir(parents=True, exist_ok=True)
        self._document = discovery.document(DOCUMENT)
        self._lock = threading.Lock()

    # ---- requests -------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path, method = request.path, request.method
        if method == "GET" and (m := _LOCATIONS.fullmatch(path)):
            return Response.json({"locations": [_location(m["project"], r) for r in REGIONS]})
        if m := _IAM.fullmatch(path):
            _check_region(m["region"])
            if m["verb"] == "getIamPolicy" and method == "GET":
                return Response.json(self._policy(m["project"], m["region"], m["name"]))
            if m["verb"] == "setIamPolicy" and method == "POST":
                return Response.json(
                    self._set_policy(m["project"], m["region"], m["name"], request.json())
                )
            if m["verb"] == "testIamPermissions" and method == "POST":
                body = request.json()
                self._check("TestIamPermissionsRequest", body)
                # Whoever calls the double owns the project: every permission is theirs.
                return Response.json({"permissions": body.get("permissions", [])})
        if path.startswith("/apis/"):
            return self._knative(request, self._region(request))
        raise ApiError(501, f"the Cloud Run double does not implement {method} {path}")

    def _knative(self, request: Request, region: str) -> Response:
        path, method = request.path, request.method
        if m := _SERVICES.fullmatch(path):
            if method == "POST":
                return Response.json(self._create(m["project"], region, request.json()))
            if method == "GET":
                items = [r["service"] for r in self._records(m["project"], region)]
                return Response.json(_list("ServiceList", items))
        if method == "GET" and (m := _SERVICE.fullmatch(path)):
            return Response.json(self._record(m["project"], region, m["name"])["service"])
        if method == "PUT" and (m := _SERVICE.fullmatch(path)):
            return Response.json(self._replace(m["project"], region, m["name"], request.json()))
        if method == "GET" and (m := _REVISIONS.fullmatch(path)):
            wanted = _label_selector(request.query.get("labelSelector", ""))
            items = [
                revision
                for revision in self._revisions(m["project"], region)
                if wanted.items() <= revision["metadata"].get("labels", {}).items()
            ]
            return Response.json(_list("RevisionList", items))
        if method == "GET" and (m := _REVISION.fullmatch(path)):
            for revision in self._revisions(m["project"], region):
                if revision["metadata"]["name"] == m["name"]:
                    return Response.json(revision)
            raise ApiError(404, _missing("REVISION", m["name"], region, m["project"]))
        raise ApiError(501, f"the Cloud Run double does not implement {method} {path}")

    def _region(self, request: Request) -> str:
        match = _REGIONAL_HOST.match(request.host)
        if not match:
            raise ApiError(
                400, f"the Knative API is regional: address <region>-run, not {request.host}"
            )
        _check_region(match["region"])
        return match["region"]

    # ---- services ---------------------------------------------------------------------

    def _create(self, project: str, region: str, body: Any) -> dict[str, Any]:
        self._check("Service", body)
        name = body.get("metadata", {}).get("name", "")
        _check_service_name(name)
        _check_namespace(body, project)
        with self._lock:
            if self._path(project, region, name).exists():
                raise ApiError(409, f"Resource '{name}' already exists.")
            record = {"service": None, "revisions": [], "policy": {"etag": EMPTY_POLICY_ETAG}}
            return self._deploy(record, project, region, body)

    def _replace(self, project: str, region: str, name: str, body: Any) -> dict[str, Any]:
        self._check("Service", body)
        if body.get("metadata", {}).get("name") != name:
            raise ApiError(400, f"metadata.name must be {name!r}, the service being replaced")
        _check_namespace(body, project)
        with self._lock:
            record = self._record(project, region, name)
            sent = body["metadata"].get("resourceVersion")
            if sent and sent != record["service"]["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again",
                )
            return self._deploy(record, project, region, body)

    def _deploy(
        self, record: dict[str, Any], project: str, region: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Store the service `body` describes, with a new revision if its template is new."""
        name = body["metadata"]["name"]
        previous = record["service"]
        generation = previous["metadata"]["generation"] + 1 if previous else 1
        spec = body.get("spec", {})
        template = _with_defaults(spec.get("template", {}))
        _check_template(template)
        entry = _revision_entry(record, name, template, generation)
        new = entry not in record["revisions"]
        revisions = [*record["revisions"], entry] if new else record["revisions"]
        traffic = spec.get("traffic") or [{"latestRevision": True, "percent": 100}]
        host = service_host(project, region, name)
        latest = entry if new else _latest_ready(revisions)
        resolved = _resolve_traffic(traffic, name, revisions, latest, host)

        now = state.now()
        metadata = {
            **body["metadata"],
            "namespace": project,
            "labels": {**body["metadata"].get("labels", {}), LOCATION_LABEL: region},
            "generation": generation,
            "uid": previous["metadata"]["uid"] if previous else str(uuid.uuid4()),
            "creationTimestamp": previous["metadata"]["creationTimestamp"] if previous else now,
            "resourceVersion": base64.b64encode(secrets.token_bytes(9)).decode(),
            "selfLink": f"/apis/{KNATIVE_API}/namespaces/{project}/services/{name}",
        }
        service = {
            "apiVersion": KNATIVE_API,
            "kind": "Service",
            "metadata": metadata,
            "spec": {**spec, "template": template, "traffic": traffic},
        }
        serving = previous["status"]["traffic"] if previous else []
        if new:
            entry["createTime"] = now
            # What the service will be if the revision starts, for whoever starts it.
            service["status"] = _status(generation, revisions, resolved, serving, host, now)
            self._start(service, _revision(project, region, name, entry), entry)
        service["status"] = _status(generation, revisions, resolved, serving, host, now)
        record.update(service=service, revisions=revisions)
        self._save(project, region, name, record)
        return service

    def _start(
        self, service: dict[str, Any], revision: dict[str, Any], entry: dict[str, Any]
    ) -> None:
        """Have `on_revision` serve the new revision; note where, or why it did not start."""
        if self.on_revision is None:
            return
        try:
            entry["localUrl"] = self.on_revision(copy.deepcopy(service), revision)
        except RevisionFailed as failure:
            entry["failure"] = str(failure)

    # ---- IAM --------------------------------------------------------------------------

    def _policy(self, project: str, region: str, name: str) -> dict[str, Any]:
        return self._record(project, region, name)["policy"]

    def _set_policy(self, project: str, region: str, name: str, body: Any) -> dict[str, Any]:
        self._check("SetIamPolicyRequest", body)
        policy = body.get("policy", {})
        for binding in policy.get("bindings", []):
            for member in binding.get("members", []):
                if member not in (PUBLIC, "allAuthenticatedUsers") and not member.startswith(
                    MEMBER_PREFIXES
                ):
                    raise ApiError(400, f"Invalid member: {member}")
        with self._lock:
            record = self._record(project, region, name)
            current = record["policy"]["etag"]
            if not same_etag(policy.get("etag"), current):
                raise ConcurrentChange()
            bindings = [b for b in policy.get("bindings", []) if b.get("members")]
            record["policy"] = {
                "version": policy.get("version", 1),
                "etag": base64.b64encode(secrets.token_bytes(8)).decode(),
                **({"bindings": bindings} if bindings else {}),
            }
            self._save(project, region, name, record)
        return record["policy"]

    # ---- for the preflight ------------------------------------------------------------

    def services(self) -> list[dict[str, Any]]:
        """What is deployed, service by service, for a summary.

        Each: project, region, name, url, labels, ready (False when the last deploy
        failed), traffic (revision, percent, tag, url, latest), revisions (name, image,
        env, serviceAccount, labels, localUrl, failure; of the first container, the one
        that receives requests) and invokers (members holding roles/run.invoker,
        `allUsers` when public).
        """
        found = []
        for path in sorted(self._folder.glob("*/*/*.json")):
            record = json.loads(path.read_text())
            service = record["service"]
            status = service["status"]
            found.append(
                {
                    "project": service["metadata"]["namespace"],
                    "region": service["metadata"]["labels"][LOCATION_LABEL],
                    "name": service["metadata"]["name"],
                    "url": status["url"],
                    "labels": _without_location(service["metadata"].get("labels", {})),
                    "ready": status["conditions"][0]["status"] == "True",
                    "traffic": [
                        {
                            "revision": target["revisionName"],
                            "percent": target.get("percent", 0),
                            "tag": target.get("tag"),
                            "url": target.get("url"),
                            "latest": target.get("latestRevision", False),
                        }
                        for target in status.get("traffic", [])
                    ],
                    "revisions": [_summary(entry) for entry in record["revisions"]],
                    "invokers": _members(record["policy"], INVOKER),
                }
            )
        return found

    def serving_revision(self, service_name: str, tag: str | None = None) -> dict[str, Any]:
        """The revision (as `services()` lists it) that a request to the service reaches.

        With a tag, the one the tag names; without, the one with the largest share of the
        traffic, the first of equals. LookupError when no single service has that name,
        no traffic target that tag, or no revision any traffic.
        """
        matches = [s for s in self.services() if s["name"] == service_name]
        if len(matches) != 1:
            raise LookupError(f"{len(matches)} Cloud Run services are named {service_name!r}")
        [service] = matches
        if tag is not None:
            targets = [t for t in service["traffic"] if t["tag"] == tag]
            if not targets:
                raise LookupError(f"service {service_name!r} has no tag {tag!r}")
            revision = targets[0]["revision"]
        else:
            shares: dict[str, int] = {}
            for target in service["traffic"]:
                shares[target["revision"]] = shares.get(target["revision"], 0) + target["percent"]
            if not shares or max(shares.values()) == 0:
                raise LookupError(f"service {service_name!r} serves no traffic")
            revision = max(shares, key=lambda name: shares[name])
        return next(r for r in service["revisions"] if r["name"] == revision)

    def route(self, service_name: str, tag: str | None = None) -> str | None:
        """Where `serving_revision` answers on this machine; None if it does not."""
        return self.serving_revision(service_name, tag)["localUrl"]

    # ---- state ------------------------------------------------------------------------

    def _path(self, project: str, region: str, name: str) -> Path:
        return self._folder / project / region / f"{name}.json"

    def _record(self, project: str, region: str, name: str) -> dict[str, Any]:
        path = self._path(project, region, name)
        return state.read_json(path, _missing("SERVICE", name, region, project))

    def _records(self, project: str, region: str) -> list[dict[str, Any]]:
        paths = sorted((self._folder / project / region).glob("*.json"))
        return [json.loads(path.read_text()) for path in paths]

    def _revisions(self, project: str, region: str) -> list[dict[str, Any]]:
        return [
            _revision(project, region, record["service"]["metadata"]["name"], entry)
            for record in self._records(project, region)
            for entry in record["revisions"]
        ]

    def _save(self, project: str, region: str, name: str, record: dict[str, Any]) -> None:
        state.write_json(self._path(project, region, name), record)

    def _check(self, schema: str, body: Any) -> None:
        discovery.require(
            self._document, schema, body, ignore=lambda p: p == TEMPLATE_NAMESPACE_MISSING
        )


# ---- Cloud Run's rules ----------------------------------------------------------------


def _check_region(region: str) -> None:
    if region not in REGIONS:
        # gcloud then lists the regions and says the one given is not among them.
        raise ApiError(404, f"Cloud Run is not available in region {region}")


def _check_service_name(name: str) -> None:
    if not DNS_LABEL.fullmatch(name) or len(name) > MAX_SERVICE_NAME:
        raise ApiError(
            400,
            f"Invalid value for metadata.name: {name!r}. A service name may contain only "
            "lowercase letters, digits and hyphens, must begin with a letter, cannot end "
            f"with a hyphen, and must be less than {MAX_SERVICE_NAME + 1} characters.",
        )


def _check_namespace(body: dict[str, Any], project: str) -> None:
    namespace = body["metadata"].get("namespace", project)
    if namespace != project:
        raise ApiError(400, f"metadata.namespace {namespace!r} does not match {project!r}")


def _check_template(template: dict[str, Any]) -> None:
    containers = template["spec"].get("containers", [])
    if not containers:
        raise ApiError(400, "spec.template.spec.containers: Required")
    for index, container in enumerate(containers):
        if not container.get("image"):
            raise ApiError(400, f"spec.template.spec.containers[{index}].image: Required")
        reserved = [e["name"] for e in container.get("env", []) if e.get("name") in RESERVED_ENV]
        if reserved:
            raise ApiError(
                400,
                f"spec.template.spec.containers[{index}].env: The following reserved env "
                f"names were provided: {', '.join(reserved)}. These values are "
                "automatically set by the system.",
            )


def _with_defaults(template: dict[str, Any]) -> dict[str, Any]:
    """The template as Cloud Run keeps it: the settings a deploy left out filled in."""
    template = copy.deepcopy(template)
    spec = template.setdefault("spec", {})
    template.setdefault("metadata", {})
    spec.setdefault("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)
    for index, container in enumerate(spec.get("containers", [])):
        limits = container.setdefault("resources", {}).setdefault("limits", {})
        for resource, amount in DEFAULT_LIMITS.items():
            limits.setdefault(resource, amount)
        if index == 0 and not container.get("ports"):
            # The first container receives the requests, on $PORT.
            container["ports"] = [dict(DEFAULT_PORT)]
    return template


def _revision_entry(
    record: dict[str, Any], service: str, template: dict[str, Any], generation: int
) -> dict[str, Any]:
    """The revision `template` runs as: an existing one if nothing changed, else a new one.

    A template names its revision (gcloud's `--tag` and `--revision-suffix`), which then
    must be new or unchanged; an unnamed one is new unless it equals the current one.
    """
    revisions = record["revisions"]
    wanted = template["metadata"].get("name")
    if wanted:
        existing = next((entry for entry in revisions if entry["name"] == wanted), None)
        if existing is not None:
            if _unnamed(existing["template"]) != _unnamed(template):
                raise ApiError(
                    409, f"Revision named '{wanted}' with different configuration already exists."
                )
            return existing
        _check_revision_name(wanted, service)
        name = wanted
    elif revisions and _unnamed(revisions[-1]["template"]) == _unnamed(template):
        return revisions[-1]
    else:
        letters = "".join(secrets.choice(string.ascii_lowercase) for _ in range(3))
        name = f"{service}-{generation:05d}-{letters}"
    named = copy.deepcopy(template)
    named["metadata"]["name"] = name
    return {"name": name, "generation": generation, "template": named}


def _check_revision_name(name: str, service: str) -> None:
    if not name.startswith(f"{service}-"):
        raise ApiError(
            400,
            f"spec.template.metadata.name: Revision name '{name}' must be prefixed by the "
            "name of the enclosing Service or Configuration with a trailing -",
        )
    if len(name) > MAX_REVISION_NAME or not DNS_LABEL.fullmatch(name):
        raise ApiError(
            400,
            f"spec.template.metadata.name: Invalid revision name '{name}': lowercase letters, "
            f"digits and hyphens, at most {MAX_REVISION_NAME} characters.",
        )


def _unnamed(template: dict[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in template["metadata"].items() if k != "name"}
    return {**template, "metadata": metadata}


def _resolve_traffic(
    traffic: list[dict[str, Any]],
    service: str,
    revisions: list[dict[str, Any]],
    latest: dict[str, Any] | None,
    host: str,
) -> list[dict[str, Any]]:
    """`status.traffic` for `spec.traffic`, refusing what Cloud Run refuses.

    `latest` is the revision `latestRevision` targets stand for: None while no revision
    of the service has started, and then they route nowhere.
    """
    known = {entry["name"] for entry in revisions}
    tags: set[str] = set()
    total = 0
    resolved = []
    for index, target in enumerate(traffic):
        where = f"spec.traffic[{index}]"
        name = target.get("revisionName")
        is_latest = target.get("latestRevision", False)
        if target.get("configurationName"):
            raise ApiError(400, f"{where}.configurationName: not supported by Cloud Run")
        if bool(name) == bool(is_latest):
            got = "both" if name else "neither"
            raise ApiError(
                400,
                f"expected exactly one, got {got}: {where}.latestRevision, {where}.revisionName",
            )
        if name and name not in known:
            raise ApiError(400, f"{where}.revisionName: Revision '{name}' does not exist.")
        percent = target.get("percent", 0)
        if not 0 <= percent <= 100:
            raise ApiError(400, f"expected 0 <= {percent} <= 100: {where}.percent")
        total += percent
        tag = target.get("tag")
        if tag:
            _check_tag(tag, service, where, tags)
        if not name and latest is None:
            continue
        out: dict[str, Any] = {"revisionName": name or latest["name"]}
        if percent:
            out["percent"] = percent
        if is_latest:
            out["latestRevision"] = True
        if tag:
            out.update(tag=tag, url=f"https://{tag}---{host}")
        resolved.append(out)
    if total != 100:
        raise ApiError(400, f"Traffic targets sum to {total}, want 100: spec.traffic")
    return resolved


def _check_tag(tag: str, service: str, where: str, seen: set[str]) -> None:
    if not DNS_LABEL.fullmatch(tag):
        raise ApiError(
            400,
            f"{where}.tag: Invalid tag '{tag}': lowercase letters, digits and hyphens, "
            "beginning with a letter and not ending with a hyphen.",
        )
    if len(tag) + len(service) > MAX_TAG_AND_SERVICE:
        raise ApiError(
            400,
            f"{where}.tag: Combined traffic tag and service name cannot exceed "
            f"{MAX_TAG_AND_SERVICE} characters.",
        )
    if tag in seen:
        raise ApiError(400, f'Multiple definitions for "{tag}": {where}.tag')
    seen.add(tag)


# ---- documents as Cloud Run answers them ------------------------------------------------


def _status(
    generation: int,
    revisions: list[dict[str, Any]],
    traffic: list[dict[str, Any]],
    serving: list[dict[str, Any]],
    host: str,
    now: str,
) -> dict[str, Any]:
    """The status of a service routing `traffic`, which was routing `serving` before.

    As in Knative, traffic moves only when every revision it names has started: until
    then the route, and `status.traffic`, stay where they were, and the service is not
    Ready, naming the revision that keeps it so.
    """
    created, ready = revisions[-1], _latest_ready(revisions)
    failed = {entry["name"]: entry["failure"] for entry in revisions if "failure" in entry}
    configuration = None
    if created["name"] in failed:
        configuration = _not_ready(created["name"], failed[created["name"]])
    route = next(
        (_not_ready(t["revisionName"], "") for t in traffic if t["revisionName"] in failed),
        None,
    )
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": [
            _condition("Ready", configuration or route, now),
            _condition("ConfigurationsReady", configuration, now),
            _condition("RoutesReady", route, now),
        ],
        "latestCreatedRevisionName": created["name"],
        "traffic": serving if route else traffic,
        "url": f"https://{host}",
        "address": {"url": f"https://{host}"},
    }
    if ready is not None:
        status["latestReadyRevisionName"] = ready["name"]
    return status


def _not_ready(revision: str, why: str) -> str:
    return f"Revision '{revision}' is not ready and cannot serve traffic. {why}".strip()


def _condition(kind: str, failure: str | None, now: str) -> dict[str, Any]:
    condition = {"type": kind, "status": "False" if failure else "True"}
    if failure:
        condition.update(reason="RevisionFailed", message=failure)
    condition["lastTransitionTime"] = now
    return condition


def _revision(project: str, region: str, service: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The Knative Revision of a stored revision entry, without the double's bookkeeping."""
    template = entry["template"]
    labels = {
        **template["metadata"].get("labels", {}),
        "serving.knative.dev/service": service,
        "serving.knative.dev/configuration": service,
        "serving.knative.dev/configurationGeneration": str(entry["generation"]),
        LOCATION_LABEL: region,
    }
    failure = entry.get("failure")
    return {
        "apiVersion": KNATIVE_API,
        "kind": "Revision",
        "metadata": {
            "name": entry["name"],
            "namespace": project,
            "generation": 1,
            "creationTimestamp": entry["createTime"],
            "labels": labels,
            "annotations": template["metadata"].get("annotations", {}),
            "selfLink": f"/apis/{KNATIVE_API}/namespaces/{project}/revisions/{entry['name']}",
        },
        "spec": template["spec"],
        "status": {
            "observedGeneration": 1,
            "conditions": [
                _condition(kind, failure, entry["createTime"])
                for kind in ("Ready", "ContainerHealthy", "ResourcesAvailable")
            ],
        },
    }


def _latest_ready(revisions: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((entry for entry in reversed(revisions) if "failure" not in entry), None)


def _summary(entry: dict[str, Any]) -> dict[str, Any]:
    template = entry["template"]
    container = template["spec"]["containers"][0]
    return {
        "name": entry["name"],
        "image": container["image"],
        # Values from Secret Manager (valueFrom) are not the double's to know: empty.
        "env": {item["name"]: item.get("value", "") for item in container.get("env", [])},
        "serviceAccount": template["spec"].get("serviceAccountName"),
        "labels": template["metadata"].get("labels", {}),
        "localUrl": entry.get("localUrl"),
        "failure": entry.get("failure"),
    }


def _members(policy: dict[str, Any], role: str) -> list[str]:
    return sorted(
        {m for b in policy.get("bindings", []) if b["role"] == role for m in b["members"]}
    )


def _without_location(labels: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in labels.items() if key != LOCATION_LABEL}


def _location(project: str, region: str) -> dict[str, Any]:
    return {
        "name": f"projects/{project}/locations/{region}",
        "locationId": region,
        "labels": {"cloud.googleapis.com/region": region},
    }


def _list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": KNATIVE_API, "kind": kind, "metadata": {}, "items": items}


def _label_selector(selector: str) -> dict[str, str]:
    """`key = value` pairs, comma-separated: the equality form gcloud sends."""
    pairs = (part.split("=", 1) for part in selector.split(",") if "=" in part)
    return {key.strip(): value.strip() for key, value in pairs}


def _missing(kind: str, name: str, region: str, project: str) -> str:
    return (
        f"Resource '{name}' of kind '{kind}' in region '{region}' in project "
        f"'{project}' does not exist."
    )
