"""Seldon MLServer serving the same pipeline: its environment, model folders and requests.

MLServer runs from a virtualenv of its own (its FastAPI and pydantic pins clash with
the project's), installed from requirements-mlserver.txt and re-used while that file
is unchanged. Its scikit-learn runtime loads joblib files, so the pipeline our API
loads from skops is written out again with joblib, by the same library versions.

Two configurations, differing only in batching:
- `mlserver` (tuned): inference in the server process (parallel_workers 0, no
  inter-process hop), no metrics (no Prometheus middleware or metrics server), no
  access log, no gzip middleware: MLServer at its leanest per request.
- `mlserver_batching`: the same plus adaptive batching. max_batch_size 16 is the
  load's concurrency, so every waiting request fits one batch; max_batch_time 2 ms
  is a third of one prediction of this pipeline (about 6 ms here, and 16 rows cost
  barely more than 1), so a request that finds no company waits little, while under
  load a batch of 16 costs about what one prediction does.
"""

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import joblib

from cloudbuild.preflight.serving import free_port
from template_tests.bench import venvs, workload
from template_tests.bench.errors import BenchError
from template_tests.bench.systems import Launch, System

REQUIREMENTS = Path(__file__).resolve().parent / "requirements-mlserver.txt"
DEV_LOCK = workload.REPO / "requirements-dev.txt"
# The libraries that build, pickle and run the pipeline: MLServer must have the
# versions that trained it, or the model may load with warnings or score differently.
SHARED_LIBRARIES = ("scikit-learn", "numpy", "pandas", "scipy", "joblib")
MODEL_NAME = "penguins"

SERVER_SETTINGS = {
    "debug": False,
    "parallel_workers": 0,
    "metrics_endpoint": None,
    "gzip_enabled": False,
    "host": "127.0.0.1",
}
BATCHING = {"max_batch_size": 16, "max_batch_time": 0.002}
# results.json key -> (title, model folder under build/bench/mlserver/, model settings).
CONFIGURATIONS = {
    "mlserver": ("MLServer tuned", "tuned", {}),
    "mlserver_batching": ("MLServer batching", "batching", BATCHING),
}


def pins(requirements: Path) -> dict[str, str]:
    """The `name==version` lines of a lock file."""
    pinned = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)", re.MULTILINE)
    text = requirements.read_text(encoding="utf-8")
    return {name.lower(): version for name, version in pinned.findall(text)}


def shared_pin_mismatches() -> list[str]:
    """How the MLServer lock strays from the dev lock on the shared libraries."""
    ours, theirs = pins(DEV_LOCK), pins(REQUIREMENTS)
    return [
        f"{name}: {ours.get(name)} in {DEV_LOCK.name}, {theirs.get(name)} in {REQUIREMENTS.name}"
        for name in SHARED_LIBRARIES
        if ours.get(name) is None or ours.get(name) != theirs.get(name)
    ]


def ensure_environment(venv: Path) -> Path:
    """MLServer's virtualenv, installed unless it already holds this requirements file."""
    mismatches = shared_pin_mismatches()
    if mismatches:
        raise BenchError(
            "the MLServer lock does not pin the dev lock's versions; run `make bench-lock`: "
            + "; ".join(mismatches)
        )
    return venvs.ensure(venv, REQUIREMENTS, "MLServer") / "mlserver"


def write_model_folder(folder: Path, pipeline: Any, model_settings: dict) -> None:
    """settings.json, model-settings.json and model.joblib: what `mlserver start` reads."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    joblib.dump(pipeline, folder / "model.joblib")
    settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1"},
        **model_settings,
    }
    (folder / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    (folder / "settings.json").write_text(json.dumps(SERVER_SETTINGS, indent=2) + "\n")


def inference_request(row: dict[str, Any], categories: set[str]) -> bytes:
    """A V2 inference request for `row`, decoded by MLServer's pandas codec.

    One input per column, FP64 numbers and BYTES strings, and the `predict_proba`
    output asked for by name (the runtime returns `predict` otherwise).
    """
    inputs = [
        {
            "name": name,
            "datatype": "BYTES" if name in categories else "FP64",
            "shape": [1],
            "data": [value if name in categories else float(value)],
        }
        for name, value in row.items()
    ]
    request = {
        "parameters": {"content_type": "pd"},
        "inputs": inputs,
        "outputs": [{"name": "predict_proba"}],
    }
    return json.dumps(request).encode()


def read_probabilities(answer: Any) -> list[float]:
    (output,) = (item for item in answer["outputs"] if item["name"] == "predict_proba")
    return [float(value) for value in output["data"]]


def system(key: str, root: Path, executable: Path, model: workload.TrainedModel) -> System:
    """One MLServer configuration as a system under test, its model folder written."""
    title, folder_name, model_settings = CONFIGURATIONS[key]
    folder = root / folder_name
    write_model_folder(folder, model.pipeline, model_settings)

    def launch(port: int) -> Launch:
        # Its settings come from settings.json alone, never from the shell's MLSERVER_*
        # variables; the ports, which change per start, come from here. MLServer
        # always starts a gRPC server too, so that gets a free port of its own.
        env = {name: value for name, value in os.environ.items() if not name.startswith("MLSERVER")}
        env |= {"MLSERVER_HTTP_PORT": str(port), "MLSERVER_GRPC_PORT": str(free_port())}
        return Launch(command=[str(executable), "start", str(folder)], env=env, cwd=folder)

    return System(
        key=key,
        title=title,
        predict_path=f"/v2/models/{MODEL_NAME}/infer",
        body=inference_request(workload.SAMPLE_ROW, model.category_features),
        launch=launch,
        read_probabilities=read_probabilities,
    )
