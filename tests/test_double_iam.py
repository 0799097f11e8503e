"""The IAM, Resource Manager and Artifact Registry doubles, driven by the real gcloud.

They answer what `make bootstrap` sends (see test_bootstrap_offline) and refuse what
Google refuses: an account that exists, a binding for one that does not, a stale etag,
a request body the discovery document does not describe.
"""

from __future__ import annotations

import json

import pytest

from cloudbuild import bootstrap
from cloudbuild.config import load
from cloudbuild.double import Double
from cloudbuild.double.iam_api import IamApi
from tests.gcp_double_fixture import call, gcloud_runner

PROJECT = "example-project-123"
REGION = "europe-west1"
EMAIL = f"penguins-run@{PROJECT}.iam.gserviceaccount.com"
MEMBER = f"serviceAccount:{EMAIL}"
REPOSITORY = f"projects/{PROJECT}/locations/{REGION}/repositories/ml"


@pytest.fixture
def gcloud(tmp_path):
    with Double(tmp_path / "gcp") as double:
        run = gcloud_runner(double, tmp_path, PROJECT, add_project_flag=True)
        run.iam, run.registry = double.iam, double.artifactregistry
        yield run


def members(policy: dict, role: str) -> list[str]:
    return [m for b in policy.get("bindings", []) if b["role"] == role for m in b["members"]]


