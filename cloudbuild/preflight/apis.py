"""The double's APIs as preflight uses them, with Cloud Run revisions really serving."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cloudbuild.config import Config
from cloudbuild.double import Double
from cloudbuild.double.run_api import RevisionFailed, RunApi
from cloudbuild.preflight.serving import Launcher, RevisionError


class CloudRun:
    """Cloud Run's services, and the local URL behind any of their public URLs."""

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

    def services(self) -> list[dict[str, Any]]:
        return self.api.services()

    def url_and_local(self, service_name: str, tag: str | None) -> tuple[str, str]:
        """The public URL a caller would use, and where that revision answers here."""
        [service] = [s for s in self.services() if s["name"] == service_name]
        public = service["url"]
        if tag is not None:
            public = next(t["url"] for t in service["traffic"] if t["tag"] == tag)
        return public, self.local_url_for(public)

    def local_url_for(self, url: str) -> str:
        """Where a request to a service's URL or tag URL is served on this machine.

        Revisions started by an earlier preflight run are started again on demand,
        from the image each was deployed with.
        """
        for service in self.services():
            if url.rstrip("/") == service["url"]:
                tag = None
            else:
                tag = next(
                    (t["tag"] for t in service["traffic"] if t["url"] == url.rstrip("/")), None
                )
                if tag is None:
                    continue
            revision = self.api.serving_revision(service["name"], tag)
            return self.launcher.start(revision["name"], revision["image"], revision["env"])
        raise LookupError(f"no Cloud Run service or tag answers at {url}")


@dataclass
class Apis:
    double: Double
    run: CloudRun

    def models(self, config: Config) -> dict[str, dict]:
        """Every branch's LATEST pointer, by branch slug."""
        folder = self.double.storage.local_path(config.bucket, "models")
        found = {}
        for pointer in sorted(folder.glob("*/LATEST")):
            found[pointer.parent.name] = json.loads(pointer.read_text())
        return found


def register_apis(double: Double, launcher: Launcher) -> Apis:
    """Give the double the APIs the pipelines call beyond storage, Vertex AI, Cloud Build."""
    run_api = double.run
    cloud_run = CloudRun(run_api, launcher)
    run_api.on_revision = cloud_run.on_revision
    return Apis(double, cloud_run)
