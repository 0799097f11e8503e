"""The A/B experiment file: checked before anything deploys, resolved against what is
deployed, turned into gateway routes, and published for the website.

The bucket side runs against the loopback double with the real google-cloud-storage
client; the gateway side goes through the real render and validate of the spec.
"""

import json

import pytest
import yaml
from google.cloud import storage

from cloudbuild import openapi
from cloudbuild.config import ROOT, load
from cloudbuild.double import Double
from cloudbuild.experiment import (
    EXPERIMENT_FILE,
    ExperimentError,
    deployment_uri,
    parse,
    published,
    published_uri,
    resolve,
)
from cloudbuild.names import slug
from cloudbuild.pipelines import PIPELINES
from cloudbuild.plan import fired_files
from tests.gcp_double_fixture import cli

pytest_plugins = ["tests.gcp_double_fixture"]

CONFIG = load()
PRODUCTION = CONFIG.production_branch
SHA = "0123456789abcdef0123456789abcdef01234567"
MODEL_SHA = "fedcba9876543210fedcba9876543210fedcba98"
HOST = "penguins-gateway-112008801403.europe-west1.run.app"
API_URL = "https://penguins-api-112008801403.europe-west1.run.app"


def declared(**changes) -> dict:
    data = {
        "experiment": "bigger-c",
        "salt": "bigger-c-2026-11",
        "variants": [
            {"name": "control", "branch": PRODUCTION, "weight": 50},
            {"name": "treatment", "branch": "feature/bigger-c", "weight": 50},
        ],
    }
    data.update(changes)
    return data


def service(*branches: str) -> dict:
    """A Cloud Run service as `gcloud run services describe --format=json` prints it."""
    host = API_URL.removeprefix("https://")
    return {
        "metadata": {"name": f"{CONFIG.project_name}-api"},
        "status": {
            "url": API_URL,
            "traffic": [
                {"revisionName": f"r-{slug(b)}", "tag": slug(b), "percent": 0,
                 "url": f"https://{slug(b)}---{host}"}
                for b in branches
            ],
        },
    }  # fmt: skip


def record_of(branch_slug: str) -> dict:
    return {"model_commit": MODEL_SHA, "model_branch": PRODUCTION, "revision_tag": branch_slug}


def problems_of(data) -> str:
    with pytest.raises(ExperimentError) as raised:
        parse(data, CONFIG)
    return str(raised.value)


def test_the_shipped_file_declares_no_experiment():
    assert parse(yaml.safe_load(EXPERIMENT_FILE.read_text()), CONFIG) is None
    assert cli("experiment", "check") == 0


def test_a_valid_experiment_names_its_control_on_the_production_branch():
    experiment = parse(declared(), CONFIG)
    assert experiment.control == "control"
    assert [(v.name, v.weight) for v in experiment.variants] == [("control", 50), ("treatment", 50)]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"variants": [{"name": "control", "branch": PRODUCTION, "weight": 60},
                       {"name": "treatment", "branch": "feature/x", "weight": 30}]},
         "the weights must sum to 100, got 60 + 30 = 90"),
        ({"variants": [{"name": "same", "branch": PRODUCTION, "weight": 50},
                       {"name": "same", "branch": "feature/x", "weight": 50}]},
         "name 'same' appears more than once"),
        ({"variants": [{"name": "a", "branch": PRODUCTION, "weight": 50},
                       {"name": "b", "branch": PRODUCTION, "weight": 50}]},
         f"branch {PRODUCTION!r} appears more than once"),
        ({"variants": [{"name": "a", "branch": "feature/x", "weight": 50},
                       {"name": "b", "branch": "feature/y", "weight": 50}]},
         "none is on the production branch"),
        ({"variants": [{"name": "control", "branch": PRODUCTION, "weight": 100}]},
         "at least a control and a treatment"),
        ({"variants": [{"name": "control", "branch": PRODUCTION, "weight": 50},
                       {"name": "t", "branch": "a$(touch /tmp/pwned)", "weight": 50}]},
         "variants[1].branch"),
        ({"variants": [{"name": "control", "branch": PRODUCTION, "weight": 50.5},
                       {"name": "t", "branch": "feature/x", "weight": 49.5}]},
         "variants[0].weight: 50.5 is not a whole percentage"),
        ({"variants": [{"name": "Control!", "branch": PRODUCTION, "weight": 50},
                       {"name": "t", "branch": "feature/x", "weight": 50}]},
         "variants[0].name: 'Control!'"),
        ({"variants": [{"name": "control", "branch": PRODUCTION, "weight": 50, "tag": "x"},
                       {"name": "t", "branch": "feature/x", "weight": 50}]},
         "variants[0].tag: unknown field"),
        ({"salt": "short"}, "salt: must be a string of 8-100 characters"),
        ({"experiment": "Bigger C"}, "experiment: 'Bigger C' is not a name"),
        ({"traffic": 10}, "traffic: unknown field"),
        ({"variants": "control=50,treatment=50"}, "variants: must be a list"),
    ],
)  # fmt: skip
def test_an_invalid_file_is_refused_naming_the_field(changes, message):
    assert message in problems_of(declared(**changes))


