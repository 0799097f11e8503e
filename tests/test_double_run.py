"""The Cloud Run and Service Usage doubles, driven by the real gcloud as the pipelines drive it.

The commands are those of cloudbuild/api.yaml and cloudbuild/auth.yaml, with the values
`python -m cloudbuild env` gives the example project. What gcloud refuses by itself is
checked to fail before anything is sent; what Cloud Run refuses, to fail at the double
with Cloud Run's message.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from cloudbuild.bootstrap import APIS
from cloudbuild.double import Double
from cloudbuild.double.gcloud import gcloud_env
from cloudbuild.double.run_api import RevisionFailed, RunApi, service_host
from cloudbuild.double.serviceusage_api import ServiceUsageApi
from cloudbuild.env import API_STARTUP_PROBE
from tests.gcp_double_fixture import call

PROJECT = "example-project-123"
REGION = "europe-west1"
SHA = "0123456789abcdef0123456789abcdef01234567"
API_SERVICE = "penguins-api"
GATEWAY_SERVICE = "penguins-gateway"
RUN_SA = f"penguins-run@{PROJECT}.iam.gserviceaccount.com"
GW_SA = f"penguins-gw@{PROJECT}.iam.gserviceaccount.com"
API_IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/ml/penguins-api"
GATEWAY_PLACEHOLDER_IMAGE = "us-docker.pkg.dev/cloudrun/container/hello"
GATEWAY_IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/ml/penguins-gateway:2.55.7-2025-01-01r0"
PRODUCTION = "main-0d6e40"
BRANCH = "feature-new-m-736d41"
KNATIVE = f"http://{REGION}-run.googleapis.test/apis/serving.knative.dev/v1/namespaces/{PROJECT}"
IAM = f"http://run.googleapis.test/v1/projects/{PROJECT}/locations/{REGION}/services"


def deploy_api(slug: str, *traffic: str, image: str | None = None) -> list[str]:
    """api.yaml's deploy step for the branch whose slug is `slug`."""
    return [
        "run", "deploy", API_SERVICE, f"--project={PROJECT}", f"--region={REGION}",
        f"--image={image or f'{API_IMAGE}:{slug}-{SHA}'}", f"--service-account={RUN_SA}",
        "--no-allow-unauthenticated",
        f"--tag={slug}", f"--labels=branch={slug},commit={SHA},project=penguins",
        "--cpu=1", "--memory=1Gi", "--concurrency=40",
        "--min-instances=0", "--max-instances=10",
        "--cpu-boost", f"--startup-probe={API_STARTUP_PROBE}", *traffic,
    ]  # fmt: skip


def describe(service: str, value: str) -> list[str]:
    return [
        "run", "services", "describe", service, f"--project={PROJECT}", f"--region={REGION}",
        f"--format=value({value})",
    ]  # fmt: skip


UPDATE_TRAFFIC = [
    "run", "services", "update-traffic", API_SERVICE, f"--project={PROJECT}", f"--region={REGION}",
    f"--to-tags={BRANCH}=100",
]  # fmt: skip
GATEWAY_INVOKER = [
    "run", "services", "add-iam-policy-binding", API_SERVICE, f"--project={PROJECT}",
    f"--region={REGION}", f"--member=serviceAccount:{GW_SA}", "--role=roles/run.invoker",
]  # fmt: skip
GATEWAY_PLACEHOLDER = [
    "run", "deploy", GATEWAY_SERVICE, f"--project={PROJECT}", f"--region={REGION}",
    f"--image={GATEWAY_PLACEHOLDER_IMAGE}", f"--service-account={GW_SA}",
    "--no-allow-unauthenticated",
]  # fmt: skip
DEPLOY_GATEWAY = [
    "run", "deploy", GATEWAY_SERVICE, f"--project={PROJECT}", f"--region={REGION}",
    f"--image={GATEWAY_IMAGE}", f"--service-account={GW_SA}", "--allow-unauthenticated",
    f"--labels=branch={PRODUCTION},commit={SHA},project=penguins",
]  # fmt: skip


