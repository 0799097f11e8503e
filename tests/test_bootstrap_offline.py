"""`make bootstrap` end to end: the real `python -m cloudbuild bootstrap`, running the
real gcloud, against the loopback double of every API it touches.

The first run must leave the project as the pipelines need it (APIs, bucket, sample
data, repository, service accounts, every grant in `bootstrap.GRANTS`, triggers); a
second run must succeed too, skipping what exists and changing nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from cloudbuild import bootstrap, triggers
from cloudbuild.config import ROOT, SERVICE_ACCOUNTS, load
from cloudbuild.double import Double
from cloudbuild.double.gcloud import gcloud_env
from cloudbuild.double.iam_api import IamApi

CONFIG = load()
PROJECT = CONFIG.gcp_project_id
REPOSITORY = (
    f"projects/{PROJECT}/locations/{CONFIG.region}/repositories/"
    f"{CONFIG.artifact_registry_repository}"
)
CREATES = ("/serviceAccounts", "/repositories", "/storage/v1/b", "/triggers")


def policy_for(double: Double, iam: IamApi, on: str) -> dict:
    """The policy a grant `on` ("project", "bucket", ...) of bootstrap.GRANTS lands in."""
    if on == "project":
        return iam.policy(f"projects/{PROJECT}")
    if on == "bucket":
        return double.storage.iam_policy(CONFIG.bucket)
    if on == "repository":
        return iam.policy(REPOSITORY)
    account = CONFIG.service_account(on.removeprefix("service-account:"))
    return iam.policy(f"projects/{PROJECT}/serviceAccounts/{account}")


def bindings(double: Double, iam: IamApi) -> dict[str, list[dict]]:
    places = {grant.on for grants in bootstrap.GRANTS.values() for grant in grants}
    return {on: policy_for(double, iam, on).get("bindings", []) for on in sorted(places)}


def test_bootstrap_sets_the_project_up_and_a_second_run_changes_nothing(tmp_path):
    with Double(tmp_path / "gcp") as double:
        iam, registry, usage = double.iam, double.artifactregistry, double.serviceusage
        env = {**os.environ, **gcloud_env(double, tmp_path / "gcloud", PROJECT)}

        def bootstrap_run() -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "cloudbuild", "bootstrap"],
                env=env, capture_output=True, text=True, cwd=ROOT, timeout=300,
            )  # fmt: skip

        first = bootstrap_run()
        assert first.returncode == 0, first.stdout + first.stderr
        assert set(bootstrap.APIS) <= usage.enabled(PROJECT)
        sample = (ROOT / "training/data/penguins.csv").read_bytes()
        data_object = CONFIG.training.data_uri.removeprefix(f"gs://{CONFIG.bucket}/")
        assert double.storage.local_path(CONFIG.bucket, data_object).read_bytes() == sample
        repository = registry.repository(
            PROJECT, CONFIG.region, CONFIG.artifact_registry_repository
        )
        assert repository["format"] == "DOCKER"
        assert list(repository["cleanupPolicies"]) == [
            policy["name"] for policy in bootstrap.cleanup_policy(CONFIG)
        ]
        emails = {CONFIG.service_account(role) for role in SERVICE_ACCOUNTS}
        assert {account["email"] for account in iam.service_accounts(PROJECT)} == emails
        for role, grants in bootstrap.GRANTS.items():
            member = f"serviceAccount:{CONFIG.service_account(role)}"
            for grant in grants:
                policy = policy_for(double, iam, grant.on)
                granted = [b for b in policy["bindings"] if b["role"] == grant.role]
                assert [member in b["members"] for b in granted] == [True], (role, grant)
        expected = [d["name"] for d in yaml.safe_load_all(triggers.render(CONFIG))]
        assert sorted(t["name"] for t in double.cloudbuild.triggers()) == sorted(expected)

        granted_once = bindings(double, iam)
        before = len(double.requests())
        second = bootstrap_run()
        assert second.returncode == 0, second.stdout + second.stderr
        checked = [step for step in bootstrap.steps(CONFIG, Path(), Path()) if step.check]
        assert second.stdout.count("exists, skipped") == len(checked)
        created = [
            r
            for r in double.requests()[before:]
            if r["method"] == "POST" and r["path"].endswith(CREATES)
        ]
        assert created == []
        assert bindings(double, iam) == granted_once
        assert len(double.cloudbuild.triggers()) == len(expected)
