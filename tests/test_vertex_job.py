"""train-job: the CustomJob the real aiplatform SDK submits, and how its end is reported."""

import dataclasses
import re

import pytest
from google.cloud.aiplatform_v1 import AcceleratorType

from cloudbuild.config import Config, load
from cloudbuild.double import Double, Outcome
from cloudbuild.double.vertex import container_env
from cloudbuild.models import base_output_dir, model_dir_uri
from cloudbuild.names import names
from cloudbuild.vertex_job import custom_job_spec, run_training_job
from tests.gcp_double_fixture import cli

pytest_plugins = ["tests.gcp_double_fixture"]

CONFIG = load()
SHA = "0123456789abcdef0123456789abcdef01234567"
DATA_SHA256 = "ab" * 32
DATA_URI = "gs://example-data/penguins/v2.csv"
BRANCH = "feature/New_Model"
NAMES = names(CONFIG, BRANCH, SHA)
JOB_NAME = re.compile(r"projects/example-project-123/locations/europe-west1/customJobs/\d+")


def with_training(**changes: object) -> Config:
    return dataclasses.replace(CONFIG, training=dataclasses.replace(CONFIG.training, **changes))


def train_job(*extra: str) -> int:
    return cli("train-job", "--branch", BRANCH, "--sha", SHA, "--data-sha256", DATA_SHA256, *extra)


EXPECTED_CONTAINER = {
    "image_uri": NAMES.training_image,
    "args": [
        f"--data={DATA_URI}",
        f"--expect-sha256={DATA_SHA256}",
        f"--branch={BRANCH}",
        f"--commit={SHA}",
        f"--data-uri={DATA_URI}",
    ],
    "env": [
        {"name": "BRANCH_NAME", "value": BRANCH},
        {"name": "COMMIT_SHA", "value": SHA},
    ],
}


def test_one_replica_without_accelerators_is_one_plain_pool():
    spec = custom_job_spec(with_training(replica_count=1), NAMES, DATA_URI, DATA_SHA256)
    assert spec == {
        "display_name": NAMES.vertex_job_display_name,
        "worker_pool_specs": [
            {
                "machine_spec": {"machine_type": CONFIG.training.machine_type},
                "replica_count": 1,
                "container_spec": EXPECTED_CONTAINER,
            }
        ],
        "base_output_dir": NAMES.model_uri.removesuffix("/"),
        "labels": dict(NAMES.vertex_labels),
    }


def test_extra_replicas_are_workers_in_a_second_identical_pool():
    config = with_training(accelerator_type="NVIDIA_TESLA_T4", accelerator_count=2, replica_count=4)
    chief, workers = custom_job_spec(config, NAMES, DATA_URI, DATA_SHA256)["worker_pool_specs"]
    assert chief["replica_count"] == 1
    assert workers["replica_count"] == 3
    machine = {
        "machine_type": CONFIG.training.machine_type,
        "accelerator_type": "NVIDIA_TESLA_T4",
        "accelerator_count": 2,
    }
    assert chief["machine_spec"] == workers["machine_spec"] == machine
    assert chief["container_spec"] == workers["container_spec"] == EXPECTED_CONTAINER


def test_the_model_lands_in_vertexs_model_dir_under_the_commits_folder():
    assert base_output_dir(NAMES) == NAMES.model_uri.removesuffix("/")
    assert model_dir_uri(NAMES) == f"{NAMES.model_uri}model/"


