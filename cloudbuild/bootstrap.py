"""`make bootstrap`: the one-time Google Cloud set-up, run with your own credentials.

It enables the APIs, creates the bucket, the Artifact Registry repository and one
service account per job with only the roles that job needs, uploads the sample
data and imports the triggers. Every step checks first and skips what exists, so
running it again is safe (and is how trigger changes are applied).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cloudbuild import triggers
from cloudbuild.config import ROOT, SERVICE_ACCOUNTS, Config, ConfigError, load

APIS = [
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "run.googleapis.com",
    "servicecontrol.googleapis.com",
    "servicemanagement.googleapis.com",
    "serviceusage.googleapis.com",
    "storage.googleapis.com",
    "endpoints.googleapis.com",
]

LOG_WRITER = ("roles/logging.logWriter", "write its build logs (the builds log to Cloud Logging)")


@dataclass(frozen=True)
class Grant:
    role: str
    why: str
    on: str  # "project", "bucket", "repository" or "service-account:<role>"


# Who may do what, and why. The README's table is printed from this.
GRANTS: dict[str, list[Grant]] = {
    "training": [
        Grant(*LOG_WRITER, on="project"),
        Grant(
            "roles/storage.objectUser", "read the training data, move the LATEST pointer", "bucket"
        ),
        Grant(
            "roles/artifactregistry.writer",
            "push the training image and its layer cache",
            "repository",
        ),
        Grant("roles/aiplatform.user", "create and watch the Vertex AI custom job", "project"),
        Grant(
            "roles/iam.serviceAccountUser", "run the job as the job account", "service-account:job"
        ),
        Grant(
            "roles/cloudbuild.builds.editor",
            "run the api trigger after promoting a model",
            "project",
        ),
        Grant(
            "roles/iam.serviceAccountUser",
            "start the api trigger, which runs as the api account",
            "service-account:api",
        ),
    ],
    "job": [
        Grant(
            "roles/storage.objectUser", "read the training data, write the model folder", "bucket"
        ),
    ],
    "api": [
        Grant(*LOG_WRITER, on="project"),
        Grant(
            "roles/storage.objectUser",
            "read the model it packages, record which model each branch serves",
            "bucket",
        ),
        Grant(
            "roles/artifactregistry.writer", "push the API image and its layer cache", "repository"
        ),
        Grant(
            "roles/run.admin",
            "deploy the API and let only the gateway invoke it (setIamPolicy)",
            "project",
        ),
        Grant(
            "roles/iam.serviceAccountUser",
            "deploy the API to run as the run account",
            "service-account:run",
        ),
    ],
    "run": [],
    "auth": [
        Grant(*LOG_WRITER, on="project"),
        Grant("roles/artifactregistry.writer", "push the gateway image", "repository"),
        Grant(
            "roles/storage.objectUser",
            "read deployment records, publish the A/B experiment config",
            "bucket",
        ),
        Grant(
            "roles/run.admin",
            "deploy the gateway and open it to callers (ESPv2 checks them)",
            "project",
        ),
        Grant(
            "roles/servicemanagement.admin",
            "publish the OpenAPI spec to Cloud Endpoints",
            "project",
        ),
        Grant(
            "roles/serviceusage.serviceUsageAdmin",
            "enable the Endpoints service so API keys work",
            "project",
        ),
        Grant(
            "roles/iam.serviceAccountUser",
            "deploy the gateway to run as the gw account",
            "service-account:gw",
        ),
    ],
    "gw": [
        Grant(
            "roles/servicemanagement.serviceController", "ESPv2 checks and reports calls", "project"
        ),
        Grant("roles/cloudtrace.agent", "ESPv2 sends request traces", "project"),
    ],
    "caller": [],
}


def cleanup_policy(config: Config) -> list[dict]:
    """Expire kaniko's layer cache (it never deletes); images and models are kept."""
    caches = [f"{config.project_name}-{image}/cache" for image in ("training", "api")]
    return [
        {
            "name": "delete-old-layer-cache",
            "action": {"type": "Delete"},
            "condition": {
                "tagState": "any",
                "packageNamePrefixes": caches,
                "olderThan": "1209600s",
            },
        }
    ]


@dataclass(frozen=True)
class Step:
    """One change: `check` succeeding means it is already done."""

    title: str
    command: list[str]
    check: list[str] | None = None


