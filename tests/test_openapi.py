"""The gateway's OpenAPI spec and cloudbuild/openapi.py, which renders and checks it."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from cloudbuild.config import load
from cloudbuild.openapi import (
    DOCKERFILE,
    SPEC_PATH,
    OpenApiError,
    esp_version,
    operations,
    read_spec,
    render,
    render_main,
    validate,
    validate_main,
)

GATEWAY_HOST = "penguins-gw-abc123-ew.a.run.app"
BACKEND_URL = "https://penguins-api-abc123-ew.a.run.app"
CALLER = "penguins-caller@example-project-123.iam.gserviceaccount.com"

pytest_plugins = ["tests.api_model_fixture"]


@pytest.fixture
def spec() -> dict:
    return read_spec(SPEC_PATH)


@pytest.fixture
def rendered(spec) -> dict:
    return render(load(), spec, GATEWAY_HOST, BACKEND_URL)


def test_the_rendered_spec_is_valid(rendered):
    assert validate(rendered) == []


def test_the_rendered_spec_is_valid_openapi_2(rendered):
    from openapi_spec_validator import OpenAPIV2SpecValidator
    from openapi_spec_validator import validate as validate_swagger

    validate_swagger(rendered, cls=OpenAPIV2SpecValidator)


def test_the_shipped_spec_is_refused_until_rendered(spec):
    problems = validate(spec)
    assert "host: missing; it is the gateway's host name, set by render-openapi" in problems
    assert any(problem.startswith("x-google-backend: missing") for problem in problems)
    assert any(
        problem.startswith("securityDefinitions.caller_sa.x-google-issuer") for problem in problems
    )


def test_render_fills_in_the_deployment(rendered):
    assert rendered["host"] == GATEWAY_HOST
    assert rendered["x-google-backend"] == {
        "address": BACKEND_URL,
        "jwt_audience": BACKEND_URL,
        "path_translation": "APPEND_PATH_TO_ADDRESS",
        "deadline": 60.0,
    }
    caller = rendered["securityDefinitions"]["caller_sa"]
    assert caller["x-google-issuer"] == CALLER == load().service_account("caller")
    assert caller["x-google-jwks_uri"] == (
        f"https://www.googleapis.com/robot/v1/metadata/x509/{CALLER}"
    )
    assert caller["x-google-audiences"] == f"https://{GATEWAY_HOST}"


def test_render_gives_the_backend_longer_than_espv2s_default_deadline(rendered):
    assert rendered["x-google-backend"]["deadline"] > 15


def test_render_does_not_change_its_input(spec):
    before = copy.deepcopy(spec)
    render(load(), spec, GATEWAY_HOST, BACKEND_URL)
    assert spec == before


@pytest.mark.parametrize(
    ("backend_url", "address", "audience"),
    [
        pytest.param(BACKEND_URL + "/", BACKEND_URL, BACKEND_URL, id="trailing-slash"),
        # Cloud Run refuses a tag URL as the ID token's audience (gotcha G16).
        pytest.param(
            "https://c-1a2b3c4---penguins-api-abc123-ew.a.run.app",
            "https://c-1a2b3c4---penguins-api-abc123-ew.a.run.app",
            BACKEND_URL,
            id="tag-url",
        ),
    ],
)
def test_render_audience_is_the_services_own_url(spec, backend_url, address, audience):
    backend = render(load(), spec, GATEWAY_HOST, backend_url)["x-google-backend"]
    assert (backend["address"], backend["jwt_audience"]) == (address, audience)


@pytest.mark.parametrize(
    ("gateway_host", "message"),
    [
        ("https://" + GATEWAY_HOST, "without a scheme"),
        (GATEWAY_HOST + "/v1", "has no path"),
        (GATEWAY_HOST + ":443", "has no port"),
        ("", "missing"),
        ("Gateway.a.run.app", "is not a DNS label"),
    ],
)
def test_render_refuses_a_bad_gateway_host(spec, gateway_host, message):
    with pytest.raises(OpenApiError, match=message):
        render(load(), spec, gateway_host, BACKEND_URL)


@pytest.mark.parametrize(
    "backend_url",
    [
        "http://penguins-api-abc123-ew.a.run.app",
        "penguins-api-abc123-ew.a.run.app",
        BACKEND_URL + "/v1",
        BACKEND_URL + "?x=1",
        "https://[::1",
    ],
)
def test_render_refuses_a_bad_backend_url(spec, backend_url):
    with pytest.raises(OpenApiError, match="backend URL"):
        render(load(), spec, GATEWAY_HOST, backend_url)


def test_render_needs_the_caller_scheme(spec):
    del spec["securityDefinitions"]["caller_sa"]
    with pytest.raises(OpenApiError, match="securityDefinitions.caller_sa"):
        render(load(), spec, GATEWAY_HOST, BACKEND_URL)


def test_health_is_open_and_every_other_operation_needs_a_key_and_a_jwt(rendered):
    for path, method, operation in operations(rendered):
        effective = operation.get("security", rendered.get("security"))
        if (path, method) == ("/health", "get"):
            assert effective == [], "health checks must work without credentials"
        else:
            # One requirement holding both schemes: AND, not OR.
            assert effective == [{"api_key": [], "caller_sa": []}], f"{method} {path}"


def test_the_api_key_is_read_from_a_header(spec):
    assert spec["securityDefinitions"]["api_key"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }


def test_the_spec_has_the_apis_operations(spec):
    found = {(path, method, op["operationId"]) for path, method, op in operations(spec)}
    assert found == {
        ("/health", "get", "health"),
        ("/predict", "post", "predict"),
        ("/lineage", "get", "lineage"),
    }


@pytest.fixture(scope="module")
def app_openapi(api_model_dir) -> dict:
    """The API's own OpenAPI document, taken while it serves a model.

    The predict route exists only once the lifespan has loaded a model, since its
    request model is derived from the model's schema.
    """
    app = create_app(Settings(model_dir=api_model_dir))
    with TestClient(app):
        return app.openapi()


def test_the_spec_has_the_apps_routes(spec, app_openapi):
    app_routes = {(path, method) for path, item in app_openapi["paths"].items() for method in item}
    assert {(path, method) for path, method, _ in operations(spec)} == app_routes


def fields(document: dict, schema: dict) -> tuple[set[str], set[str]]:
    """A schema's property names and its required ones, after following a local $ref."""
    if "$ref" in schema:
        target = document
        for key in schema["$ref"].removeprefix("#/").split("/"):
            target = target[key]
        schema = target
    return set(schema.get("properties", {})), set(schema.get("required", []))