def test_every_problem_is_reported_at_once():
    text = problems_of(declared(salt=1, experiment="", variants=[{"name": "x", "weight": 101}]))
    for field in ("experiment:", "salt:", "variants[0].branch", "variants[0].weight"):
        assert field in text


def test_check_prints_the_split_and_refuses_a_bad_file(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(declared()))
    assert cli("experiment", "check", "--file", good) == 0
    assert "control=50% (main), treatment=50% (feature/bigger-c)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(declared(salt="short")))
    assert cli("experiment", "check", "--file", bad) == 2
    assert "salt: must be" in capsys.readouterr().err


def test_resolve_routes_each_variant_to_its_branch_tag_with_its_model():
    resolved = resolve(
        parse(declared(), CONFIG), service(PRODUCTION, "feature/bigger-c", "feature/other"),
        record_of,
    )  # fmt: skip
    [control, treatment] = resolved["variants"]
    assert treatment["revision_tag"] == slug("feature/bigger-c")
    assert treatment["backend_url"].startswith(f"https://{slug('feature/bigger-c')}---")
    assert control["model_commit"] == MODEL_SHA and resolved["control"] == "control"


def test_resolve_refuses_an_undeployed_branch_and_one_without_a_record():
    with pytest.raises(ExperimentError, match="no revision tagged .* push the branch"):
        resolve(parse(declared(), CONFIG), service(PRODUCTION), record_of)
    with pytest.raises(ExperimentError, match="no deployment record"):
        resolve(
            parse(declared(), CONFIG),
            service(PRODUCTION, "feature/bigger-c"),
            lambda tag: None if tag == slug("feature/bigger-c") else record_of(tag),
        )


def rendered(resolved) -> dict:
    spec = openapi.read_spec(openapi.SPEC_PATH)
    return openapi.render(CONFIG, spec, HOST, API_URL, resolved)


def test_the_gateway_gets_one_route_per_variant_as_secure_as_production():
    resolved = resolve(
        parse(declared(), CONFIG), service(PRODUCTION, "feature/bigger-c"), record_of
    )
    spec = rendered(resolved)
    assert openapi.validate(spec) == []
    production = spec["paths"]["/predict"]["post"]
    for variant in resolved["variants"]:
        operation = spec["paths"][f"/variants/{variant['name']}/predict"]["post"]
        backend = operation["x-google-backend"]
        assert backend["address"] == variant["backend_url"] + "/predict"
        assert backend["path_translation"] == "CONSTANT_ADDRESS"
        # A tag URL is no audience Cloud Run accepts: the service's own URL is.
        assert backend["jwt_audience"] == API_URL
        assert backend["deadline"] == openapi.BACKEND_DEADLINE_SECONDS
        assert "security" not in operation  # the spec-wide API key AND JWT apply
        assert operation["parameters"] == production["parameters"]
        assert operation["x-google-quota"] == production["x-google-quota"]
    assert spec["security"] == [{"api_key": [], "caller_sa": []}]


def test_no_experiment_means_no_variant_routes():
    assert not [p for p in rendered(None)["paths"] if p.startswith("/variants/")]


def test_the_published_document_has_what_the_site_needs():
    resolved = resolve(
        parse(declared(), CONFIG), service(PRODUCTION, "feature/bigger-c"), record_of
    )
    document = published(resolved, f"https://{HOST}/", PRODUCTION, SHA, now="2026-11-23T12:00:00Z")
    assert document["schema_version"] == 1 and document["experiment"] == "bigger-c"
    assert document["salt"] == "bigger-c-2026-11" and document["control"] == "control"
    treatment = document["variants"][1]
    assert treatment["url"] == f"https://{HOST}/variants/treatment/predict"
    assert treatment["weight"] == 50 and treatment["model_commit"] == MODEL_SHA
    assert document["published_from"] == {"branch": PRODUCTION, "commit": SHA}


