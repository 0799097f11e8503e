import json
import math

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.errors import MAX_ERRORS
from api.main import create_app
from api.settings import Settings
from tests.api_model_fixture import DATA, LINEAGE, METRICS, TARGET, VALID_INSTANCE

pytest_plugins = ["tests.api_model_fixture"]

MAX_BATCH = 8
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


@pytest.fixture(scope="module")
def app(api_model_dir):
    return create_app(Settings(model_dir=api_model_dir, max_batch=MAX_BATCH))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as client:
        yield client


def _predict(client, *instances, **body):
    return client.post("/predict", json={"instances": list(instances), **body})


def _errors(response):
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid request"
    return {error["loc"]: error["msg"] for error in body["detail"]}


def test_health_names_the_model(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "model": {"commit": LINEAGE["commit"], "branch": LINEAGE["branch"]},
    }


def test_lineage_serves_the_model_folder_records(client):
    response = client.get("/lineage")

    assert response.status_code == 200
    assert response.json() == {"lineage": LINEAGE, "metrics": METRICS}


def test_predicts_a_label_and_probabilities_per_class(client, penguins_model):
    response = _predict(client, VALID_INSTANCE)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"commit": LINEAGE["commit"], "branch": LINEAGE["branch"]}
    [prediction] = body["predictions"]
    assert prediction["label"] == "Gentoo"
    assert list(prediction["probabilities"]) == CLASSES
    assert math.isclose(sum(prediction["probabilities"].values()), 1.0)
    expected = penguins_model.predict_proba(pd.DataFrame([VALID_INSTANCE]))[0]
    assert list(prediction["probabilities"].values()) == pytest.approx(expected.tolist())


def test_a_batch_with_gaps_gets_what_the_pipeline_gives_its_training_frame(client, penguins_model):
    # Rows with missing measurements and sex: the API must hand the imputers the same
    # missing values pandas gives them when training reads the CSV.
    frame = pd.read_csv(DATA).dropna(subset=[TARGET]).drop(columns=[TARGET])
    rows = frame[frame.isna().any(axis=1)].head(MAX_BATCH)
    assert len(rows) == MAX_BATCH
    instances = [
        {name: None if pd.isna(value) else value for name, value in row.items()}
        for row in json.loads(rows.to_json(orient="records"))
    ]

    response = _predict(client, *instances)

    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["label"] for p in predictions] == penguins_model.predict(rows).tolist()
    got = np.array([list(p["probabilities"].values()) for p in predictions])
    np.testing.assert_allclose(got, penguins_model.predict_proba(rows))


def test_nullable_features_accept_null(client):
    instance = {**VALID_INSTANCE, "bill_length_mm": None, "sex": None}

    assert _predict(client, instance).status_code == 200


def test_parameters_are_accepted(client):
    assert _predict(client, VALID_INSTANCE, parameters={"confidence": 0.5}).status_code == 200


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [
        ({"island": "Atlantis"}, "instances.0.island", "'Biscoe', 'Dream' or 'Torgersen'"),
        ({"island": None}, "instances.0.island", "'Biscoe', 'Dream' or 'Torgersen'"),
        ({"island": 1}, "instances.0.island", "'Biscoe', 'Dream' or 'Torgersen'"),
        ({"bill_depth_mm": "14.8"}, "instances.0.bill_depth_mm", "valid number"),
        ({"bill_depth_mm": True}, "instances.0.bill_depth_mm", "valid number"),
        ({"bill_depth_mm": [14.8]}, "instances.0.bill_depth_mm", "valid number"),
        ({"year": 2008.0}, "instances.0.year", "valid integer"),
        ({"year": True}, "instances.0.year", "valid integer"),
        ({"year": None}, "instances.0.year", "valid integer"),
        ({"year": 2**63}, "instances.0.year", "less than or equal to"),
        ({"body_mass_g": 10**400}, "instances.0.body_mass_g", "valid number"),
        ({"colour": "blue"}, "instances.0.colour", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_value_is_refused_naming_its_field(client, change, loc, message):
    errors = _errors(_predict(client, {**VALID_INSTANCE, **change}))

    assert list(errors) == [loc]
    assert message in errors[loc]


def test_a_missing_feature_is_named(client):
    instance = {
        name: value for name, value in VALID_INSTANCE.items() if name != "flipper_length_mm"
    }

    assert _errors(_predict(client, instance)) == {
        "instances.0.flipper_length_mm": "Field required"
    }


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused_not_echoed(client, constant):
    body = json.dumps({"instances": [VALID_INSTANCE]}).replace("46.5", constant)

    response = client.post("/predict", content=body, headers={"content-type": "application/json"})

    assert _errors(response) == {"instances.0.bill_length_mm": "Input should be a finite number"}
    assert constant not in response.text


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ({"instances": []}, "instances", "at least 1 item"),
        ({"instances": [VALID_INSTANCE] * (MAX_BATCH + 1)}, "instances", f"at most {MAX_BATCH}"),
        ({"instances": [[1, 2]]}, "instances.0", "valid dictionary"),
        ({"instances": VALID_INSTANCE}, "instances", "valid list"),
        ({}, "instances", "Field required"),
        ({"instances": [VALID_INSTANCE], "instance": 1}, "instance", "Extra inputs"),
        ({"instances": [VALID_INSTANCE], "parameters": [1]}, "parameters", "valid dictionary"),
        ([VALID_INSTANCE], "body", '"instances" list'),
    ],
)
def test_a_malformed_request_body_is_refused(client, body, loc, message):
    errors = _errors(client.post("/predict", json=body))

    assert list(errors) == [loc]
    assert message in errors[loc]


