"""`python -m cloudbuild preflight`: one simulated push, end to end.

1. Which pipelines fire: the triggers' own file filters (plan.py).
2. The double of Google Cloud starts on loopback with the state of earlier runs
   (build/preflight/state; --fresh starts clean) and, the first time, what
   `make bootstrap` would have made: the bucket, the training data, the triggers.
3. Each fired build runs step by step in a fresh copy of the project (executor.py);
   builds it starts (training runs the api trigger) are queued in the Cloud Build
   double and run next, as Cloud Build would.
4. A real prediction goes to what was deployed: through the gateway's routing when
   the auth pipeline ran, else to the branch's tagged API revision; and when an
   A/B experiment is published, one through each variant's gateway route.
5. A summary is printed, the whole state written as JSON (--json), and the exit
   status is non-zero when any step failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import yaml

from cloudbuild import substitutions
from cloudbuild.builders import BUILDERS
from cloudbuild.cli_common import PROG, add_config_argument
from cloudbuild.config import ROOT, Config, load
from cloudbuild.double import Double, runners
from cloudbuild.double.cloudbuild_api import PRIVATE
from cloudbuild.double.gcloud import gcloud_env
from cloudbuild.double.state import now
from cloudbuild.env import variables
from cloudbuild.experiment import PUBLISHED_OBJECT
from cloudbuild.names import names
from cloudbuild.plan import ChangedFileError, changed_file, checked_out_commit, fired_by_pipeline
from cloudbuild.preflight import builders, executor, report, workspace
from cloudbuild.preflight.serving import CloudRun, Launcher
from cloudbuild.triggers import render, trigger_name

MAX_BUILDS = 10  # a chain that keeps queueing builds is a bug, not a pipeline
PROJECT_NUMBER = "123456789012"  # no real project behind the double
SAMPLE_REQUEST = Path("api/sample-request.json")
# Offline, ESPv2's key and JWT checks are stood in for (see gateway.py): any value passes.
GATEWAY_CREDENTIALS = {"x-api-key": "preflight-key", "Authorization": "Bearer preflight-token"}


class Session:
    def __init__(self, config: Config, root: Path, state: Path, branch: str, sha: str) -> None:
        self.config = config
        self.root = root
        self.state = state
        self.branch = branch
        self.sha = sha
        self.images = state / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.runs = state / "runs"
        self.builds: list[dict] = []

    def run(self, fired: list[str]) -> dict:
        with Double(self.state / "gcp", runner=runners.train_locally) as double:
            launcher = Launcher(self.images, self.state / "logs", self._local_backend)
            self.double = double
            try:
                self.cloud_run = CloudRun(double.run, launcher)
                double.run.on_revision = self.cloud_run.on_revision
                self.gcloud = gcloud_env(double, self.state / "gcloud", self.config.gcp_project_id)
                self._bootstrap_once()
                for pipeline in fired:
                    double.cloudbuild.push(
                        self.config.gcp_project_id, trigger_name(self.config, pipeline), self.branch
                    )
                self._run_queue()
                return report.state(self, self._predict(), self._experiment())
            finally:
                launcher.close()

    # ---- the double's starting state: what bootstrap makes ---------------------------

    def _bootstrap_once(self) -> None:
        storage = self.double.storage
        data_bucket, data_object = self.config.training.data_uri.removeprefix("gs://").split("/", 1)
        for bucket in dict.fromkeys((self.config.bucket, data_bucket)):
            if not storage.local_path(bucket).exists():
                storage.create_bucket(bucket)
        if not storage.local_path(data_bucket, data_object).exists():
            self._gcloud("storage", "cp", str(self.root / "training/data/penguins.csv"),
                         self.config.training.data_uri)  # fmt: skip
        triggers = self.state / "triggers.yaml"
        triggers.write_text(render(self.config))
        self._gcloud("builds", "triggers", "import", "--source", str(triggers))

    def _gcloud(self, *args: str) -> None:
        result = subprocess.run(
            ["gcloud", *args], env={**executor.local_environment([]), **self.gcloud},
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(
                f"error: preflight set-up failed: gcloud {' '.join(args)}\n{result.stderr}"
            )

    # ---- builds ----------------------------------------------------------------------

    def _run_queue(self) -> None:
        while queued := self.double.cloudbuild.queued():
            if len(self.builds) >= MAX_BUILDS:
                raise SystemExit(f"error: more than {MAX_BUILDS} builds queued: a trigger loop?")
            self._run_build(queued[0])

    def _run_build(self, build: dict) -> None:
        private = build[PRIVATE]
        trigger = self.double.cloudbuild.trigger(private["trigger"])
        number = len(self.builds) + 1
        space = workspace.create(self.root, self.runs / f"{number}-{trigger['name']}" / "workspace")
        config = yaml.safe_load((space / private["filename"]).read_text())
        values = self._values(build, trigger, config)
        record = {
            "id": build["id"],
            "trigger": trigger["name"],
            "pipeline": trigger["name"].removeprefix(f"{self.config.project_name}-"),
            "branch": private["branch"],
            "config": private["filename"],
        }
        refused = substitutions.problems(config, values, must_match=False)
        if refused:
            result = executor.BuildResult(status="FAILURE", steps=[])
            record["error"] = "; ".join(refused)
        else:
            result = executor.run_build(config, values, space, self._builders(), self._base_env())
        build.update(status=result.status, finishTime=now())
        self.double.cloudbuild.update(build)
        record.update(
            status=result.status,
            seconds=round(result.seconds, 2),
            steps=[s.as_dict() for s in result.steps],
        )
        self.builds.append(record)

    def _values(self, build: dict, trigger: dict, config: dict) -> dict[str, str]:
        branch = build[PRIVATE]["branch"]
        account = trigger.get("serviceAccount", "")
        built_in = {
            "PROJECT_ID": self.config.gcp_project_id,
            "PROJECT_NUMBER": PROJECT_NUMBER,
            "BUILD_ID": build["id"],
            "LOCATION": "global",
            "TRIGGER_NAME": trigger["name"],
            "TRIGGER_BUILD_CONFIG_PATH": trigger.get("filename", ""),
            "COMMIT_SHA": self.sha,
            "REVISION_ID": self.sha,
            "SHORT_SHA": self.sha[:7],
            "REPO_NAME": self.config.github_repository,
            "REPO_FULL_NAME": f"{self.config.github_owner}/{self.config.github_repository}",
            "BRANCH_NAME": branch,
            "REF_NAME": branch,
            "TAG_NAME": "",
            "SERVICE_ACCOUNT": account,
            "SERVICE_ACCOUNT_EMAIL": account.rsplit("/", 1)[-1],
        }
        return {**built_in, **config.get("substitutions", {}), **build.get("substitutions", {})}

    def _builders(self) -> dict[str, builders.Builder]:
        # Python and gcloud steps need nothing beyond the base environment, which points
        # gcloud at the double already.
        python, gcloud, kaniko = (
            BUILDERS[key] for key in ("_PYTHON_IMAGE", "_GCLOUD_IMAGE", "_KANIKO_IMAGE")
        )
        recorder_env = {"PREFLIGHT_IMAGES": str(self.images)}
        return {
            python: builders.Builder(python),
            gcloud: builders.Builder(gcloud),
            kaniko: builders.kaniko_builder(kaniko, recorder_env),
        }

    def _base_env(self) -> dict[str, str]:
        tools = self.state / "bin"
        tools.mkdir(exist_ok=True)
        python = Path(workspace.base_python())
        for name in ("python", "python3"):
            link = tools / name
            if not link.exists():
                link.symlink_to(python)
        env = executor.local_environment([tools])
        env.update(self.gcloud)
        return env

    # ---- serving ---------------------------------------------------------------------

    def _local_backend(self, url: str) -> str:
        return self.cloud_run.local_url_for(url)

    def _predict(self) -> dict | None:
        succeeded = {b["pipeline"] for b in self.builds if b["status"] == "SUCCESS"}
        if not {"api", "auth"} & succeeded:
            return None  # nothing this push deployed can answer
        names_env = self._names()
        if "auth" in succeeded and names_env["IS_PRODUCTION"] == "true":
            service, tag, headers = names_env["GATEWAY_SERVICE"], None, GATEWAY_CREDENTIALS
            via = "gateway"
        elif "api" in succeeded:
            service, tag, headers = names_env["API_SERVICE"], names_env["REVISION_TAG"], {}
            via = "branch revision tag"
        else:
            return None
        public_url, local = self.cloud_run.url_and_local(service, tag)
        return {"via": via, **self._post(public_url, local, "/predict", headers)}

    def _experiment(self) -> dict | None:
        """The published A/B config, and a prediction through each variant's gateway route."""
        succeeded = {b["pipeline"] for b in self.builds if b["status"] == "SUCCESS"}
        published = self.double.storage.local_path(self.config.bucket, PUBLISHED_OBJECT)
        if "auth" not in succeeded or not published.is_file():
            return None
        document = json.loads(published.read_text())
        gateway = self._names()["GATEWAY_SERVICE"]
        public_url, local = self.cloud_run.url_and_local(gateway, None)
        predictions = [
            {
                "variant": variant["name"],
                "branch": variant["branch"],
                **self._post(public_url, local, variant["route"], GATEWAY_CREDENTIALS),
            }
            for variant in document["variants"]
        ]
        return {"document": document, "predictions": predictions}

    def _post(self, public_url: str, local: str, path: str, headers: dict) -> dict:
        """POST the sample request to a deployed service's `path`, as a caller would."""
        body = (self.root / SAMPLE_REQUEST).read_bytes()
        request = urllib.request.Request(  # noqa: S310 (a loopback revision)
            local + path, data=body, method="POST",
            headers={"Content-Type": "application/json", **headers},
        )  # fmt: skip
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (loopback)
                status, text = answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        return {
            "url": f"{public_url}{path}",
            "local_url": f"{local}{path}",
            "status": status,
            "milliseconds": round((time.monotonic() - started) * 1000, 1),
            "request": json.loads(body),
            "response": _json_or_text(text),
        }

    def _names(self) -> dict[str, str]:
        return variables(self.config, names(self.config, self.branch, self.sha))