def test_the_spec_has_the_apps_request_and_response_fields(spec, app_openapi):
    for path, method, operation in operations(spec):
        app_operation = app_openapi["paths"][path][method]
        app_response = app_operation["responses"]["200"]["content"]["application/json"]
        assert fields(spec, operation["responses"]["200"]["schema"]) == fields(
            app_openapi, app_response["schema"]
        ), f"{method} {path} response"
        bodies = [
            parameter for parameter in operation.get("parameters", []) if parameter["in"] == "body"
        ]
        if "requestBody" in app_operation:
            app_body = app_operation["requestBody"]["content"]["application/json"]["schema"]
            assert len(bodies) == 1, f"{method} {path} takes a body"
            assert fields(spec, bodies[0]["schema"]) == fields(app_openapi, app_body)
        else:
            assert bodies == [], f"{method} {path} takes no body"


DELETE = object()
PREDICT = ("paths", "/predict", "post")
QUOTA_LIMIT = ("x-google-management", "quota", "limits", 0)
METRIC = ("x-google-management", "metrics", 0)
CALLER_SA = ("securityDefinitions", "caller_sa")
API_KEY = ("securityDefinitions", "api_key")
BACKEND = ("x-google-backend",)
OPERATION = {"operationId": "overview", "responses": {"200": {"description": "OK"}}}

