"""`Double`: one loopback HTTP server standing in for every Google API the pipelines call.

Clients reach it two ways, and it routes on what they addressed:

* by made-up host through it as their HTTP proxy (`HTTP_PROXY`): gcloud and the SDKs
  send `http://aiplatform.googleapis.test/v1/...` here, and the first label of the host
  (after any `<region>-` prefix) names the API;
* at its own address, as google-cloud-storage does with `STORAGE_EMULATOR_HOST`: then the
  path prefix names the API.

Each API is a handler object with `service`, `path_prefixes` and `handle(request)`; a new
API is one more module and one more line in `Double.__init__`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from cloudbuild.double import runners
from cloudbuild.double.artifactregistry_api import ArtifactRegistryApi
from cloudbuild.double.cloudbuild_api import CloudBuildApi
from cloudbuild.double.http import ApiError, Request, Response
from cloudbuild.double.iam_api import IamApi
from cloudbuild.double.resourcemanager_api import ResourceManagerApi
from cloudbuild.double.run_api import RunApi
from cloudbuild.double.servicemanagement_api import ServiceManagementApi
from cloudbuild.double.serviceusage_api import ServiceUsageApi
from cloudbuild.double.storage import StorageApi
from cloudbuild.double.vertex import Runner, VertexApi

LOOPBACK = "127.0.0.1"
LOOPBACK_HOSTNAMES = (LOOPBACK, "localhost")
FAKE_DOMAIN = "googleapis.test"
SHUTDOWN_POLL_SECONDS = 0.02
# Regional endpoints prefix the API's host with the region, as gcloud run and the
# Vertex AI SDK do: europe-west1-aiplatform.googleapis.test.
API_HOST = re.compile(rf"(?:[a-z]+-[a-z]+[0-9]+-)?(?P<service>[a-z0-9]+)\.{re.escape(FAKE_DOMAIN)}")

_LOGGER = logging.getLogger(__name__)


class Api(Protocol):
    service: str  # the first label of the API's host, e.g. "storage"
    path_prefixes: tuple[str, ...]  # paths it answers at the double's own address

    def handle(self, request: Request) -> Response: ...


class Double:
    """The double, its state kept under `state_dir` so that it survives a restart.

    Use it as a context manager; it listens on a free loopback port meanwhile:

        with Double(tmp_path / "gcp") as double:
            double.storage.create_bucket("my-bucket")
            subprocess.run(..., env={**os.environ, **double.env()})

    `state_dir` holds `requests.jsonl` (every request, read with `requests()`), and one
    folder per API (see each handler's module).
    """

    def __init__(self, state_dir: Path, runner: Runner = runners.succeed) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.state_dir / "requests.jsonl"
        self.storage = StorageApi(self.state_dir / "storage")
        self.vertex = VertexApi(self.state_dir / "vertex", double=self, runner=runner)
        self.cloudbuild = CloudBuildApi(self.state_dir / "cloudbuild")
        self.run = RunApi(self.state_dir / "run")
        self.serviceusage = ServiceUsageApi(self.state_dir / "serviceusage")
        self.iam = IamApi(self.state_dir / "iam")
        self.resourcemanager = ResourceManagerApi(self.iam)
        self.artifactregistry = ArtifactRegistryApi(
            self.state_dir / "artifactregistry", iam=self.iam
        )
        self.servicemanagement = ServiceManagementApi(self.state_dir / "servicemanagement")
        self._apis: list[Api] = [
            self.storage,
            self.vertex,
            self.cloudbuild,
            self.run,
            self.serviceusage,
            self.iam,
            self.resourcemanager,
            self.artifactregistry,
            self.servicemanagement,
        ]
        self._log_lock = threading.Lock()
        self._server: _Server | None = None

    def __enter__(self) -> Double:
        self._server = _Server((LOOPBACK, 0), _Handler)
        self._server.double = self
        threading.Thread(
            target=self._server.serve_forever,
            # How often it checks for shutdown: stopping the double waits for one look.
            kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
            name="gcp-double",
            daemon=True,
        ).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Jobs first: a runner may still be writing into the state folder.
        self.vertex.wait()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the double is not running: use it in a `with` block")
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """The environment variables that point gcloud and the Python SDKs at the double."""
        return {
            "STORAGE_EMULATOR_HOST": self.url,
            # Made-up API hosts reach the double with it as their proxy. HTTPS goes to it
            # too, only to be refused there: nothing may leave this machine.
            "HTTP_PROXY": self.url,
            "http_proxy": self.url,
            "HTTPS_PROXY": self.url,
            "https_proxy": self.url,
            "NO_PROXY": "",
            "no_proxy": "",
            # Read by cloudbuild.vertex_job, which then talks REST, anonymously, to it.
            "VERTEX_API_ENDPOINT": f"http://{self.vertex.service}.{FAKE_DOMAIN}",
        }

    def requests(self) -> list[dict[str, Any]]:
        """Every request so far, oldest first: method, host, path, query, body, status."""
        if not self.log_path.exists():
            return []
        with self._log_lock:
            lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines]

    def handle(self, request: Request) -> Response:
        try:
            response = self._api_for(request).handle(request)
        except ApiError as error:
            response = error.response()
        except Exception as error:  # a bug in the double must reach the client as a 500
            _LOGGER.exception("the double failed on %s %s", request.method, request.path)
            response = ApiError(500, f"the double failed: {error!r}").response()
        self._record(request, response.status)
        return response

    def refuse_tunnel(self, target: str) -> Response:
        """Answer a CONNECT: HTTPS would mean a real Google endpoint, which is off limits."""
        request = Request("CONNECT", target, "", {}, Message(), b"")
        response = ApiError(
            403, f"the double speaks plain HTTP only; refused HTTPS to {target}"
        ).response()
        self._record(request, response.status)
        return response

    def _api_for(self, request: Request) -> Api:
        hostname = request.host.rsplit(":", 1)[0]
        match = API_HOST.fullmatch(hostname)
        for api in self._apis:
            if match and match["service"] == api.service:
                return api
            if hostname in LOOPBACK_HOSTNAMES and request.path.startswith(api.path_prefixes):
                return api
        raise ApiError(404, f"the double has no API at {request.host}{request.path}")

    def _record(self, request: Request, status: int) -> None:
        try:
            body = json.loads(request.body) if request.body else None
        except ValueError:
            body = None  # media and multipart bodies: only their size is kept
        entry = {
            "method": request.method,
            "host": request.host,
            "path": request.path,
            "query": request.query,
            "body": body,
            "bytes": len(request.body),
            "status": status,
        }
        with self._log_lock, self.log_path.open("a") as log:
            log.write(json.dumps(entry) + "\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    double: Double


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients' connection pools expect
    # Headers and body leave in two writes; with Nagle's algorithm the second waits for
    # the client's delayed ACK, adding 40 ms to every response.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._reply(self.server.double.handle(self._request()))

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def do_CONNECT(self) -> None:
        self._reply(self.server.double.refuse_tunnel(self.path))
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Silent: every request is in the double's own log instead."""

    def _request(self) -> Request:
        # Through a proxy the target is absolute (http://host/path); directly, only a path.
        target = urlsplit(self.path)
        return Request(
            method=self.command,
            host=target.netloc or self.headers.get("Host", ""),
            path=target.path,
            query=dict(parse_qsl(target.query, keep_blank_values=True)),
            headers=self.headers,
            body=self._body(),
        )

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailer fields, unused
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)
