"""The Service Management double: `gcloud endpoints` deploys the rendered spec to it.

The auth pipeline captures the config id from `gcloud endpoints services deploy
--format='value(serviceConfig.id)'` and saves `gcloud endpoints configs describe` as
ESPv2's service.json; a spec Endpoints would refuse must fail that deploy, naming why.
"""

from __future__ import annotations

import base64
import re
import subprocess

import pytest
import yaml

from cloudbuild import openapi
from cloudbuild.config import load
from cloudbuild.double import Double, discovery
from cloudbuild.double.servicemanagement_api import DOCUMENT, ServiceManagementApi
from tests.gcp_double_fixture import call, gcloud_runner

PROJECT = load().gcp_project_id
GATEWAY = "penguins-gateway-abc123-ew.a.run.app"
BACKEND = "https://penguins-api-abc123-ew.a.run.app"
CONFIG_ID = re.compile(r"\d{4}-\d{2}-\d{2}r(\d+)")


def rendered() -> dict:
    return openapi.render(load(), yaml.safe_load(openapi.SPEC_PATH.read_text()), GATEWAY, BACKEND)


@pytest.fixture
def gcloud(tmp_path):
    with Double(tmp_path / "gcp") as double:
        run = gcloud_runner(double, tmp_path, PROJECT, add_project_flag=True)

        def deploy(spec: dict, *flags: str) -> subprocess.CompletedProcess:
            path = tmp_path / "openapi.yaml"
            path.write_text(yaml.safe_dump(spec, sort_keys=False))
            return run("endpoints", "services", "deploy", str(path), *flags)

        run.deploy = deploy
        run.api, run.usage = double.servicemanagement, double.serviceusage
        yield run


def deploy_id(gcloud, spec: dict) -> str:
    result = gcloud.deploy(spec, "--format=value(serviceConfig.id)")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_deploy_prints_only_the_new_config_id_and_the_next_one_counts_up(gcloud):
    first = deploy_id(gcloud, rendered())
    assert CONFIG_ID.fullmatch(first.strip()), first
    assert first.endswith("r0\n")
    second = deploy_id(gcloud, rendered()).strip()
    assert second == first.strip()[:-1] + "1"
    assert gcloud.api.current_config(GATEWAY)["id"] == second
    sent = [
        (r["method"], r["path"].split(GATEWAY)[-1], r["status"])
        for r in gcloud.double.requests()
        if r["host"].startswith("servicemanagement.") and "/operations/" not in r["path"]
    ]
    assert sent[:4] == [
        ("GET", "", 404),
        ("POST", "/v1/services", 200),
        ("POST", "/configs:submit", 200),
        ("POST", "/rollouts", 200),
    ]
    # API keys work once the project enables the service, which gcloud does on creating it.
    assert GATEWAY in gcloud.usage.enabled(PROJECT)


def test_validate_only_creates_no_config_and_no_rollout(gcloud):
    deployed = deploy_id(gcloud, rendered()).strip()
    result = gcloud.deploy(rendered(), "--validate-only")
    assert result.returncode == 0, result.stderr
    assert [c["id"] for c in gcloud.api.configs(GATEWAY)] == [deployed]
    assert len(gcloud.api.rollouts(GATEWAY)) == 1