@dataclass
class Cloud:
    """A running double with Cloud Run and Service Usage, and the real gcloud pointed at it."""

    double: Double
    config_dir: Path
    # (service, revision) for each revision on_revision was asked to serve
    started: list[tuple[str, str]] = field(default_factory=list)

    @property
    def run(self) -> RunApi:
        return self.double.run

    @property
    def usage(self) -> ServiceUsageApi:
        return self.double.serviceusage

    def gcloud(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, **gcloud_env(self.double, self.config_dir, PROJECT)}
        return subprocess.run(
            ["gcloud", *args], env=env, capture_output=True, text=True, timeout=120
        )

    def ok(self, *args: str) -> str:
        result = self.gcloud(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def http(self, method: str, url: str, body: Any = None) -> requests.Response:
        return call(self.double, method, url, json=body)

    def service(self, name: str = API_SERVICE) -> dict[str, Any]:
        [found] = [s for s in self.run.services() if s["name"] == name]
        return found

    def sent(self, method: str, path_end: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.double.requests()
            if r["method"] == method and r["path"].endswith(path_end)
        ]


def serve_locally(cloud: Cloud) -> Callable[[dict, dict], str]:
    """An on_revision that pretends each revision serves on its own loopback port."""

    def on_revision(service: dict, revision: dict) -> str:
        if "broken" in revision["spec"]["containers"][0]["image"]:
            raise RevisionFailed("The user-provided container failed to start and listen.")
        cloud.started.append((service["metadata"]["name"], revision["metadata"]["name"]))
        return f"http://127.0.0.1:{8000 + len(cloud.started)}"

    return on_revision


@contextmanager
def running(state: Path, config_dir: Path, started: list | None = None) -> Iterator[Cloud]:
    with Double(state) as double:
        cloud = Cloud(double, config_dir, started if started is not None else [])
        double.run.on_revision = serve_locally(cloud)
        yield cloud


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    with running(tmp_path / "gcp", tmp_path / "gcloud") as running_cloud:
        yield running_cloud


def revision_names(cloud: Cloud) -> list[str]:
    return [r["name"] for r in cloud.service()["revisions"]]


def percents(cloud: Cloud) -> dict[str, int]:
    shares: dict[str, int] = {}
    for target in cloud.service()["traffic"]:
        shares[target["revision"]] = shares.get(target["revision"], 0) + target["percent"]
    return shares


# ---- the api pipeline -------------------------------------------------------------------


def test_the_first_deploy_creates_the_service_with_its_tag_and_all_the_traffic(cloud):
    # api.yaml: no service yet, so no --no-traffic.
    assert cloud.gcloud(*describe(API_SERVICE, "metadata.name")).returncode != 0
    cloud.ok(*deploy_api(PRODUCTION))

    host = service_host(PROJECT, REGION, API_SERVICE)
    assert cloud.ok(*describe(API_SERVICE, "metadata.name")) == API_SERVICE
    assert cloud.ok(*describe(API_SERVICE, "status.url")) == f"https://{host}"
    [revision] = revision_names(cloud)
    assert revision.startswith(f"{API_SERVICE}-00001-")
    assert cloud.service()["traffic"] == [
        {"revision": revision, "percent": 100, "tag": None, "url": None, "latest": True},
        {
            "revision": revision,
            "percent": 0,
            "tag": PRODUCTION,
            "url": f"https://{PRODUCTION}---{host}",
            "latest": False,
        },
    ]
    summary = cloud.service()["revisions"][0]
    assert summary["image"] == f"{API_IMAGE}:{PRODUCTION}-{SHA}"
    assert summary["serviceAccount"] == RUN_SA
    assert summary["labels"] == {"branch": PRODUCTION, "commit": SHA, "project": "penguins"}
    assert cloud.service()["labels"] == summary["labels"]
    assert cloud.started == [(API_SERVICE, revision)]
    assert summary["localUrl"] == "http://127.0.0.1:8001"
    # gcloud found Cloud Run disabled and enabled it before deploying.
    assert cloud.usage.enabled(PROJECT) == {"run.googleapis.com"}

    stored = cloud.http("GET", f"{KNATIVE}/revisions/{revision}").json()
    assert "localUrl" not in json.dumps(stored)
    assert stored["spec"]["containerConcurrency"] == 40
    assert stored["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert stored["spec"]["containers"][0]["ports"] == [{"name": "http1", "containerPort": 8080}]
    annotations = stored["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/maxScale"] == "10"
    assert annotations["run.googleapis.com/startup-cpu-boost"] == "True"
    # No traffic until the model is loaded: the health route answers only then.
    probe = stored["spec"]["containers"][0]["startupProbe"]
    assert probe["httpGet"]["path"] == "/health"
    assert (probe["periodSeconds"], probe["timeoutSeconds"], probe["failureThreshold"]) == (
        1,
        1,
        120,
    )


def test_a_branch_deploy_without_traffic_gets_a_tag_url_and_update_traffic_moves_it(cloud):
    cloud.ok(*deploy_api(PRODUCTION))
    cloud.ok(*deploy_api(BRANCH, "--no-traffic"))

    production, branch = revision_names(cloud)
    assert branch.startswith(f"{API_SERVICE}-00002-")
    assert percents(cloud) == {production: 100, branch: 0}
    tags = {t["tag"]: t for t in cloud.service()["traffic"] if t["tag"]}
    assert tags[BRANCH]["revision"] == branch
    assert tags[BRANCH]["url"] == f"https://{BRANCH}---{service_host(PROJECT, REGION, API_SERVICE)}"
    assert cloud.run.route(API_SERVICE) == "http://127.0.0.1:8001"
    assert cloud.run.route(API_SERVICE, tag=BRANCH) == "http://127.0.0.1:8002"
    serving = cloud.run.serving_revision(API_SERVICE, tag=BRANCH)
    assert (serving["name"], serving["image"]) == (branch, f"{API_IMAGE}:{BRANCH}-{SHA}")

    cloud.ok(*UPDATE_TRAFFIC)
    assert percents(cloud) == {production: 0, branch: 100}
    assert cloud.run.route(API_SERVICE) == "http://127.0.0.1:8002"
    assert revision_names(cloud) == [production, branch]  # traffic alone makes no revision


def test_no_traffic_on_a_new_service_is_refused_by_gcloud_before_it_is_sent(cloud):
    result = cloud.gcloud(*deploy_api(PRODUCTION, "--no-traffic"))
    assert result.returncode != 0
    assert "--no-traffic not supported when creating a new service." in result.stderr
    assert cloud.sent("POST", "/services") == []
    assert cloud.run.services() == []


def test_the_gateway_identity_becomes_an_invoker_of_the_private_api(cloud):
    cloud.ok(*deploy_api(PRODUCTION))
    cloud.ok(*GATEWAY_INVOKER)

    assert cloud.service()["invokers"] == [f"serviceAccount:{GW_SA}"]
    policy = json.loads(
        cloud.ok(
            "run",
            "services",
            "get-iam-policy",
            API_SERVICE,
            f"--project={PROJECT}",
            f"--region={REGION}",
            "--format=json",
        )  # fmt: skip
    )
    assert policy["bindings"] == [
        {"role": "roles/run.invoker", "members": [f"serviceAccount:{GW_SA}"]}
    ]


def test_the_gateway_placeholder_is_private_and_the_deployed_gateway_public(cloud):
    # auth.yaml's gateway-address step: no gateway yet, so a private placeholder reserves its URL.
    assert cloud.gcloud(*describe(GATEWAY_SERVICE, "status.url")).returncode != 0
    cloud.ok(*GATEWAY_PLACEHOLDER)
    url = cloud.ok(*describe(GATEWAY_SERVICE, "status.url"))
    assert url == f"https://{service_host(PROJECT, REGION, GATEWAY_SERVICE)}"
    assert cloud.service(GATEWAY_SERVICE)["invokers"] == []

    cloud.ok(*DEPLOY_GATEWAY)
    assert cloud.service(GATEWAY_SERVICE)["invokers"] == ["allUsers"]
    assert cloud.ok(*describe(GATEWAY_SERVICE, "status.url")) == url

    cloud.ok(*GATEWAY_PLACEHOLDER)
    assert cloud.service(GATEWAY_SERVICE)["invokers"] == []


def test_a_tag_and_service_name_over_46_characters_are_refused_as_cloud_run_does(cloud):
    tag = "b" * (47 - len(API_SERVICE))
    result = cloud.gcloud(*deploy_api(tag))
    assert result.returncode != 0
    assert "Combined traffic tag and service name cannot exceed 46 characters" in result.stderr
    assert cloud.run.services() == []


def test_a_service_name_gcloud_accepts_but_cloud_run_does_not_is_refused(cloud):
    name = "a" * 50  # gcloud allows 63 characters, Cloud Run fewer than 50
    result = cloud.gcloud(
        "run", "deploy", name, f"--project={PROJECT}", f"--region={REGION}",
        f"--image={GATEWAY_PLACEHOLDER_IMAGE}", "--no-allow-unauthenticated",
    )  # fmt: skip
    assert result.returncode != 0
    assert "must be less than 50 characters" in result.stderr


def test_a_revision_that_does_not_start_fails_the_deploy_and_the_traffic_stays(cloud):
    cloud.ok(*deploy_api(PRODUCTION))
    result = cloud.gcloud(*deploy_api(BRANCH, "--no-traffic", image=f"{API_IMAGE}:broken"))
    assert result.returncode != 0
    assert "is not ready and cannot serve traffic" in result.stderr
    assert "failed to start and listen" in result.stderr

    production, broken = cloud.service()["revisions"]
    assert broken["failure"] and broken["localUrl"] is None
    listed = cloud.ok(
        "run", "revisions", "list", f"--service={API_SERVICE}", f"--project={PROJECT}",
        f"--region={REGION}", "--format=value(metadata.name,status.conditions[0].status)",
    )  # fmt: skip
    assert set(listed.splitlines()) == {f"{production['name']}\tTrue", f"{broken['name']}\tFalse"}
    assert not cloud.service()["ready"]
    assert percents(cloud) == {production["name"]: 100}
    assert cloud.run.route(API_SERVICE) == production["localUrl"]


def test_the_services_survive_a_restart_of_the_double(tmp_path):
    state, config = tmp_path / "gcp", tmp_path / "gcloud"
    with running(state, config) as before:
        before.ok(*deploy_api(PRODUCTION))
        url = before.ok(*describe(API_SERVICE, "status.url"))
    with running(state, config, started=before.started) as after:
        listed = after.ok(
            "run", "services", "list", f"--project={PROJECT}", f"--region={REGION}",
            "--format=value(metadata.name,status.url)",
        )  # fmt: skip
        assert listed == f"{API_SERVICE}\t{url}"
        after.ok(*deploy_api(BRANCH, "--no-traffic"))
        production, branch = revision_names(after)
        assert branch.startswith(f"{API_SERVICE}-00002-")
        assert after.run.route(API_SERVICE) == "http://127.0.0.1:8001"
        assert after.run.route(API_SERVICE, tag=BRANCH) == "http://127.0.0.1:8002"


# ---- what gcloud cannot send, sent directly ----------------------------------------------


def service_body(name: str) -> dict[str, Any]:
    """The least a Knative Service needs: a name and a container image."""
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": PROJECT},
        "spec": {"template": {"spec": {"containers": [{"image": f"{API_IMAGE}:x"}]}}},
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda body: body["spec"]["template"]["spec"]["containers"][0].update(imag="x"),
            "Unknown name \"imag\" at 'spec.template.spec.containers[0]': Cannot find field.",
        ),
        (
            lambda body: body["spec"].update(traffic=[{"latestRevision": True, "percent": 90}]),
            "Traffic targets sum to 90, want 100",
        ),
        (
            lambda body: body["spec"].update(
                traffic=[{"revisionName": f"{API_SERVICE}-00009-abc", "percent": 100}]
            ),
            f"Revision '{API_SERVICE}-00009-abc' does not exist.",
        ),
        (
            lambda body: body["spec"]["template"]["spec"]["containers"][0].update(
                env=[{"name": "PORT", "value": "9000"}]
            ),
            "The following reserved env names were provided: PORT.",
        ),
    ],
)
def test_cloud_run_refuses_what_it_cannot_run(cloud, change, message):
    body = service_body(API_SERVICE)
    change(body)
    response = cloud.http("POST", f"{KNATIVE}/services", body)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert cloud.run.services() == []


