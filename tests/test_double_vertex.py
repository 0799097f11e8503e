"""The Vertex AI double: request checks, enum encoding, job states, runners."""

import json
import threading
from typing import Any

import pytest
import requests
from google.cloud.aiplatform_v1 import AcceleratorType, JobState

from cloudbuild.double import Double, Outcome, runners
from cloudbuild.double.vertex import container_env

pytest_plugins = ["tests.gcp_double_fixture"]

API = "http://aiplatform.googleapis.test/v1"
JOBS = f"{API}/projects/test-project/locations/europe-west1/customJobs"
INT_ENUMS = {"$alt": "json;enum-encoding=int"}


def job_body() -> dict[str, Any]:
    return {
        "displayName": "train",
        "jobSpec": {
            "workerPoolSpecs": [
                {
                    "machineSpec": {"machineType": "n1-standard-4"},
                    "replicaCount": "1",
                    "containerSpec": {"imageUri": "example/image:tag", "args": ["--x=1"]},
                }
            ],
            "baseOutputDirectory": {"outputUriPrefix": "gs://bucket/models/b/sha"},
        },
    }


def create(body: dict[str, Any], params: dict[str, str] | None = None) -> requests.Response:
    return requests.post(JOBS, params=params, json=body, timeout=5)


def get(name: str, params: dict[str, str] | None = None) -> dict[str, Any]:
    response = requests.get(f"{API}/{name}", params=params, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_created_job_is_pending_then_succeeds(double: Double):
    response = create(job_body())
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["state"] == "JOB_STATE_PENDING"
    assert job["name"] == "projects/test-project/locations/europe-west1/customJobs/1"
    double.vertex.wait()
    done = get(job["name"])
    assert done["state"] == "JOB_STATE_SUCCEEDED"
    assert done["createTime"] <= done["startTime"] <= done["endTime"]


def test_a_job_is_running_while_its_runner_runs(double: Double):
    started, release = threading.Event(), threading.Event()

    def runner(job: dict[str, Any], _: Double) -> Outcome:
        started.set()
        release.wait(5)
        return Outcome(True)

    double.vertex.runner = runner
    name = create(job_body()).json()["name"]
    assert started.wait(5)
    assert get(name)["state"] == "JOB_STATE_RUNNING"
    release.set()
    double.vertex.wait()
    assert get(name)["state"] == "JOB_STATE_SUCCEEDED"


def test_int_enum_clients_get_numbers_and_the_job_keeps_names(double: Double):
    body = job_body()
    machine = body["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]
    machine |= {"acceleratorType": AcceleratorType.NVIDIA_TESLA_T4.value, "acceleratorCount": 1}

    created = create(body, INT_ENUMS).json()
    assert created["state"] == JobState.JOB_STATE_PENDING.value
    double.vertex.wait()
    done = get(created["name"], INT_ENUMS)
    assert done["state"] == JobState.JOB_STATE_SUCCEEDED.value == 4
    sent_back = done["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]["acceleratorType"]
    assert sent_back == AcceleratorType.NVIDIA_TESLA_T4.value

    stored = double.vertex.jobs()[0]["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]
    assert stored["acceleratorType"] == "NVIDIA_TESLA_T4"
    assert get(created["name"])["state"] == "JOB_STATE_SUCCEEDED"


def test_unknown_fields_are_refused_by_name(double: Double):
    body = job_body()
    body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["argz"] = ["--x"]
    body["colour"] = "blue"
    response = create(body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert "Unknown name \"argz\" at 'jobSpec.workerPoolSpecs[0].containerSpec'" in error["message"]
    assert "Unknown name \"colour\" at 'the request body'" in error["message"]
    assert double.vertex.jobs() == []


def test_required_fields_must_be_present(double: Double):
    body = job_body()
    del body["displayName"]
    del body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["imageUri"]
    message = create(body).json()["error"]["message"]
    assert "Field: displayName; Message: Required field is not set." in message
    assert "jobSpec.workerPoolSpecs[0].containerSpec.imageUri; Message: Required" in message


def test_values_of_the_wrong_type_are_refused(double: Double):
    body = job_body()
    body["jobSpec"]["workerPoolSpecs"][0]["replicaCount"] = "one"
    body["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]["acceleratorType"] = "NVIDIA_TESLA_T5"
    response = create(body)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "Invalid value at 'jobSpec.workerPoolSpecs[0].replicaCount'" in message
    assert "'jobSpec.workerPoolSpecs[0].machineSpec.acceleratorType'" in message


def test_enum_numbers_the_api_does_not_know_are_refused(double: Double):
    body = job_body()
    body["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]["acceleratorType"] = 999
    response = create(body, INT_ENUMS)
    assert response.status_code == 400
    assert "999" in response.json()["error"]["message"]


def test_output_only_fields_in_a_request_are_ignored(double: Double):
    body = job_body() | {"state": "JOB_STATE_SUCCEEDED", "name": "projects/x/customJobs/9"}
    job = create(body).json()
    assert job["state"] == "JOB_STATE_PENDING"
    assert job["name"].endswith("/customJobs/1")


def test_a_failed_run_ends_the_job_failed_with_its_message_and_logs(double: Double):
    double.vertex.runner = lambda job, _: Outcome(False, "exit status 2", logs="traceback...")
    name = create(job_body()).json()["name"]
    double.vertex.wait()
    job = get(name, INT_ENUMS)
    assert job["state"] == JobState.JOB_STATE_FAILED.value
    assert job["error"] == {"code": 3, "message": "exit status 2"}
    assert double.vertex.log_path(job).read_text() == "traceback..."


def test_a_runner_that_raises_fails_the_job(double: Double):
    def broken(job: dict[str, Any], _: Double) -> Outcome:
        raise KeyError("oops")

    double.vertex.runner = broken
    name = create(job_body()).json()["name"]
    double.vertex.wait()
    job = get(name)
    assert job["state"] == "JOB_STATE_FAILED"
    assert "KeyError('oops')" in job["error"]["message"]


def test_unknown_jobs_are_not_found(double: Double):
    name = create(job_body()).json()["name"]
    response = requests.get(f"{JOBS}/99", timeout=5)
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"
    other_project = name.replace("test-project", "other-project")
    assert requests.get(f"{API}/{other_project}", timeout=5).status_code == 404


def test_a_job_running_when_the_double_stopped_fails_on_restart(double: Double):
    name = create(job_body()).json()["name"]
    double.vertex.wait()
    path = double.state_dir / "vertex" / "customJobs" / "1.json"
    job = json.loads(path.read_text())
    path.write_text(json.dumps(job | {"state": "JOB_STATE_RUNNING"}))

    with Double(double.state_dir) as again:
        (restarted,) = again.vertex.jobs()
    assert restarted["name"] == name
    assert restarted["state"] == "JOB_STATE_FAILED"
    assert "stopped while this job was running" in restarted["error"]["message"]


def test_the_container_gets_vertex_ais_environment(double: Double):
    body = job_body()
    body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["env"] = [
        {"name": "BRANCH_NAME", "value": "feature/x"}
    ]
    name = create(body).json()["name"]
    double.vertex.wait()
    assert container_env(get(name)) == {
        "BRANCH_NAME": "feature/x",
        "CLOUD_ML_JOB_ID": "1",
        "AIP_MODEL_DIR": "gs://bucket/models/b/sha/model/",
        "AIP_CHECKPOINT_DIR": "gs://bucket/models/b/sha/checkpoints/",
        "AIP_TENSORBOARD_LOG_DIR": "gs://bucket/models/b/sha/logs/",
    }


@pytest.mark.parametrize(
    "location", ["gs://bucket/data/missing.csv", "/gcs/bucket/data/missing.csv"]
)
def test_train_locally_runs_the_training_entrypoint_and_reports_its_exit(
    double: Double, location: str
):
    double.storage.create_bucket("bucket")
    double.vertex.runner = runners.train_locally
    body = job_body()
    body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"] = [f"--data={location}"]
    name = create(body).json()["name"]
    double.vertex.wait()
    job = get(name)
    assert job["state"] == "JOB_STATE_FAILED"
    message = job["error"]["message"]
    assert message.startswith("The replica workerpool0-0 exited with a non-zero status of 2.")
    # Both spellings of the location were looked for in the storage double's folder.
    assert str(double.storage.local_path("bucket", "data/missing.csv")) in message
    assert "error:" in double.vertex.log_path(job).read_text()


def test_train_locally_runs_only_the_images_entrypoint(double: Double):
    double.vertex.runner = runners.train_locally
    body = job_body()
    body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["command"] = ["sh", "-c", "true"]
    name = create(body).json()["name"]
    double.vertex.wait()
    assert "only the image's entrypoint" in get(name)["error"]["message"]
