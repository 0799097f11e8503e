"""The project's one config file, `project.yaml`, loaded and checked in one place.

Copier writes the file from the template's answers; everything else (the Makefile,
the build steps, preflight) reads it through `load()`, so a value is never
copied into a second file where it could drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = ROOT / "project.yaml"

# Mirrors the validators in copier.yml, so a hand edit is held to the same rules.
PROJECT_NAME = re.compile(r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$")
GCP_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]$")
AR_REPOSITORY = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$")
GITHUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")


class ConfigError(ValueError):
    """project.yaml is missing a value or holds one Google Cloud would refuse."""


@dataclass(frozen=True)
class Training:
    data_uri: str
    machine_type: str
    accelerator_type: str
    accelerator_count: int
    replica_count: int
    timeout_minutes: int


@dataclass(frozen=True)
class Api:
    min_instances: int
    max_instances: int
    concurrency: int
    cpu: str
    memory: str


@dataclass(frozen=True)
class Config:
    project_name: str
    gcp_project_id: str
    region: str
    github_owner: str
    github_repository: str
    production_branch: str
    artifact_registry_repository: str
    bucket: str
    training: Training
    api: Api
    gateway_enabled: bool

    @property
    def registry(self) -> str:
        """The Artifact Registry Docker repository every image is pushed to."""
        return (
            f"{self.region}-docker.pkg.dev/{self.gcp_project_id}/"
            f"{self.artifact_registry_repository}"
        )

    def service_account(self, role: str) -> str:
        """The email of one of the project's service accounts (see SERVICE_ACCOUNTS)."""
        if role not in SERVICE_ACCOUNTS:
            raise KeyError(f"unknown service account role {role!r}")
        return f"{self.project_name}-{role}@{self.gcp_project_id}.iam.gserviceaccount.com"


# One identity per job, so each holds only the roles its job needs.
SERVICE_ACCOUNTS = {
    "training": "runs the training pipeline (Cloud Build)",
    "api": "runs the api pipeline (Cloud Build)",
    "auth": "runs the auth pipeline (Cloud Build)",
    "job": "the Vertex AI training job runs as this account",
    "run": "the API's Cloud Run service runs as this account",
    "gw": "the ESPv2 gateway's Cloud Run service runs as this account",
    "caller": "the website signs its JWTs as this account when it calls from outside Google Cloud",
}


def _get(data: dict, dotted: str):
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"project.yaml: missing value '{dotted}'")
        node = node[part]
    return node


def _text(data: dict, dotted: str, pattern: re.Pattern | None = None, hint: str = "") -> str:
    value = _get(data, dotted)
    if not isinstance(value, str):
        raise ConfigError(f"project.yaml: '{dotted}' must be text, got {value!r}")
    if pattern is not None and not pattern.match(value):
        raise ConfigError(f"project.yaml: '{dotted}' = {value!r} is not valid: {hint}")
    return value


def _int(data: dict, dotted: str, low: int, high: int) -> int:
    value = _get(data, dotted)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"project.yaml: '{dotted}' must be a whole number from {low} to {high}, got {value!r}"
        )
    return value


def parse(data: object) -> Config:
    """Turn the parsed YAML into a Config, or raise ConfigError naming the bad key."""
    if not isinstance(data, dict):
        raise ConfigError("project.yaml: expected a mapping at the top level")
    training = Training(
        data_uri=_text(
            data,
            "training.data_uri",
            re.compile(r"^gs://[a-z0-9][a-z0-9_.-]+/.+"),
            "a gs:// object",
        ),
        machine_type=_text(
            data, "training.machine_type", re.compile(r"^[a-z0-9]+-[a-z0-9-]+$"), "a machine type"
        ),
        accelerator_type=_text(
            data,
            "training.accelerator_type",
            re.compile(r"^([A-Z0-9_]+)?$"),
            "e.g. NVIDIA_TESLA_T4",
        ),
        accelerator_count=_int(data, "training.accelerator_count", 0, 16),
        replica_count=_int(data, "training.replica_count", 1, 64),
        timeout_minutes=_int(data, "training.timeout_minutes", 1, 23 * 60),
    )
    if bool(training.accelerator_type) != bool(training.accelerator_count):
        raise ConfigError(
            "project.yaml: set training.accelerator_type and training.accelerator_count together"
        )
    api = Api(
        min_instances=_int(data, "api.min_instances", 0, 100),
        max_instances=_int(data, "api.max_instances", 1, 1000),
        concurrency=_int(data, "api.concurrency", 1, 1000),
        cpu=str(_get(data, "api.cpu")),
        memory=_text(data, "api.memory", re.compile(r"^[0-9]+(Mi|Gi)$"), "e.g. 512Mi or 1Gi"),
    )
    gateway_enabled = _get(data, "gateway.enabled")
    if not isinstance(gateway_enabled, bool):
        raise ConfigError("project.yaml: 'gateway.enabled' must be true or false")
    return Config(
        project_name=_text(
            data, "project_name", PROJECT_NAME, "3-20 of a-z, 0-9 and '-', starting with a letter"
        ),
        gcp_project_id=_text(
            data,
            "gcp_project_id",
            GCP_PROJECT_ID,
            "6-30 of a-z, 0-9 and '-', starting with a letter",
        ),
        region=_text(data, "region", REGION, "a Google Cloud region such as europe-west1"),
        github_owner=_text(data, "github.owner", GITHUB_NAME, "a GitHub user or organisation"),
        github_repository=_text(data, "github.repository", GITHUB_NAME, "a GitHub repository name"),
        production_branch=_text(data, "production_branch", BRANCH, "a plain git branch name"),
        artifact_registry_repository=_text(
            data, "artifact_registry_repository", AR_REPOSITORY, "lowercase letters, digits, '-'"
        ),
        bucket=_text(data, "bucket", BUCKET, "a Cloud Storage bucket name"),
        training=training,
        api=api,
        gateway_enabled=gateway_enabled,
    )


def load(path: Path | str = DEFAULT_PATH) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: run from the project's root") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    return parse(data)
