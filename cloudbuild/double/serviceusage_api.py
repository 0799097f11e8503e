"""Service Usage: which services each project has enabled, as gcloud asks and changes it.

- `GET /v1/projects/<p>/services/<name>`: ENABLED or DISABLED. `gcloud run deploy` asks
  this of run.googleapis.com first, and enables it when it is not.
- `POST .../services/<name>:enable` and `POST /v1/projects/<p>/services:batchEnable`
  (what `gcloud services enable` sends for one name and for several): answered with a
  long-running operation that gcloud polls at `GET /v1/operations/<id>`, where it is
  done. The services are enabled at once; for ones that already were, the answer is the
  finished no-op operation, as Service Usage gives.

A name is either a Google API (one with a discovery document in
google-api-python-client, or one of the few without) or any other DNS name, taken to
be a Cloud Endpoints service: a gateway's run.app host, enabled so that API keys work
with it. An unknown `*.googleapis.com` name, a typo most likely, is refused the way
Service Usage refuses it.

State: `projects/<project>.json` (the enabled services, sorted) and `operations/<id>.json`.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

from cloudbuild.double import discovery
from cloudbuild.double.http import ApiError, Request, Response
from cloudbuild.double.state import read_json, write_json

DOCUMENT = "serviceusage.v1"
GOOGLE_APIS = ".googleapis.com"
# Google services that are enabled like APIs but publish no discovery document.
WITHOUT_DISCOVERY = frozenset({"endpoints.googleapis.com"})
# Service Usage's own limit on one batchEnable.
MAX_BATCH = 20
NOOP_OPERATION = "operations/noop.DONE_OPERATION"
TYPES = "type.googleapis.com/google.api.serviceusage.v1."
SERVICE_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)+")

_PROJECT = r"/v1/projects/(?P<project>[^/]+)/services"
_SERVICE = re.compile(_PROJECT + r"/(?P<name>[^/:]+)")
_ENABLE = re.compile(_PROJECT + r"/(?P<name>[^/:]+):enable")
_BATCH_ENABLE = re.compile(_PROJECT + r":batchEnable")
_OPERATION = re.compile(r"/v1/(?P<name>operations/[^/]+)")


@functools.cache
def google_apis() -> frozenset[str]:
    """The Google API service names the installed discovery documents describe."""
    names = {path.name.split(".")[0].lower() for path in discovery.DOCUMENTS.glob("*.json")}
    return frozenset(name + GOOGLE_APIS for name in names) | WITHOUT_DISCOVERY


class ServiceUsageApi:
    service = "serviceusage"
    path_prefixes: tuple[str, ...] = ()  # reached by host only

    def __init__(self, folder: Path) -> None:
        self._projects = folder / "projects"
        self._operations = folder / "operations"
        self._projects.mkdir(parents=True, exist_ok=True)
        self._operations.mkdir(parents=True, exist_ok=True)
        self._document = discovery.document(DOCUMENT)
        self._lock = threading.Lock()

    def enabled(self, project: str) -> set[str]:
        """The services enabled in `project`."""
        path = self._projects / f"{project}.json"
        return set(json.loads(path.read_text())) if path.exists() else set()

    def handle(self, request: Request) -> Response:
        path, method = request.path, request.method
        if method == "POST" and (m := _ENABLE.fullmatch(path)):
            self._check("EnableServiceRequest", request.json())
            return Response.json(self._enable(m["project"], [m["name"]], batch=False))
        if method == "POST" and (m := _BATCH_ENABLE.fullmatch(path)):
            body = request.json()
            self._check("BatchEnableServicesRequest", body)
            names = body.get("serviceIds", [])
            if not names or len(names) > MAX_BATCH:
                raise ApiError(400, f"serviceIds must name 1 to {MAX_BATCH} services")
            return Response.json(self._enable(m["project"], names, batch=True))
        if method == "GET" and (m := _SERVICE.fullmatch(path)):
            self._refuse_unknown([m["name"]])
            return Response.json(self._service(m["project"], m["name"]))
        if method == "GET" and (m := _OPERATION.fullmatch(path)):
            return Response.json(self._operation(m["name"]))
        raise ApiError(501, f"the Service Usage double does not implement {method} {path}")

    def _enable(self, project: str, names: list[str], batch: bool) -> dict[str, Any]:
        self._refuse_unknown(names)
        with self._lock:
            before = self.enabled(project)
            after = before | set(names)
            write_json(self._projects / f"{project}.json", sorted(after))
        services = [self._service(project, name) for name in names]
        if batch:
            response = {"@type": TYPES + "BatchEnableServicesResponse", "services": services}
        else:
            response = {"@type": TYPES + "EnableServiceResponse", "service": services[0]}
        if after == before:
            return {"name": NOOP_OPERATION, "done": True, "response": response}
        operation = {
            "name": f"operations/acf.p2-{uuid.uuid4()}",
            "metadata": {
                "@type": TYPES + "OperationMetadata",
                "resourceNames": [f"projects/{project}/services/{name}" for name in names],
            },
        }
        finished = {**operation, "done": True, "response": response}
        write_json(self._operations / f"{operation['name'].split('/')[1]}.json", finished)
        # Pending when first answered, as Service Usage's are; done when gcloud looks.
        return operation

    def _operation(self, name: str) -> dict[str, Any]:
        path = self._operations / f"{name.split('/')[1]}.json"
        return read_json(path, f"Operation {name} not found.")

    def _service(self, project: str, name: str) -> dict[str, Any]:
        return {
            "name": f"projects/{project}/services/{name}",
            "parent": f"projects/{project}",
            "config": {"name": name},
            "state": "ENABLED" if name in self.enabled(project) else "DISABLED",
        }

    def _refuse_unknown(self, names: list[str]) -> None:
        unknown = [
            name
            for name in names
            if not SERVICE_NAME.fullmatch(name)
            or (name.endswith(GOOGLE_APIS) and name not in google_apis())
        ]
        if unknown:
            raise ApiError(
                403, f"Not found or permission denied for service(s): {', '.join(unknown)}."
            )

    def _check(self, schema: str, body: Any) -> None:
        discovery.require(self._document, schema, body)