def test_a_service_account_is_created_once_and_described(gcloud):
    missing = gcloud("iam", "service-accounts", "describe", EMAIL)
    assert missing.returncode != 0
    assert "Unknown service account" in missing.stderr
    created = gcloud(
        "iam", "service-accounts", "create", "penguins-run",
        "--display-name", "penguins run", "--description", "runs the API",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    again = gcloud("iam", "service-accounts", "create", "penguins-run")
    assert again.returncode != 0
    assert f"already exists within project projects/{PROJECT}" in again.stderr
    described = gcloud("iam", "service-accounts", "describe", EMAIL, "--format=json")
    assert described.returncode == 0, described.stderr
    account = json.loads(described.stdout)
    assert account["email"] == EMAIL
    assert (account["displayName"], account["description"]) == ("penguins run", "runs the API")
    assert [a["email"] for a in gcloud.iam.service_accounts(PROJECT)] == [EMAIL]


def test_an_account_id_iam_would_refuse_is_refused(gcloud):
    result = gcloud("iam", "service-accounts", "create", "penguins-a-name-longer-than-thirty")
    assert result.returncode != 0
    assert "Invalid account ID" in result.stderr
    assert gcloud.iam.service_accounts(PROJECT) == []


def test_a_project_binding_is_added_once_and_survives_a_restart(gcloud, tmp_path):
    gcloud.iam.create_service_account(PROJECT, "penguins-run")
    grant = ("projects", "add-iam-policy-binding", PROJECT, "--member", MEMBER)
    for _ in range(2):
        result = gcloud(*grant, "--role", "roles/run.admin", "--condition", "None")
        assert result.returncode == 0, result.stderr
    policy = gcloud.iam.policy(f"projects/{PROJECT}")
    assert members(policy, "roles/run.admin") == [MEMBER]
    assert IamApi(tmp_path / "gcp" / "iam").policy(f"projects/{PROJECT}") == policy


def test_a_binding_for_an_account_that_does_not_exist_fails_as_in_iam(gcloud):
    result = gcloud(
        "projects", "add-iam-policy-binding", PROJECT, "--member", MEMBER,
        "--role", "roles/run.admin", "--condition", "None",
    )  # fmt: skip
    assert result.returncode != 0
    assert f"Service account {EMAIL} does not exist." in result.stderr
    assert gcloud.iam.policy(f"projects/{PROJECT}").get("bindings") is None


def test_a_service_account_has_its_own_policy(gcloud):
    gcloud.iam.create_service_account(PROJECT, "penguins-run")
    gcloud.iam.create_service_account(PROJECT, "penguins-api")
    caller = f"serviceAccount:penguins-api@{PROJECT}.iam.gserviceaccount.com"
    result = gcloud(
        "iam", "service-accounts", "add-iam-policy-binding", EMAIL,
        "--member", caller, "--role", "roles/iam.serviceAccountUser",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    policy = gcloud.iam.policy(f"projects/{PROJECT}/serviceAccounts/{EMAIL}")
    assert members(policy, "roles/iam.serviceAccountUser") == [caller]
    assert gcloud.iam.policy(f"projects/{PROJECT}").get("bindings") is None


def test_a_stale_etag_is_refused_as_a_concurrent_change(gcloud):
    url = f"http://cloudresourcemanager.googleapis.test/v1/projects/{PROJECT}"
    read = call(gcloud.double, "POST", f"{url}:getIamPolicy", json={}).json()
    binding = {"role": "roles/viewer", "members": ["user:someone@example.com"]}
    first = call(
        gcloud.double, "POST", f"{url}:setIamPolicy",
        json={"policy": {"bindings": [binding], "etag": read["etag"]}},
    )  # fmt: skip
    assert first.status_code == 200, first.text
    assert first.json()["etag"] != read["etag"]
    stale = call(
        gcloud.double, "POST", f"{url}:setIamPolicy",
        json={"policy": {"bindings": [], "etag": read["etag"]}},
    )  # fmt: skip
    assert stale.status_code == 409
    assert stale.json()["error"]["status"] == "ABORTED"
    assert members(gcloud.iam.policy(f"projects/{PROJECT}"), "roles/viewer") == [
        "user:someone@example.com"
    ]


def test_request_bodies_are_checked_against_the_discovery_document(gcloud):
    url = f"http://iam.googleapis.test/v1/projects/{PROJECT}/serviceAccounts"
    response = call(gcloud.double, "POST", url, json={"acountId": "penguins-run"})
    assert response.status_code == 400
    assert 'Unknown name "acountId"' in response.json()["error"]["message"]


def test_a_repository_is_created_once_granted_and_given_cleanup_policies(gcloud, tmp_path):
    gcloud.iam.create_service_account(PROJECT, "penguins-run")
    at = ("ml", "--location", REGION)
    missing = gcloud("artifacts", "repositories", "describe", *at)
    assert missing.returncode != 0
    assert "NOT_FOUND" in missing.stderr
    create = ("artifacts", "repositories", "create", *at, "--repository-format", "docker")
    created = gcloud(*create, "--description", "penguins images")
    assert created.returncode == 0, created.stderr
    again = gcloud(*create)
    assert again.returncode != 0
    assert "already exists" in again.stderr
    repository = gcloud.registry.repository(PROJECT, REGION, "ml")
    assert (repository["format"], repository["mode"]) == ("DOCKER", "STANDARD_REPOSITORY")
    assert repository["registryUri"] == f"{REGION}-docker.pkg.dev/{PROJECT}/ml"

    granted = gcloud(
        "artifacts", "repositories", "add-iam-policy-binding", *at,
        "--member", MEMBER, "--role", "roles/artifactregistry.writer",
    )  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    assert members(gcloud.iam.policy(REPOSITORY), "roles/artifactregistry.writer") == [MEMBER]

    policy_file = tmp_path / "cleanup-policy.json"
    policy_file.write_text(json.dumps(bootstrap.cleanup_policy(load())))
    cleaned = gcloud(
        "artifacts", "repositories", "set-cleanup-policies", *at,
        "--policy", str(policy_file), "--no-dry-run",
    )  # fmt: skip
    assert cleaned.returncode == 0, cleaned.stderr
    repository = gcloud.registry.repository(PROJECT, REGION, "ml")
    assert repository["cleanupPolicyDryRun"] is False
    assert repository["cleanupPolicies"] == {
        "delete-old-layer-cache": {
            "id": "delete-old-layer-cache",
            "action": "DELETE",
            "condition": {
                "tagState": "ANY",
                "packageNamePrefixes": ["penguins-training/cache", "penguins-api/cache"],
                "olderThan": "1209600s",
            },
        }
    }


def test_a_cleanup_policy_artifact_registry_would_refuse_is_refused(gcloud):
    url = f"http://artifactregistry.googleapis.test/v1/{REPOSITORY}"
    created = call(
        gcloud.double, "POST", url.rsplit("/", 1)[0], params={"repositoryId": "ml"},
        json={"format": "DOCKER"},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    assert created.json()["done"] is True
    policy = {"id": "keep", "action": "KEEP", "condition": {"olderThan": "two weeks"}}
    response = call(
        gcloud.double, "PATCH", url, params={"updateMask": "cleanupPolicies"},
        json={"cleanupPolicies": {"keep": policy}},
    )  # fmt: skip
    assert response.status_code == 400
    assert "is not a duration" in response.json()["error"]["message"]
    assert "cleanupPolicies" not in gcloud.registry.repository(PROJECT, REGION, "ml")
