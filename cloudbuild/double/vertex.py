"""Vertex AI custom jobs: create and get, with the job run by a pluggable runner.

A created job is checked against the `aiplatform.v1` discovery document, saved as
`customJobs/<id>.json` under the folder given, and answered in state PENDING. A
thread then moves it to RUNNING, calls the runner, and ends it SUCCEEDED or FAILED
with the runner's message as the job's error, as Vertex AI does. A job that was still
running when the double stopped is FAILED when it starts again.

A runner is any callable `runner(job, double) -> Outcome`; `job` is the job as GET
returns it. `cloudbuild.double.runners` has the ready-made ones; change the runner of
a running double with `double.vertex.runner = ...`.

Clients that send `$alt=json;enum-encoding=int` (the Python SDK over REST) send and
expect enums as numbers; the double answers them that way, using the numbers of the
installed `aiplatform_v1` protos, which differ from the discovery document's order.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.cloud.aiplatform_v1.types import CustomJob
from google.protobuf import json_format

from cloudbuild.double import discovery, state
from cloudbuild.double.http import ApiError, Request, Response

if TYPE_CHECKING:
    from cloudbuild.double.server import Double

DOCUMENT = "aiplatform.v1"
SCHEMA = "GoogleCloudAiplatformV1CustomJob"
TERMINAL_STATES = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")
# google.rpc.Code Vertex AI reports a failed replica with.
FAILED_JOB_CODE = 3

_JOBS = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/customJobs"
_CREATE = re.compile(_JOBS)
_GET = re.compile(_JOBS + r"/(?P<job_id>[0-9]+)")
_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How a job ended: its error message when it failed, and what its container printed."""

    succeeded: bool
    message: str = ""
    logs: str = ""


Runner = Callable[[dict[str, Any], "Double"], Outcome]


def container_env(job: dict[str, Any]) -> dict[str, str]:
    """The environment Vertex AI gives the container of a job's first worker pool."""
    spec = job["jobSpec"]
    container = spec["workerPoolSpecs"][0].get("containerSpec", {})
    env = {item["name"]: item.get("value", "") for item in container.get("env", [])}
    env["CLOUD_ML_JOB_ID"] = job["name"].rsplit("/", 1)[-1]
    base = spec.get("baseOutputDirectory", {}).get("outputUriPrefix")
    if base:
        env["AIP_MODEL_DIR"] = f"{base}/model/"
        env["AIP_CHECKPOINT_DIR"] = f"{base}/checkpoints/"
        env["AIP_TENSORBOARD_LOG_DIR"] = f"{base}/logs/"
    return env


class VertexApi:
    service = "aiplatform"
    path_prefixes: tuple[str, ...] = ()  # reached by host only: "/v1/projects/" is not unique

    def __init__(self, root: Path, double: Double, runner: Runner) -> None:
        self.runner = runner
        self._jobs = root / "customJobs"
        self._jobs.mkdir(parents=True, exist_ok=True)
        self._double = double
        self._document = discovery.document(DOCUMENT)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        for job in self.jobs():
            if job["state"] not in TERMINAL_STATES:
                self._end(job, Outcome(False, "the double stopped while this job was running"))

    def jobs(self) -> list[dict[str, Any]]:
        """Every job created so far, oldest first, enums as names."""
        paths = sorted(self._jobs.glob("*.json"), key=lambda path: int(path.stem))
        return [json.loads(path.read_text()) for path in paths]

    def log_path(self, job: dict[str, Any]) -> Path:
        """Where the job's container output is kept, as Cloud Logging would keep it."""
        return self._jobs / f"{_job_id(job)}.log"

    def wait(self) -> None:
        """Block until every job started so far has ended."""
        for thread in list(self._threads):
            thread.join()

    def handle(self, request: Request) -> Response:
        create = _CREATE.fullmatch(request.path)
        if create and request.method == "POST":
            return self._render(request, self._create(request, **create.groupdict()))
        get = _GET.fullmatch(request.path)
        if get and request.method == "GET":
            return self._render(request, self._get(**get.groupdict()))
        raise ApiError(
            501, f"the Vertex AI double does not implement {request.method} {request.path}"
        )

    def _create(self, request: Request, project: str, location: str) -> dict[str, Any]:
        job = request.json()
        found = discovery.problems(self._document, SCHEMA, job, enum_numbers=True)
        if not found:
            # Enums sent as numbers become names; a number no value has stays a number,
            # which the second look refuses.
            job = _names_for_enums(job)
            found = discovery.problems(self._document, SCHEMA, job)
        if found:
            raise ApiError(400, "Invalid CustomJob. " + " ".join(found))
        for field in discovery.output_only(self._document, SCHEMA):
            job.pop(field, None)
        now = state.now()
        with self._lock:
            job_id = str(len(list(self._jobs.glob("*.json"))) + 1)
            job.update(
                name=f"projects/{project}/locations/{location}/customJobs/{job_id}",
                state="JOB_STATE_PENDING",
                createTime=now,
                updateTime=now,
            )
            self._save(job)
        thread = threading.Thread(target=self._run, args=(job,), name=f"customJob-{job_id}")
        self._threads.append(thread)
        thread.start()
        return job

    def _get(self, project: str, location: str, job_id: str) -> dict[str, Any]:
        name = f"projects/{project}/locations/{location}/customJobs/{job_id}"
        path = self._jobs / f"{job_id}.json"
        job = json.loads(path.read_text()) if path.exists() else None
        if job is None or job["name"] != name:
            raise ApiError(404, f'CustomJob "{name}" not found.')
        return job

    def _run(self, job: dict[str, Any]) -> None:
        now = state.now()
        job = self._update(job, state="JOB_STATE_RUNNING", startTime=now, updateTime=now)
        try:
            outcome = self.runner(job, self._double)
        except Exception as error:  # a broken runner must still end the job
            _LOGGER.exception("the runner of %s failed", job["name"])
            outcome = Outcome(False, f"the double's runner failed: {error!r}")
        self._end(job, outcome)

    def _end(self, job: dict[str, Any], outcome: Outcome) -> None:
        if outcome.logs:
            self.log_path(job).write_text(outcome.logs)
        now = state.now()
        if outcome.succeeded:
            self._update(job, state="JOB_STATE_SUCCEEDED", endTime=now, updateTime=now)
        else:
            error = {"code": FAILED_JOB_CODE, "message": outcome.message}
            self._update(job, state="JOB_STATE_FAILED", error=error, endTime=now, updateTime=now)

    def _update(self, job: dict[str, Any], **fields: Any) -> dict[str, Any]:
        with self._lock:
            job = {**job, **fields}
            self._save(job)
        return job

    def _save(self, job: dict[str, Any]) -> None:
        state.write_json(self._jobs / f"{_job_id(job)}.json", job)

    def _render(self, request: Request, job: dict[str, Any]) -> Response:
        if "enum-encoding=int" in request.query.get("$alt", ""):
            message = json_format.ParseDict(job, CustomJob.pb()())
            job = json_format.MessageToDict(message, use_integers_for_enums=True)
        return Response.json(job)


def _names_for_enums(body: dict[str, Any]) -> dict[str, Any]:
    """The job as the API stores it: enums by name, whichever way the client sent them."""
    try:
        message = json_format.ParseDict(body, CustomJob.pb()())
    except json_format.ParseError as error:  # e.g. an enum number the API does not know
        raise ApiError(400, f"Invalid CustomJob. {error}") from None
    return json_format.MessageToDict(message)


def _job_id(job: dict[str, Any]) -> str:
    return job["name"].rsplit("/", 1)[-1]
