"""Cloud Build: builds and triggers, as `gcloud builds` talks to them.

- `POST .../builds` (what `gcloud builds submit` sends once it has parsed a config):
  the Build is checked against the `cloudbuild.v1` discovery document and against
  Cloud Build's substitution rules, then queued and answered with a long-running
  Operation, as the service does.
- `PATCH .../triggers/NAME` (404 when it does not exist) and `POST .../triggers`: what
  `gcloud builds triggers import` sends; triggers are checked and kept by name.
- `POST .../triggers/NAME:run`: queues a build of the trigger's config for a branch,
  with the trigger's substitutions, as a chained pipeline run does.

Queued builds stay in `builds/` under the state folder with status QUEUED; whoever
executes them (preflight) reads them with `queued()` and records their outcome.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

from cloudbuild import substitutions
from cloudbuild.double import discovery
from cloudbuild.double.http import ApiError, Request, Response
from cloudbuild.double.state import now, read_json, write_json

DOCUMENT = "cloudbuild.v1"
_PROJECT = r"/v1/projects/(?P<project>[^/]+)(?:/locations/(?P<location>[^/]+))?"
_BUILDS = re.compile(_PROJECT + r"/builds")
_BUILD = re.compile(_PROJECT + r"/builds/(?P<build>[^/:]+)")
_TRIGGERS = re.compile(_PROJECT + r"/triggers")
_TRIGGER = re.compile(_PROJECT + r"/triggers/(?P<trigger>[^/:]+)")
_RUN = re.compile(_PROJECT + r"/triggers/(?P<trigger>[^/:]+):run")
# Cloud Build's own rule for trigger names.
TRIGGER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?$")


PRIVATE = "x-double"
OPERATION_METADATA = "type.googleapis.com/google.devtools.cloudbuild.v1.BuildOperationMetadata"


def _public(build: dict) -> dict:
    return {key: value for key, value in build.items() if key != PRIVATE}


class CloudBuildApi:
    service = "cloudbuild"
    path_prefixes: tuple[str, ...] = ()

    def __init__(self, folder: Path) -> None:
        self.builds_dir = folder / "builds"
        self.triggers_dir = folder / "triggers"
        self.builds_dir.mkdir(parents=True, exist_ok=True)
        self.triggers_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    # ---- requests -------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        path = request.path
        if request.method == "POST" and (m := _RUN.fullmatch(path)):
            return self._run_trigger(m["project"], m["trigger"], request.json())
        if request.method == "POST" and (m := _BUILDS.fullmatch(path)):
            return self._create_build(m["project"], m["location"] or "global", request.json())
        if request.method == "GET" and (m := _BUILD.fullmatch(path)):
            return Response.json(_public(self.build(m["build"])))
        if request.method == "POST" and (m := _TRIGGERS.fullmatch(path)):
            return self._create_trigger(request.json())
        if request.method == "PATCH" and (m := _TRIGGER.fullmatch(path)):
            return self._update_trigger(m["trigger"], request.json())
        if request.method == "GET" and (m := _TRIGGER.fullmatch(path)):
            return Response.json(self.trigger(m["trigger"]))
        if request.method == "GET" and _TRIGGERS.fullmatch(path):
            return Response.json({"triggers": self.triggers()})
        raise ApiError(404, f"Cloud Build has no {request.method} {path}")

    def _create_build(self, project: str, location: str, body: dict) -> Response:
        self._check("Build", body)
        supplied = body.get("substitutions", {})
        option = body.get("options", {}).get("substitutionOption", "MUST_MATCH")
        found = substitutions.problems(body, supplied, must_match=option != "ALLOW_LOOSE")
        if found:
            raise ApiError(400, "; ".join(found))
        build = self._queue(project, location, body, trigger=None, branch=None)
        return self._operation(project, build)

    def _run_trigger(self, project: str, name: str, body: dict) -> Response:
        # The document marks projectId and source.repoName "Required.", but the service
        # takes them from the URL and the trigger: gcloud sends neither.
        self._check("RunBuildTriggerRequest", body, ignore_required=True)
        self.trigger(name)
        source = body.get("source", {})
        branch = source.get("branchName")
        if not branch:
            raise ApiError(400, "RunBuildTrigger for a GitHub trigger needs a branch name")
        queued = self.push(project, name, branch, extra=source.get("substitutions", {}))
        return self._operation(project, queued)

    def push(self, project: str, name: str, branch: str, extra: dict | None = None) -> dict:
        """Queue the build a push of `branch` (or a manual run) starts through a trigger."""
        trigger = self.trigger(name)
        build = {
            "substitutions": {**trigger.get("substitutions", {}), **(extra or {})},
            "serviceAccount": trigger.get("serviceAccount", ""),
        }
        return self._queue(project, "global", build, trigger=trigger, branch=branch)

    def _create_trigger(self, body: dict) -> Response:
        self._check("BuildTrigger", body)
        name = body.get("name", "")
        if not TRIGGER_NAME.match(name):
            raise ApiError(400, f"invalid trigger name {name!r}: letters, digits and '-', 1-64")
        with self._lock:
            if (self.triggers_dir / f"{name}.json").exists():
                raise ApiError(409, f"trigger {name} already exists")
            stored = {**body, "id": str(uuid.uuid4()), "createTime": now()}
            write_json(self.triggers_dir / f"{name}.json", stored)
        return Response.json(stored)

    def _update_trigger(self, name: str, body: dict) -> Response:
        self._check("BuildTrigger", body)
        current = self.trigger(name)
        stored = {**body, "id": current["id"], "createTime": current["createTime"], "name": name}
        write_json(self.triggers_dir / f"{name}.json", stored)
        return Response.json(stored)

    # ---- state ----------------------------------------------------------------------

    def trigger(self, name: str) -> dict:
        return read_json(self.triggers_dir / f"{name}.json", f"trigger {name!r} not found")

    def triggers(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.triggers_dir.glob("*.json"))]

    def build(self, build_id: str) -> dict:
        return read_json(self.builds_dir / f"{build_id}.json", f"build {build_id!r} not found")

    def builds(self) -> list[dict]:
        found = [json.loads(p.read_text()) for p in self.builds_dir.glob("*.json")]
        return sorted(found, key=lambda b: b["createTime"])

    def queued(self) -> list[dict]:
        return [b for b in self.builds() if b["status"] == "QUEUED"]

    def update(self, build: dict) -> None:
        """Record what became of a build (status, steps, times) after running it."""
        write_json(self.builds_dir / f"{build['id']}.json", build)

    def _queue(
        self, project: str, location: str, body: dict, trigger: dict | None, branch: str | None
    ) -> dict:
        build_id = str(uuid.uuid4())
        build = {
            **body,
            "id": build_id,
            "projectId": project,
            "status": "QUEUED",
            "createTime": now(),
            "name": f"projects/{project}/locations/{location}/builds/{build_id}",
        }
        if trigger is not None:
            build["buildTriggerId"] = trigger["id"]
            # What the service knows from the trigger and the push; answered to nobody.
            build[PRIVATE] = {
                "trigger": trigger["name"],
                "filename": trigger.get("filename", ""),
                "branch": branch,
            }
        write_json(self.builds_dir / f"{build_id}.json", build)
        return build

    def _operation(self, project: str, build: dict) -> Response:
        return Response.json(
            {
                "name": f"projects/{project}/operations/build/{build['id']}",
                "metadata": {
                    "@type": OPERATION_METADATA,
                    "build": _public(build),
                },
            }
        )

    def _check(self, schema: str, body: Any, ignore_required: bool = False) -> None:
        discovery.require(
            discovery.document(DOCUMENT),
            schema,
            body,
            ignore=lambda p: ignore_required and p.endswith("Required field is not set."),
        )