@pytest.mark.parametrize(
    ("content", "headers", "message"),
    [
        (b'{"instances": [', {"content-type": "application/json"}, "invalid JSON: Expecting value"),
        (b"\xff\xfe{", {"content-type": "application/json"}, "error parsing the body"),
        (b"", {"content-type": "application/json"}, '"instances" list'),
        (json.dumps({"instances": [VALID_INSTANCE]}).encode(), {}, "sent as application/json"),
    ],
)
def test_a_body_that_is_not_json_is_refused(client, content, headers, message):
    response = client.post("/predict", content=content, headers=headers)

    assert response.status_code in (400, 422), response.text
    assert message in str(response.json())


def test_error_bodies_are_small_and_never_repeat_the_input(client):
    secret = "Atlantis-" + "x" * 10_000
    instances = [{**VALID_INSTANCE, "island": secret, "sex": secret, "year": secret}] * MAX_BATCH
    instances[0] = {**instances[0], "k" * 1000: secret}

    response = _predict(client, *instances)

    assert response.status_code == 422
    assert len(response.content) < 2048
    assert "Atlantis" not in response.text
    body = response.json()
    assert len(body["detail"]) == MAX_ERRORS
    assert body["omitted"] == 3 * MAX_BATCH + 1 - MAX_ERRORS
    assert "k" * 100 not in response.text


def test_an_unscorable_instance_is_refused_by_index(app, client, monkeypatch):
    def scores_with_a_gap(frame):
        scores = np.full((len(frame), len(CLASSES)), 1 / 3)
        scores[1, 0] = np.nan
        return scores

    monkeypatch.setattr(app.state.model.pipeline, "predict_proba", scores_with_a_gap)

    errors = _errors(_predict(client, VALID_INSTANCE, VALID_INSTANCE))

    assert list(errors) == ["instances.1"]
    assert "no finite scores" in errors["instances.1"]


def test_an_unexpected_failure_is_a_small_json_500(api_model_dir, monkeypatch):
    app = create_app(Settings(model_dir=api_model_dir))
    with TestClient(app, raise_server_exceptions=False) as client:

        def broken(frame):
            raise RuntimeError("secret internals")

        monkeypatch.setattr(app.state.model.pipeline, "predict_proba", broken)
        response = _predict(client, VALID_INSTANCE)

    assert response.status_code == 500
    assert response.json() == {"error": "internal server error"}


def test_unknown_paths_and_methods_get_json_errors(client):
    missing = client.get("/nowhere")
    wrong_method = client.get("/predict")

    assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})
    assert (wrong_method.status_code, wrong_method.json()) == (405, {"error": "Method Not Allowed"})
    assert wrong_method.headers["allow"] == "POST"


def test_routes_follow_vertex_settings(api_model_dir):
    # Unless told otherwise, Vertex AI gives health and predict one path.
    route = "/v1/endpoints/123/deployedModels/456:predict"
    settings = Settings(model_dir=api_model_dir, health_route=route, predict_route=route)

    with TestClient(create_app(settings)) as client:
        assert client.get(route).json()["status"] == "ok"
        assert client.post(route, json={"instances": [VALID_INSTANCE]}).status_code == 200
        assert client.get("/health").status_code == 404


def test_openapi_describes_the_model_features(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]

    instance = schemas["Instance"]
    assert instance["additionalProperties"] is False
    assert set(instance["required"]) == set(VALID_INSTANCE)
    assert instance["properties"]["island"]["enum"] == ["Biscoe", "Dream", "Torgersen"]
    label = schemas["Prediction"]["properties"]["label"]
    assert label["enum"] == CLASSES


def test_the_app_can_be_started_twice(api_model_dir):
    app = create_app(Settings(model_dir=api_model_dir))
    for _ in range(2):
        with TestClient(app) as client:
            assert _predict(client, VALID_INSTANCE).status_code == 200
    predict_routes = [route for route in app.routes if getattr(route, "path", "") == "/predict"]
    assert predict_routes == []


def test_start_up_fails_without_a_model(tmp_path):
    app = create_app(Settings(model_dir=tmp_path / "absent"))

    with pytest.raises(RuntimeError, match="does not exist"), TestClient(app):
        pass
