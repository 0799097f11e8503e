"""The environment that points the real `gcloud` CLI at the double.

gcloud derives regional hosts by prefixing the endpoint's host with the region, so
every API gets a made-up host under googleapis.test and reaches the double as
gcloud's HTTP proxy (see shared offline-gcloud notes). A throwaway CLOUDSDK_CONFIG
keeps the user's own gcloud configuration untouched, and a fake token means gcloud
never asks anyone to log in.
"""

from __future__ import annotations

from pathlib import Path

from cloudbuild.double.server import FAKE_DOMAIN, Double

APIS = (
    "aiplatform",
    "artifactregistry",
    "cloudbuild",
    "cloudresourcemanager",
    "iam",
    "run",
    "servicemanagement",
    "serviceusage",
    "storage",
)


def gcloud_env(double: Double, config_dir: Path, project: str) -> dict[str, str]:
    env = {
        **double.env(),
        "CLOUDSDK_CONFIG": str(config_dir),
        "CLOUDSDK_AUTH_ACCESS_TOKEN": "offline-double-token",
        "CLOUDSDK_CORE_PROJECT": project,
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        # The double answers at once: backing off and retrying only hides its answer.
        "CLOUDSDK_STORAGE_MAX_RETRIES": "0",
    }
    for api in APIS:
        env[f"CLOUDSDK_API_ENDPOINT_OVERRIDES_{api.upper()}"] = f"http://{api}.{FAKE_DOMAIN}/"
    return env