def test_the_sdk_submits_the_configured_job(double: Double):
    config = with_training(
        accelerator_type="NVIDIA_TESLA_T4", accelerator_count=2, replica_count=3, timeout_minutes=90
    )
    job_name = run_training_job(config, NAMES, DATA_URI, DATA_SHA256)

    (submitted,) = [entry for entry in double.requests() if entry["method"] == "POST"]
    assert submitted["host"] == "aiplatform.googleapis.test"
    assert submitted["path"] == "/v1/projects/example-project-123/locations/europe-west1/customJobs"
    body = submitted["body"]
    assert body["displayName"] == NAMES.vertex_job_display_name
    assert body["labels"] == dict(NAMES.vertex_labels)
    spec = body["jobSpec"]
    assert spec["serviceAccount"] == CONFIG.service_account("job")
    assert spec["scheduling"] == {"timeout": "5400s"}
    assert spec["baseOutputDirectory"] == {"outputUriPrefix": base_output_dir(NAMES)}
    machine = {
        "machineType": CONFIG.training.machine_type,
        # The SDK sends enums as numbers (enum-encoding=int).
        "acceleratorType": AcceleratorType.NVIDIA_TESLA_T4.value,
        "acceleratorCount": 2,
    }
    container = {
        "imageUri": NAMES.training_image,
        "args": EXPECTED_CONTAINER["args"],
        "env": EXPECTED_CONTAINER["env"],
    }
    assert spec["workerPoolSpecs"] == [
        {"machineSpec": machine, "replicaCount": "1", "containerSpec": container},
        {"machineSpec": machine, "replicaCount": "2", "containerSpec": container},
    ]

    (job,) = double.vertex.jobs()
    assert job["name"] == job_name
    assert JOB_NAME.fullmatch(job_name)
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    assert container_env(job)["AIP_MODEL_DIR"] == model_dir_uri(NAMES)


def test_train_job_prints_the_job_and_the_model_folder(double: Double, tmp_path, capsys):
    job_out = tmp_path / "build" / "job.txt"
    assert train_job("--data-uri", DATA_URI, "--job-out", str(job_out)) == 0
    (job,) = double.vertex.jobs()
    assert capsys.readouterr().out == (
        f"job: {job['name']}\nmodel folder: {model_dir_uri(NAMES)}\n"
    )
    assert job_out.read_text() == job["name"] + "\n"


def test_train_job_defaults_to_the_configured_data(double: Double):
    assert train_job("--data-uri", "") == 0
    (job,) = double.vertex.jobs()
    args = job["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"]
    assert f"--data={CONFIG.training.data_uri}" in args


def test_a_failed_job_fails_the_step_with_the_jobs_error(double: Double, capsys):
    message = "The replica workerpool0-0 exited with a non-zero status of 2."
    double.vertex.runner = lambda job, _: Outcome(False, message)
    assert train_job() == 1
    (job,) = double.vertex.jobs()
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: Vertex AI job {job['name']} ended JOB_STATE_FAILED: {message}"
    )


def test_a_refused_job_fails_the_step(double: Double, monkeypatch, capsys):
    monkeypatch.setenv("VERTEX_API_ENDPOINT", "http://nothing.googleapis.test")
    assert train_job() == 1
    assert "error: Vertex AI refused the training job: " in capsys.readouterr().err
    assert double.vertex.jobs() == []


@pytest.mark.parametrize(
    ("option", "value"),
    [("--branch", "a$(id)"), ("--sha", "HEAD"), ("--data-sha256", "not-a-hash")],
)
def test_bad_arguments_are_refused_before_any_request(double: Double, capsys, option, value):
    argv = {"--branch": BRANCH, "--sha": SHA, "--data-sha256": DATA_SHA256, option: value}
    with pytest.raises(SystemExit) as exit:
        cli("train-job", *[part for pair in argv.items() for part in pair])
    assert exit.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err
    assert double.requests() == []


@pytest.mark.parametrize(
    ("uri", "complaint"),
    [
        ("/tmp/penguins.csv", "is not a gs://bucket/... URI"),
        ("gs://example-data/", "names a bucket, not an object"),
    ],
)
def test_a_data_uri_that_is_no_object_is_a_usage_error(double: Double, capsys, uri, complaint):
    assert train_job("--data-uri", uri) == 2
    assert complaint in capsys.readouterr().err
    assert double.requests() == []