@pytest.fixture
def bucket(double: Double) -> storage.Bucket:
    double.storage.create_bucket(CONFIG.bucket)
    return storage.Client(project=CONFIG.gcp_project_id).bucket(CONFIG.bucket)


def model_of(commit: str, branch: str) -> list[str]:
    """The record command's model arguments, as the api pipeline passes them."""
    return ["--model-uri", f"gs://{CONFIG.bucket}/models/x/{commit}/",
            "--model-commit", commit, "--model-branch", branch]  # fmt: skip


def read(bucket: storage.Bucket, uri: str) -> dict:
    return json.loads(bucket.blob(uri.split("/", 3)[3]).download_as_text())


def test_resolve_and_publish_through_the_bucket(bucket, tmp_path):
    for branch in (PRODUCTION, "feature/bigger-c"):
        assert cli("experiment", "record", "--branch", branch, "--sha", SHA,
                   "--image", "img:tag", *model_of(MODEL_SHA, branch)) == 0  # fmt: skip
    record = read(bucket, deployment_uri(CONFIG, slug("feature/bigger-c")))
    assert record["model_commit"] == MODEL_SHA and record["branch"] == "feature/bigger-c"

    experiment_file = tmp_path / "experiment.yaml"
    experiment_file.write_text(yaml.safe_dump(declared()))
    described = tmp_path / "service.json"
    described.write_text(json.dumps(service(PRODUCTION, "feature/bigger-c")))
    out = tmp_path / "experiment.json"
    assert cli("experiment", "resolve", "--file", experiment_file, "--service", described,
               "--out", out) == 0  # fmt: skip
    assert cli("experiment", "publish", "--resolved", out, "--gateway-url", f"https://{HOST}",
               "--branch", PRODUCTION, "--sha", SHA) == 0  # fmt: skip
    document = read(bucket, published_uri(CONFIG))
    assert [v["name"] for v in document["variants"]] == ["control", "treatment"]

    # The treatment branch deploys a new model: the published config follows it.
    new_model = "1111111111111111111111111111111111111111"
    assert cli("experiment", "record", "--branch", "feature/bigger-c", "--sha", new_model,
               "--image", "img:tag2", *model_of(new_model, "feature/bigger-c")) == 0  # fmt: skip
    document = read(bucket, published_uri(CONFIG))
    assert [v["model_commit"] for v in document["variants"]] == [MODEL_SHA, new_model]


def test_resolve_of_an_undeployed_branch_fails_the_step(bucket, tmp_path, capsys):
    experiment_file = tmp_path / "experiment.yaml"
    experiment_file.write_text(yaml.safe_dump(declared()))
    described = tmp_path / "service.json"
    described.write_text(json.dumps(service(PRODUCTION)))
    out = tmp_path / "experiment.json"
    assert cli("experiment", "resolve", "--file", experiment_file, "--service", described,
               "--out", out) == 2  # fmt: skip
    assert "feature/bigger-c" in capsys.readouterr().err and not out.exists()


def test_the_experiment_file_fires_the_auth_pipeline():
    auth = next(p for p in PIPELINES if p.name == "auth")
    assert fired_files(auth, [str(EXPERIMENT_FILE.relative_to(ROOT))])
    # The site's client is not part of the gateway: changing it deploys nothing.
    assert not fired_files(auth, ["auth/abclient/client.py"])


def test_a_concurrent_change_of_the_published_config_is_not_overwritten(bucket, tmp_path, capsys):
    from cloudbuild import experiment

    uri = published_uri(CONFIG)
    experiment._write_json(uri, {"variants": []})
    _, generation = experiment._read_json(uri)
    experiment._write_json(uri, {"variants": [], "by": "another build"})
    with pytest.raises(ExperimentError, match="changed while this build updated it"):
        experiment._write_json(uri, {"variants": []}, generation=generation)
    assert read(bucket, uri)["by"] == "another build"


def test_a_published_object_that_is_not_json_is_a_clear_error(bucket):
    from cloudbuild import experiment

    bucket.blob("experiments/current.json").upload_from_string("<html>")
    with pytest.raises(ExperimentError, match="does not hold a JSON object"):
        experiment._read_json(published_uri(CONFIG))