def test_a_revision_keeps_its_environment_for_whoever_runs_it_again(cloud):
    body = service_body(API_SERVICE)
    secret = {"secretKeyRef": {"name": "api-key", "key": "latest"}}
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "MODEL_URI", "value": "gs://bucket/models/main/"},
        {"name": "API_KEY", "valueFrom": secret},
    ]
    assert cloud.http("POST", f"{KNATIVE}/services", body).status_code == 200
    serving = cloud.run.serving_revision(API_SERVICE)
    assert serving["env"] == {"MODEL_URI": "gs://bucket/models/main/", "API_KEY": ""}
    assert serving["image"] == f"{API_IMAGE}:x"


def test_a_stale_write_is_refused_for_the_service_and_for_its_policy(cloud):
    created = cloud.http("POST", f"{KNATIVE}/services", service_body(API_SERVICE)).json()
    ready = created["status"]["conditions"][0]
    assert (ready["type"], ready["status"]) == ("Ready", "True")
    fresh = cloud.http("PUT", f"{KNATIVE}/services/{API_SERVICE}", created)
    assert fresh.status_code == 200
    assert fresh.json()["metadata"]["generation"] == 2
    stale = cloud.http("PUT", f"{KNATIVE}/services/{API_SERVICE}", created)
    assert stale.status_code == 409

    policy = cloud.http("GET", f"{IAM}/{API_SERVICE}:getIamPolicy").json()
    binding = {"role": "roles/run.invoker", "members": [f"serviceAccount:{GW_SA}"]}
    first = cloud.http(
        "POST", f"{IAM}/{API_SERVICE}:setIamPolicy", {"policy": {**policy, "bindings": [binding]}}
    )
    assert first.status_code == 200
    second = cloud.http(
        "POST", f"{IAM}/{API_SERVICE}:setIamPolicy", {"policy": {**policy, "bindings": []}}
    )
    assert (second.status_code, second.json()["error"]["status"]) == (409, "ABORTED")
    assert cloud.service()["invokers"] == [f"serviceAccount:{GW_SA}"]


# ---- Service Usage -----------------------------------------------------------------------


def test_gcloud_services_enable_turns_on_apis_and_the_gateways_endpoints_service(cloud):
    cloud.ok("services", "enable", *APIS, "--project", PROJECT)  # bootstrap
    gateway_host = service_host(PROJECT, REGION, GATEWAY_SERVICE)
    cloud.ok("services", "enable", gateway_host, f"--project={PROJECT}")  # auth.yaml
    assert cloud.usage.enabled(PROJECT) == {*APIS, gateway_host}

    typo = cloud.gcloud("services", "enable", "aiplatfrom.googleapis.com", "--project", PROJECT)
    assert typo.returncode != 0
    assert "Not found or permission denied for service(s): aiplatfrom.googleapis.com" in (
        typo.stderr
    )
    # Both enables answered pending operations, and gcloud waited for them to be done.
    assert len([r for r in cloud.double.requests() if r["path"].startswith("/v1/operations/")]) == 2