def _json_or_text(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} preflight",
        description="Run a push's pipelines offline, end to end, before pushing.",
    )
    parser.add_argument("--branch", required=True, help="the branch you would push")
    parser.add_argument("--changed", required=True, nargs="+", metavar="FILE")
    parser.add_argument("--sha", help="the commit to stand for the push (default: HEAD)")
    parser.add_argument("--json", type=Path, help="write the full state here")
    parser.add_argument("--state", type=Path, default=ROOT / "build" / "preflight")
    parser.add_argument("--fresh", action="store_true", help="forget earlier preflight runs")
    add_config_argument(parser)
    args = parser.parse_args(argv)
    config = load(args.config)
    try:
        changed = list(dict.fromkeys(changed_file(path) for path in args.changed))
    except ChangedFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    fired = list(fired_by_pipeline(config, args.branch, changed))
    if not fired:
        print(f"A push of {args.branch!r} changing {' '.join(changed)} fires no pipeline.")
        state = {"branch": args.branch, "changed": changed, "triggers": [], "builds": []}
        report.write_json(args.json, state)
        return 0
    if args.fresh and args.state.exists():
        shutil.rmtree(args.state)
    sha = args.sha or checked_out_commit(ROOT, "preflight")
    session = Session(config, ROOT, args.state, args.branch, sha)
    state = session.run(fired)
    state.update(changed=changed, triggers=fired)
    print(report.summary(state))
    report.write_json(args.json, state)
    return 0 if all(b["status"] == "SUCCESS" for b in state["builds"]) else 1
