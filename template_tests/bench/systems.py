"""What the harness needs to know of a system under test, and our API's answer to it.

A system is a command that serves the model on a given port, the request that asks
it for the sample row's probabilities, and how to read them out of its answer. The
MLServer systems are described in mlserver.py.
"""

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from template_tests.bench import workload
from template_tests.bench.errors import BenchError

# Probabilities must agree to this absolute difference: JSON round-trips a float64
# exactly, so anything beyond rounding noise means a system scored another row.
PROBABILITY_TOLERANCE = 1e-9
# The API's own settings (api/settings.py) stay at their defaults whatever the shell
# running the benchmark has set: the run measures the API as it ships.
_API_SETTINGS = ("MODEL_DIR", "PORT", "MAX_BATCH", "MAX_BODY_BYTES")


@dataclass(frozen=True)
class Launch:
    command: list[str]
    env: dict[str, str]
    cwd: Path


@dataclass(frozen=True)
class System:
    # The system's key in results.json, and its name in tables and charts.
    key: str
    title: str
    predict_path: str
    body: bytes
    # The command serving on a given HTTP port (each start gets a fresh one).
    launch: Callable[[int], Launch]
    # The class probabilities, in the pipeline's class order, from a decoded answer.
    read_probabilities: Callable[[Any], list[float]]

    def check_answer(self, answer: bytes, expected: list[float]) -> None:
        """Raise unless `answer` gives the probabilities the raw pipeline gives."""
        try:
            probabilities = self.read_probabilities(json.loads(answer))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BenchError(
                f"{self.title} answered something unexpected: {answer[:300]!r}"
            ) from exc
        if len(probabilities) != len(expected) or not all(
            math.isclose(got, want, rel_tol=0, abs_tol=PROBABILITY_TOLERANCE)
            for got, want in zip(probabilities, expected, strict=False)
        ):
            raise BenchError(
                f"{self.title} gives probabilities {probabilities} for the sample row, "
                f"the pipeline itself gives {expected}"
            )


API_REQUIREMENTS = workload.REPO / "api" / "requirements.txt"


def our_api(model_dir: Path, classes: list[str], python: Path) -> System:
    """`python -m api` from the repository root, with `python` from a venv holding the
    image's lock (api/requirements.txt), as the image runs it."""

    def launch(port: int) -> Launch:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("AIP_") and name not in _API_SETTINGS
        }
        env["MODEL_DIR"] = str(model_dir.resolve())
        # Vertex AI's and Cloud Run's names for the port; the API reads either.
        env |= {"AIP_HTTP_PORT": str(port), "PORT": str(port)}
        return Launch(command=[str(python), "-m", "api"], env=env, cwd=workload.REPO)

    def read_probabilities(answer: Any) -> list[float]:
        by_class = answer["predictions"][0]["probabilities"]
        return [float(by_class[label]) for label in classes]

    return System(
        key="api",
        title="our API",
        predict_path="/predict",
        body=json.dumps({"instances": [workload.SAMPLE_ROW]}).encode(),
        launch=launch,
        read_probabilities=read_probabilities,
    )
