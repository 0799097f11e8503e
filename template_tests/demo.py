"""`make demo`: render a project from example-answers.yml, then use it as its users do.

1. `copier copy` with the example answers into a throwaway folder;
2. `make train` on the shipped sample data, `make serve` and a real prediction
   request over HTTP, then the server is stopped;
3. the project's first push, offline: `git init`, a commit, and `make preflight` for
   the production branch touching every folder, so all three pipelines run against
   the loopback double, ending with a prediction through the gateway.

It uses the template repository's own virtualenv (the same lock files).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import copier

from cloudbuild.preflight.serving import free_port
from template_tests.snapshot import GIT_IDENTITY, example_answers, snapshot


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def wait_for_health(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the API exited with code {server.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the API did not become healthy at {url} within {seconds:.0f} s")


def render(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as template:
        copier.run_copy(
            str(snapshot(Path(template))),
            dest,
            data=example_answers(),
            defaults=True,
            vcs_ref="HEAD",
            quiet=True,
        )


def serve_and_predict(project: Path, python: Path) -> dict:
    port = free_port()
    env = {
        **os.environ,
        "MODEL_DIR": str(project / "build" / "model"),
        "AIP_HTTP_PORT": str(port),
        "HOST": "127.0.0.1",
    }
    server = subprocess.Popen([str(python), "-m", "api"], cwd=project, env=env)
    try:
        wait_for_health(f"http://127.0.0.1:{port}/health", server)
        body = (project / "api" / "sample-request.json").read_bytes()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/predict",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        print(f"POST http://127.0.0.1:{port}/predict with api/sample-request.json")
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            return json.load(response)
    finally:
        server.terminate()
        server.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--venv", type=Path, required=True)
    args = parser.parse_args(argv)
    project = args.dest.resolve()
    python = args.venv / "bin" / "python"

    step(f"copier copy --data-file example-answers.yml . {project}")
    render(project)
    step("make train")
    subprocess.run(["make", "train", f"VENV={args.venv}", "BRANCH=demo"], cwd=project, check=True)
    step("make serve (in the background) and a real prediction")
    prediction = serve_and_predict(project, python)
    print(json.dumps(prediction, indent=2))
    step("stopped the API")

    step("the first push, offline: make preflight BRANCH=main CHANGED='training/ api/ openapi/'")
    for command in (["init", "--quiet", "--initial-branch=main"], ["add", "--all"],
                    ["commit", "--quiet", "--message", "Generated from the template"]):  # fmt: skip
        subprocess.run(["git", *GIT_IDENTITY, *command], cwd=project, check=True)
    changed = "training/train.py api/main.py openapi/openapi.yaml"
    subprocess.run(
        ["make", "preflight", f"VENV={args.venv}", "BRANCH=main", f"CHANGED={changed}"],
        cwd=project,
        check=True,
    )
    step(f"done; the rendered project stays in {project}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