# (where, new value or DELETE, the start of the message the validator must give)
MUTATIONS = {
    "swagger-3": (("swagger",), "3.0.0", "swagger: must be"),
    "no-host": (("host",), DELETE, "host: missing"),
    "host-scheme": (("host",), "https://" + GATEWAY_HOST, "host: give the host name alone"),
    "host-path": (("host",), GATEWAY_HOST + "/v1", "host: a host name has no path"),
    "host-port": (("host",), GATEWAY_HOST + ":8080", "host: a host name has no port"),
    "host-label": (("host",), "gw_1.a.run.app", "host: 'gw_1' is not a DNS label"),
    "host-dotless": (("host",), "localhost", "host: not a fully qualified DNS name"),
    "no-title": (("info", "title"), DELETE, "info.title: missing"),
    "no-version": (("info", "version"), DELETE, "info.version: missing"),
    "no-operation-id": (
        ("paths", "/lineage", "get", "operationId"),
        DELETE,
        "paths./lineage.get.operationId: missing",
    ),
    "duplicate-operation-id": (
        ("paths", "/lineage", "get", "operationId"),
        "predict",
        "paths./lineage.get.operationId: 'predict' is also used by paths./predict.post",
    ),
    "undefined-scheme": (
        ("security",),
        [{"api_key": [], "caller": []}],
        "security[0].caller: no securityDefinitions entry",
    ),
    "undefined-scheme-on-operation": (
        (*PREDICT, "security"),
        [{"nobody": []}],
        "paths./predict.post.security[0].nobody: no securityDefinitions entry",
    ),
    "api-key-or-jwt": (
        ("security",),
        [{"api_key": []}, {"caller_sa": []}],
        "security: ESPv2 cannot offer alternatives (OR)",
    ),
    "api-key-scopes": (
        ("security",),
        [{"api_key": ["read"], "caller_sa": []}],
        "security[0].api_key: an API key has no scopes",
    ),
    "no-issuer": (
        (*CALLER_SA, "x-google-issuer"),
        DELETE,
        "securityDefinitions.caller_sa.x-google-issuer: missing",
    ),
    "no-jwks": (
        (*CALLER_SA, "x-google-jwks_uri"),
        DELETE,
        "securityDefinitions.caller_sa.x-google-jwks_uri: missing",
    ),
    "jwks-http": (
        (*CALLER_SA, "x-google-jwks_uri"),
        "http://www.googleapis.com/robot/v1/metadata/x509/" + CALLER,
        "securityDefinitions.caller_sa.x-google-jwks_uri: must be an https:// URL",
    ),
    "empty-audiences": (
        (*CALLER_SA, "x-google-audiences"),
        "",
        "securityDefinitions.caller_sa.x-google-audiences",
    ),
    "api-key-in-cookie": ((*API_KEY, "in"), "cookie", "securityDefinitions.api_key.in"),
    "api-key-unnamed": ((*API_KEY, "name"), DELETE, "securityDefinitions.api_key.name: missing"),
    "basic-auth": ((*API_KEY, "type"), "basic", "securityDefinitions.api_key.type"),
    "no-backend": (BACKEND, DELETE, "x-google-backend: missing"),
    "backend-grpc": ((*BACKEND, "address"), "grpcs://api.example.com", "x-google-backend.address"),
    "backend-no-scheme": ((*BACKEND, "address"), "api.example.com", "x-google-backend.address"),
    "deadline-zero": ((*BACKEND, "deadline"), 0, "x-google-backend.deadline"),
    "deadline-text": ((*BACKEND, "deadline"), "60s", "x-google-backend.deadline"),
    "path-translation": (
        (*BACKEND, "path_translation"),
        "APPEND_PATH",
        "x-google-backend.path_translation",
    ),
    "audience-and-disable-auth": (
        (*BACKEND, "disable_auth"),
        True,
        "x-google-backend: jwt_audience and disable_auth",
    ),
    "protocol": ((*BACKEND, "protocol"), "h3", "x-google-backend.protocol"),
    "operation-backend": (
        (*PREDICT, "x-google-backend"),
        {"address": "ftp://api.example.com"},
        "paths./predict.post.x-google-backend.address",
    ),
    "jinja-placeholder": (
        (*CALLER_SA, "x-google-audiences"),
        "{" + "{ audience }}",  # split so the template's own check finds no Jinja here
        "securityDefinitions.caller_sa.x-google-audiences: unrendered placeholder",
    ),
    "shell-placeholder": (("info", "title"), "${TITLE}", "info.title: unrendered placeholder"),
    "cost-of-unknown-metric": (
        (*PREDICT, "x-google-quota", "metricCosts"),
        {"nope": 1},
        "paths./predict.post.x-google-quota.metricCosts.nope: not a metric",
    ),
    "zero-cost": (
        (*PREDICT, "x-google-quota", "metricCosts", "predict-requests"),
        0,
        "paths./predict.post.x-google-quota.metricCosts.predict-requests",
    ),
    "quota-unit": (
        (*QUOTA_LIMIT, "unit"),
        "1/day/{project}",
        "x-google-management.quota.limits[0].unit",
    ),
    "quota-metric": (
        (*QUOTA_LIMIT, "metric"),
        "nope",
        "x-google-management.quota.limits[0].metric",
    ),
    "quota-value": (
        (*QUOTA_LIMIT, "values", "STANDARD"),
        "lots",
        "x-google-management.quota.limits[0].values.STANDARD",
    ),
    "metric-value-type": (
        (*METRIC, "valueType"),
        "DOUBLE",
        "x-google-management.metrics[0].valueType",
    ),
    "metric-kind": ((*METRIC, "metricKind"), "GAUGE", "x-google-management.metrics[0].metricKind"),
    "partial-path-segment": (
        ("paths", "/items/overview.{format}"),
        {"get": OPERATION},
        "paths./items/overview.{format}: Endpoints accepts a path parameter only as a whole",
    ),
    "no-paths": (("paths",), {}, "paths: the API has no operations"),
}


