"""Run one build's steps the way Cloud Build runs them, on this machine.

What is Cloud Build's and kept exactly: step order with `id`/`waitFor` (a step
waits for all earlier ones unless it names others; `-` starts at once), `dir`
relative to the workspace, `env`, `script` (never substituted; automapped
substitutions arrive as environment variables) and `args`/`entrypoint`, the
substitution rules of a triggered build (cloudbuild/substitutions.py), per-step
and build timeouts, and the first failure ending the build.

What stands in for a container: each builder image maps to a local tool
(builders.py), and the container paths a script names (`/workspace`,
`/kaniko/executor`, `/busybox/sh`) are rewritten to their local stand-ins.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudbuild import substitutions
from cloudbuild.preflight.builders import Builder

DEFAULT_BUILD_TIMEOUT = 600.0


@dataclass
class StepResult:
    id: str
    builder: str
    status: str = "PENDING"  # PENDING, SUCCESS, FAILURE, TIMEOUT or CANCELLED
    seconds: float = 0.0
    output: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "builder": self.builder,
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "output": self.output,
        }


@dataclass
class BuildResult:
    status: str = "QUEUED"
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if s.status in ("FAILURE", "TIMEOUT")), None)


def _seconds(duration: str | None, default: float) -> float:
    return float(duration.removesuffix("s")) if duration else default


def run_build(
    build: dict[str, Any],
    values: dict[str, str],
    workspace: Path,
    builders: dict[str, Builder],
    base_env: dict[str, str],
) -> BuildResult:
    """Run `build` with the substitution `values` a trigger would supply."""
    result = BuildResult(
        steps=[
            StepResult(step.get("id", f"step-{i}"), substitutions.substitute(step["name"], values))
            for i, step in enumerate(build["steps"])
        ]
    )
    _check_wait_for(result.steps, build["steps"])
    deadline = time.monotonic() + _seconds(build.get("timeout"), DEFAULT_BUILD_TIMEOUT)
    started = time.monotonic()
    automapped = values if substitutions.automap(build) else {}
    for step, step_result in zip(build["steps"], result.steps, strict=True):
        builder = builders.get(step_result.builder)
        if builder is None:
            step_result.status = "FAILURE"
            step_result.output = f"no local stand-in for the builder image {step_result.builder!r}"
            break
        env = {**base_env, **automapped}
        for item in step.get("env", []):
            key, _, value = substitutions.substitute(item, values).partition("=")
            env[key] = value
        cwd = workspace / substitutions.substitute(step.get("dir", ""), values)
        remaining = deadline - time.monotonic()
        timeout = min(_seconds(step.get("timeout"), remaining), remaining)
        command = builder.command(step, values, workspace)
        step_started = time.monotonic()
        try:
            process = subprocess.run(
                command,
                cwd=cwd,
                env={**env, **builder.env},
                capture_output=True,
                text=True,
                timeout=max(timeout, 0.01),
                check=False,
            )
            step_result.output = process.stdout + process.stderr
            step_result.status = "SUCCESS" if process.returncode == 0 else "FAILURE"
            if process.returncode:
                step_result.output += f"\n(exit status {process.returncode})"
        except subprocess.TimeoutExpired as expired:
            step_result.output = _text(expired.stdout) + _text(expired.stderr)
            step_result.status = "TIMEOUT"
        step_result.seconds = time.monotonic() - step_started
        if step_result.status != "SUCCESS":
            break
    for step_result in result.steps:
        if step_result.status == "PENDING":
            step_result.status = "CANCELLED"
    failed = result.failed_step
    result.status = "SUCCESS" if failed is None else failed.status
    result.seconds = time.monotonic() - started
    return result


def _check_wait_for(results: list[StepResult], steps: list[dict]) -> None:
    """Steps run one at a time here, in file order, which every waitFor allows.

    Cloud Build may run a step early (`waitFor: ['-']` or a subset); running it later
    is one of its allowed schedules. A waitFor naming a step that is not earlier
    would never start on Cloud Build either, so the build is refused before any step.
    """
    earlier_ids: set[str | None] = set()
    for result, step in zip(results, steps, strict=True):
        for needed in step.get("waitFor", []):
            if needed != "-" and needed not in earlier_ids:
                raise ValueError(
                    f"step {result.id!r} waits for {needed!r}, which is not an earlier step"
                )
        earlier_ids.add(step.get("id"))


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def local_environment(path_dirs: list[Path]) -> dict[str, str]:
    """This machine's environment with the stand-ins' folder first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([*map(str, path_dirs), env.get("PATH", "")])
    return env
