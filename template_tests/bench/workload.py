"""The model every system serves, and the one row every system is asked to score.

The model is trained afresh by the project's own training command, so the benchmark
measures whatever `training/` builds today. It is read back by the API's own loader
(api/model_store.py), so every system serves exactly what the API accepts, checks
and trusted types included.
"""

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from api.feature_schema import FeatureSchema
from api.model_store import load_model
from api.predictor import Predictor
from template_tests.bench.errors import BenchError

REPO = Path(__file__).resolve().parents[2]
TRAINING_DATA = REPO / "training" / "data" / "penguins.csv"
SAMPLE_REQUEST = REPO / "api" / "sample-request.json"

# The first instance of the API's sample request: a penguin with every feature given,
# so no system is judged on how it spells a missing value.
SAMPLE_ROW: dict[str, Any] = json.loads(SAMPLE_REQUEST.read_text(encoding="utf-8"))["instances"][0]


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Any
    schema: FeatureSchema

    @property
    def classes(self) -> list[str]:
        return [str(label) for label in self.pipeline.classes_]

    @property
    def category_features(self) -> set[str]:
        return {f.name for f in self.schema.features if f.type == "category"}

    def frame(self, row: dict[str, Any]) -> pd.DataFrame:
        """`row` as the one-row frame the API hands the pipeline (api/predictor.py)."""
        return Predictor(self.pipeline, self.schema.features).frame([row])


def train(model_dir: Path) -> None:
    """Train on the shipped sample into `model_dir`, replacing what a last run left."""
    # Training never overwrites a model folder, and an old model would hide changes
    # to training/ from the benchmark.
    shutil.rmtree(model_dir, ignore_errors=True)
    command = [sys.executable, "-m", "training", "train", "--data", str(TRAINING_DATA)]
    command += ["--model-dir", str(model_dir), "--branch", "bench"]
    completed = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )
    if completed.returncode != 0:
        raise BenchError(f"training failed:\n{completed.stderr.strip()}")


def load(model_dir: Path) -> TrainedModel:
    model = load_model(model_dir)
    return TrainedModel(pipeline=model.pipeline, schema=model.schema)