def mutated(spec: dict, where: tuple, value: object) -> dict:
    changed = copy.deepcopy(spec)
    node = changed
    for key in where[:-1]:
        node = node[key]
    if value is DELETE:
        del node[where[-1]]
    else:
        node[where[-1]] = value
    return changed


@pytest.mark.parametrize(("where", "value", "message"), MUTATIONS.values(), ids=MUTATIONS)
def test_validate_names_what_is_wrong(rendered, where, value, message):
    problems = validate(mutated(rendered, where, value))
    assert any(problem.startswith(message) for problem in problems), problems


# Variations Endpoints accepts, so the rules above are not stricter than Endpoints.
ACCEPTED = {
    "google-issuer-without-jwks": (
        CALLER_SA,
        {
            "type": "oauth2",
            "flow": "implicit",
            "authorizationUrl": "",
            "x-google-issuer": "https://accounts.google.com",
        },
    ),
    "api-key-in-query": (API_KEY, {"type": "apiKey", "in": "query", "name": "key"}),
    "operation-backend": (
        (*PREDICT, "x-google-backend"),
        {"address": BACKEND_URL + "/predict", "path_translation": "CONSTANT_ADDRESS"},
    ),
    "http-backend-without-auth": (
        BACKEND,
        {"address": "http://10.0.0.2:8080", "disable_auth": True, "deadline": 30},
    ),
    "jwt-or-jwt": (
        ("paths", "/lineage", "get", "security"),
        [{"caller_sa": []}, {"caller_sa": []}],
    ),
}


@pytest.mark.parametrize(("where", "value"), ACCEPTED.values(), ids=ACCEPTED)
def test_validate_accepts_what_endpoints_accepts(rendered, where, value):
    assert validate(mutated(rendered, where, value)) == []


def test_validate_accepts_a_spec_without_quota(rendered):
    del rendered["x-google-management"]
    del rendered["paths"]["/predict"]["post"]["x-google-quota"]
    assert validate(rendered) == []


