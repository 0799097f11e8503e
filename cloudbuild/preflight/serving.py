"""Making deployed Cloud Run revisions really serve, on loopback ports.

A revision's image was recorded by the kaniko stand-in with a snapshot of its build
context, so the revision runs exactly the code and model the image would hold:

- an API image (context `api/`, model in `api/model/`): `python -m api` from the
  snapshot, with the container contract's environment (PORT, MODEL_DIR);
- a gateway image (context `auth/` with the Endpoints `service.json` baked in): the
  local gateway (gateway.py) that routes by that config as ESPv2 would.

A revision counts as started once its health route answers, as Cloud Run waits for
the container to listen before it sends traffic. `CloudRun` starts each revision the
Cloud Run double deploys, and finds where the one behind a service's URL serves here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from cloudbuild.double.run_api import RevisionFailed, RunApi
from cloudbuild.env import GATEWAY_PLACEHOLDER_IMAGE
from cloudbuild.preflight.gateway import Gateway, Placeholder

START_SECONDS = 60.0


class RevisionError(RuntimeError):
    """A revision that would not start (Cloud Run reports it as not ready)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Launcher:
    """Starts revisions from recorded images; stops them all on close."""

    def __init__(self, images: Path, logs: Path, resolve_backend) -> None:
        self.images = images
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.resolve_backend = resolve_backend  # backend URL -> local URL, for gateways
        self._processes: dict[str, subprocess.Popen] = {}
        self._gateways: dict[str, Gateway | Placeholder] = {}
        self._urls: dict[str, str] = {}

    def image_record(self, image: str) -> dict:
        for path in self.images.glob("*.json"):
            record = json.loads(path.read_text())
            if record["image"] == image:
                return record
        raise RevisionError(f"image {image} was never built (no kaniko step pushed it)")

    def start(self, revision_name: str, image: str, env: dict[str, str]) -> str:
        """A local URL where the revision serves; started once per preflight run."""
        if revision_name in self._urls:
            return self._urls[revision_name]
        if image == GATEWAY_PLACEHOLDER_IMAGE:
            # Google's sample container: it answers every path with 200.
            placeholder = Placeholder()
            self._gateways[revision_name] = placeholder
            self._urls[revision_name] = placeholder.start()
            return self._urls[revision_name]
        record = self.image_record(image)
        context = Path(record["snapshot"])
        if (context / "service.json").exists():
            gateway = Gateway(
                json.loads((context / "service.json").read_text()), self.resolve_backend
            )
            url = gateway.start()
            self._gateways[revision_name] = gateway
        else:
            url = self._start_api(revision_name, context, env)
        self._urls[revision_name] = url
        return url

    def _start_api(self, revision_name: str, context: Path, env: dict[str, str]) -> str:
        # The image's layout: the context's files under /app/api, the model at /app/model.
        app = context.parent / "app"
        if not app.exists():
            app.mkdir()
            (app / "api").symlink_to(context)
        port = free_port()
        log_path = self.logs / f"{revision_name}.log"
        process_env = {
            **os.environ,
            **env,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "MODEL_DIR": str(context / "model"),
            "K_REVISION": revision_name,
        }
        process_env.pop("AIP_HTTP_PORT", None)
        with log_path.open("w") as log:  # the child holds its own handle; ours can close
            process = subprocess.Popen(
                [sys.executable, "-m", "api"], cwd=app, env=process_env, stdout=log, stderr=log
            )
        self._processes[revision_name] = process
        url = f"http://127.0.0.1:{port}"
        health = env.get("AIP_HEALTH_ROUTE", "/health")
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log_path.read_text()[-2000:]
                raise RevisionError(
                    f"revision {revision_name} exited with {process.returncode} before "
                    f"listening on its port:\n{tail}"
                )
            try:
                with urllib.request.urlopen(url + health, timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return url
            except OSError:
                time.sleep(0.1)
        raise RevisionError(f"revision {revision_name} did not answer {health} in time")

    def close(self) -> None:
        for process in self._processes.values():
            process.terminate()
        for process in self._processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for gateway in self._gateways.values():
            gateway.stop()
        self._processes.clear()
        self._gateways.clear()
        self._urls.clear()


class CloudRun:
    """The Cloud Run double's revisions, really serving here through a Launcher."""

    def __init__(self, api: RunApi, launcher: Launcher) -> None:
        self.api = api
        self.launcher = launcher

    def on_revision(self, service: dict[str, Any], revision: dict[str, Any]) -> str:
        """Start a new revision as Cloud Run would; a revision that will not start fails."""
        container = revision["spec"]["containers"][0]
        env = {item["name"]: item.get("value", "") for item in container.get("env", [])}
        try:
            return self.launcher.start(revision["metadata"]["name"], container["image"], env)
        except RevisionError as error:
            raise RevisionFailed(str(error)) from error

    def url_and_local(self, service_name: str, tag: str | None) -> tuple[str, str]:
        """The public URL a caller would use, and where that revision answers here."""
        [service] = [s for s in self.api.services() if s["name"] == service_name]
        public = service["url"]
        if tag is not None:
            public = next(t["url"] for t in service["traffic"] if t["tag"] == tag)
        return public, self._serve(service_name, tag)

    def local_url_for(self, url: str) -> str:
        """Where a request to a service's URL or tag URL is served on this machine."""
        url = url.rstrip("/")
        for service in self.api.services():
            if url == service["url"]:
                return self._serve(service["name"], None)
            tag = next((t["tag"] for t in service["traffic"] if t["url"] == url), None)
            if tag is not None:
                return self._serve(service["name"], tag)
        raise LookupError(f"no Cloud Run service or tag answers at {url}")

    def _serve(self, service_name: str, tag: str | None) -> str:
        """Where the revision that a request to the service (or its tag) reaches serves.

        Revisions started by an earlier preflight run are started again on demand,
        from the image each was deployed with.
        """
        revision = self.api.serving_revision(service_name, tag)
        return self.launcher.start(revision["name"], revision["image"], revision["env"])