def test_configs_describe_returns_the_config_espv2_reads(gcloud):
    config_id = deploy_id(gcloud, rendered()).strip()
    result = gcloud(
        "endpoints", "configs", "describe", config_id, "--service", GATEWAY, "--format=json"
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert (config["name"], config["id"]) == (GATEWAY, config_id)
    assert "sourceInfo" not in config  # the BASIC view, as gcloud asks for
    for rule in config["backend"]["rules"]:
        assert rule["address"] == BACKEND
        assert rule["jwtAudience"] == BACKEND
        assert rule["pathTranslation"] == "APPEND_PATH_TO_ADDRESS"
        assert rule["deadline"] == openapi.BACKEND_DEADLINE_SECONDS
    [provider] = config["authentication"]["providers"]
    caller = load().service_account("caller")
    assert (provider["id"], provider["issuer"]) == (openapi.CALLER_SCHEME, caller)
    assert provider["audiences"] == f"https://{GATEWAY}"
    assert discovery.problems(discovery.document(DOCUMENT), "Service", config) == []


def test_a_spec_endpoints_would_refuse_fails_the_deploy_naming_each_problem(gcloud):
    broken = rendered()
    broken["x-google-backend"]["address"] = "ftp://penguins-api.example.com"
    broken["security"] = [{"api_key": [], "partner_key": []}]
    result = gcloud.deploy(broken, "--format=value(serviceConfig.id)")
    assert result.returncode != 0
    assert "Cannot convert to service config." in result.stderr
    assert "x-google-backend.address: must be an https:// (or http://) URL" in result.stderr
    assert "security[0].partner_key: no securityDefinitions entry of that name" in result.stderr
    assert result.stdout == ""
    assert gcloud.api.configs(GATEWAY) == []

    no_host = rendered()
    del no_host["host"]
    result = gcloud.deploy(no_host)
    assert result.returncode != 0
    assert "no host was specified" in result.stderr


def test_a_spec_is_refused_for_a_service_other_than_its_host(gcloud):
    deploy_id(gcloud, rendered())
    spec = rendered()
    spec["host"] = "another-gateway-abc123-ew.a.run.app"
    contents = base64.b64encode(yaml.safe_dump(spec).encode()).decode()
    body = {"configSource": {"files": [{"fileContents": contents, "fileType": "OPEN_API_YAML"}]}}
    response = call(
        gcloud.double, "POST",
        f"http://servicemanagement.googleapis.test/v1/services/{GATEWAY}/configs:submit",
        json=body,
    )  # fmt: skip
    assert response.status_code == 400
    assert "is not the service it is submitted to" in response.json()["error"]["message"]


def test_routes_follow_the_current_rollout_and_survive_a_restart(gcloud, tmp_path):
    deploy_id(gcloud, rendered())
    routes = {route["path"]: route for route in gcloud.api.routes(GATEWAY)}
    assert set(routes) == {"/health", "/predict", "/lineage"}
    assert [routes[p]["method"] for p in ("/health", "/predict", "/lineage")] == [
        "GET",
        "POST",
        "GET",
    ]
    assert routes["/predict"]["operation_id"] == "predict"
    issuer = load().service_account("caller")
    for route in routes.values():
        assert route["backend_address"] == BACKEND
        assert route["jwt_audience"] == BACKEND
        assert route["deadline"] == openapi.BACKEND_DEADLINE_SECONDS
    assert routes["/health"]["security"] == {"api_key": None, "jwt": []}
    for path in ("/predict", "/lineage"):
        security = routes[path]["security"]
        assert security["api_key"] == {"in": "header", "name": "x-api-key"}
        assert [provider["issuer"] for provider in security["jwt"]] == [issuer]
    restarted = ServiceManagementApi(tmp_path / "gcp" / "servicemanagement")
    assert restarted.routes(GATEWAY) == gcloud.api.routes(GATEWAY)


def test_config_ids_count_past_nine_in_number_order(tmp_path):
    with Double(tmp_path / "gcp") as double:
        api = double.servicemanagement
        base = "http://servicemanagement.googleapis.test/v1"
        created = call(
            double, "POST", f"{base}/services",
            json={"serviceName": GATEWAY, "producerProjectId": PROJECT},
        )  # fmt: skip
        assert created.status_code == 200, created.text
        contents = base64.b64encode(yaml.safe_dump(rendered()).encode()).decode()
        source = {"files": [{"fileContents": contents, "fileType": "OPEN_API_YAML"}]}
        for _ in range(11):
            submitted = call(
                double, "POST", f"{base}/services/{GATEWAY}/configs:submit",
                json={"configSource": source},
            )  # fmt: skip
            assert submitted.status_code == 200, submitted.text
    ids = [config["id"] for config in api.configs(GATEWAY)]
    assert [int(CONFIG_ID.fullmatch(i)[1]) for i in ids] == list(range(10, -1, -1))