def steps(config: Config, triggers_file: Path, policy_file: Path) -> list[Step]:
    project, region = config.gcp_project_id, config.region
    bucket = f"gs://{config.bucket}"
    repo = config.artifact_registry_repository
    at = ["--project", project]
    plan = [Step("enable the APIs", ["gcloud", "services", "enable", *APIS, *at])]
    plan.append(
        Step(
            f"create the bucket {bucket}",
            [
                "gcloud",
                "storage",
                "buckets",
                "create",
                bucket,
                "--location",
                region,
                "--uniform-bucket-level-access",
                "--public-access-prevention",
                *at,
            ],
            ["gcloud", "storage", "buckets", "describe", bucket, *at],
        )
    )
    plan.append(
        Step(
            f"create the Artifact Registry repository {repo}",
            [
                "gcloud",
                "artifacts",
                "repositories",
                "create",
                repo,
                "--repository-format",
                "docker",
                "--location",
                region,
                "--description",
                f"{config.project_name} images",
                *at,
            ],
            ["gcloud", "artifacts", "repositories", "describe", repo, "--location", region, *at],
        )
    )
    plan.append(
        Step(
            "expire old kaniko cache layers",
            [
                "gcloud",
                "artifacts",
                "repositories",
                "set-cleanup-policies",
                repo,
                "--location",
                region,
                "--policy",
                str(policy_file),
                "--no-dry-run",
                *at,
            ],
        )
    )
    for role, purpose in SERVICE_ACCOUNTS.items():
        email = config.service_account(role)
        plan.append(
            Step(
                f"create the service account {email}",
                [
                    "gcloud",
                    "iam",
                    "service-accounts",
                    "create",
                    email.split("@")[0],
                    "--display-name",
                    f"{config.project_name} {role}",
                    "--description",
                    purpose,
                    *at,
                ],
                ["gcloud", "iam", "service-accounts", "describe", email, *at],
            )
        )
    for role, grants in GRANTS.items():
        member = f"serviceAccount:{config.service_account(role)}"
        for grant in grants:
            plan.append(
                Step(f"{role}: {grant.role} on {grant.on}", _grant_command(config, member, grant))
            )
    plan.append(
        Step(
            f"upload the sample data to {config.training.data_uri}",
            [
                "gcloud",
                "storage",
                "cp",
                "--no-clobber",
                str(ROOT / "training/data/penguins.csv"),
                config.training.data_uri,
                *at,
            ],
        )
    )
    plan.append(
        Step(
            "import the triggers",
            ["gcloud", "builds", "triggers", "import", "--source", str(triggers_file), *at],
        )
    )
    return plan


def _grant_command(config: Config, member: str, grant: Grant) -> list[str]:
    project = config.gcp_project_id
    binding = ["--member", member, "--role", grant.role]
    if grant.on == "project":
        return [
            "gcloud",
            "projects",
            "add-iam-policy-binding",
            project,
            *binding,
            "--condition",
            "None",
        ]
    if grant.on == "bucket":
        return [
            "gcloud",
            "storage",
            "buckets",
            "add-iam-policy-binding",
            f"gs://{config.bucket}",
            *binding,
            "--project",
            project,
        ]
    if grant.on == "repository":
        return [
            "gcloud",
            "artifacts",
            "repositories",
            "add-iam-policy-binding",
            config.artifact_registry_repository,
            "--location",
            config.region,
            *binding,
            "--project",
            project,
        ]
    target = config.service_account(grant.on.removeprefix("service-account:"))
    return [
        "gcloud",
        "iam",
        "service-accounts",
        "add-iam-policy-binding",
        target,
        *binding,
        "--project",
        project,
    ]


def roles_table(config: Config) -> str:
    """Markdown: every service account, each role, where and why."""
    rows = ["| service account | role | on | why |", "|---|---|---|---|"]
    for role, grants in GRANTS.items():
        email = config.service_account(role)
        if not grants:
            rows.append(f"| `{email}` | none | | {SERVICE_ACCOUNTS[role]}; needs no role |")
        for grant in grants:
            rows.append(f"| `{email}` | `{grant.role}` | {grant.on} | {grant.why} |")
    return "\n".join(rows)


def run(plan: list[Step], dry_run: bool, out=sys.stdout) -> int:
    for number, step in enumerate(plan, 1):
        print(f"[{number}/{len(plan)}] {step.title}", file=out, flush=True)
        if dry_run:
            print("    " + shlex.join(step.command), file=out)
            continue
        if step.check and subprocess.run(step.check, capture_output=True).returncode == 0:
            print("    exists, skipped", file=out)
            continue
        result = subprocess.run(step.command, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"error: {shlex.join(step.command)}\n{result.stderr.strip()}", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cloudbuild bootstrap", description=__doc__)
    parser.add_argument("--config", type=Path, default=ROOT / "project.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run none")
    parser.add_argument("--roles", action="store_true", help="print the roles table (Markdown)")
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.roles:
        print(roles_table(config))
        return 0
    with tempfile.TemporaryDirectory() as work:
        triggers_file = Path(work) / "triggers.yaml"
        triggers_file.write_text(triggers.render(config))
        policy_file = Path(work) / "cleanup-policy.json"
        policy_file.write_text(json.dumps(cleanup_policy(config), indent=2))
        return run(steps(config, triggers_file, policy_file), args.dry_run)