def test_validate_refuses_a_document_that_is_not_a_mapping():
    assert validate(["swagger"]) == ["(document): expected a mapping at the top level"]


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (("securityDefinitions",), ["api_key"], "securityDefinitions: must be a mapping"),
        (("security",), {"api_key": []}, "security: must be a list"),
        (("x-google-backend",), "https://api.example.com", "x-google-backend: must be a mapping"),
        (("x-google-management", "quota"), [], "x-google-management.quota: must be a mapping"),
        ((*PREDICT, "x-google-quota"), [], "paths./predict.post.x-google-quota.metricCosts"),
        ((*BACKEND, "address"), "https://[::1", "x-google-backend.address"),
    ],
)
def test_validate_reports_malformed_sections_instead_of_failing(rendered, where, value, message):
    problems = validate(mutated(rendered, where, value))
    assert any(problem.startswith(message) for problem in problems), problems


def test_esp_version_comes_from_the_dockerfile():
    version = esp_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert f"endpoints-runtime-serverless:{version}\n" in DOCKERFILE.read_text()


@pytest.mark.parametrize(
    ("from_line", "version"),
    [
        ("FROM gcr.io/endpoints-release/endpoints-runtime-serverless:2.56.0", "2.56.0"),
        (
            "from gcr.io/endpoints-release/endpoints-runtime-serverless:2.56.0@sha256:" + "a" * 64,
            "2.56.0",
        ),
        ("FROM gcr.io/endpoints-release/endpoints-runtime-serverless:2", None),
        ("FROM gcr.io/endpoints-release/endpoints-runtime:2.56.0", None),
    ],
)
def test_esp_version_needs_one_pinned_serverless_base(tmp_path, from_line, version):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"# base\n{from_line}\nCOPY service.json /etc/endpoints/\n")
    if version is None:
        with pytest.raises(OpenApiError, match="expected one line"):
            esp_version(dockerfile)
    else:
        assert esp_version(dockerfile) == version


def test_cli_renders_a_valid_spec(tmp_path, capsys):
    out = tmp_path / "openapi.yaml"
    args = ["--gateway-host", GATEWAY_HOST, "--backend-url", BACKEND_URL, "--out", str(out)]
    assert render_main(args) == 0
    assert out.read_text().startswith("# Rendered from openapi.yaml")
    assert validate(yaml.safe_load(out.read_text())) == []
    assert validate_main([str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: valid\n"


def test_cli_renders_to_standard_output(capsys):
    assert render_main(["--gateway-host", GATEWAY_HOST, "--backend-url", BACKEND_URL]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["host"] == GATEWAY_HOST


@pytest.mark.parametrize(
    ("gateway_host", "backend_url"),
    [
        ("https://" + GATEWAY_HOST, BACKEND_URL),
        (GATEWAY_HOST, "http://penguins-api-abc123-ew.a.run.app"),
    ],
)
def test_cli_render_refuses_bad_input(capsys, gateway_host, backend_url):
    assert render_main(["--gateway-host", gateway_host, "--backend-url", backend_url]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert "Traceback" not in captured.err


def test_cli_render_refuses_a_missing_spec(tmp_path, capsys):
    args = ["--gateway-host", GATEWAY_HOST, "--backend-url", BACKEND_URL]
    assert render_main([*args, "--spec", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_cli_render_refuses_an_invalid_result(tmp_path, spec, capsys):
    del spec["paths"]["/lineage"]["get"]["operationId"]
    broken = tmp_path / "openapi.yaml"
    broken.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out.yaml"
    args = ["--gateway-host", GATEWAY_HOST, "--backend-url", BACKEND_URL, "--out", str(out)]
    assert render_main([*args, "--spec", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the rendered spec is not valid:")
    assert "paths./lineage.get.operationId: missing" in err
    assert not out.exists()


def test_cli_validate_lists_the_problems(capsys):
    assert validate_main([str(SPEC_PATH)]) == 1
    err = capsys.readouterr().err
    assert f"{SPEC_PATH}: host: missing" in err
    assert f"{SPEC_PATH}: x-google-backend: missing" in err


@pytest.mark.parametrize("content", [None, "swagger: [unclosed\n", "- a list\n"])
def test_cli_validate_refuses_an_unreadable_file(tmp_path, capsys, content):
    path = tmp_path / "openapi.yaml"
    if content is not None:
        path.write_text(content)
    assert validate_main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "Traceback" not in err
