"""The model every system serves, and the one row every system is asked to score.

The model is trained afresh by the project's own training command, so the benchmark
measures whatever `training/` builds today. It is read back the way
api/model_store.py reads it (skops, trusting only `numpy.dtype`), without importing
`api`: the API's code is what is being measured, not a library of the harness.
"""

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io

from template_tests.bench.errors import BenchError

REPO = Path(__file__).resolve().parents[2]
TRAINING_DATA = REPO / "training" / "data" / "penguins.csv"
TRUSTED_TYPES = ["numpy.dtype"]

# One penguin with every feature given (the first instance of api/sample-request.json),
# so no system is judged on how it spells a missing value.
SAMPLE_ROW: dict[str, Any] = {
    "island": "Biscoe",
    "sex": "female",
    "bill_length_mm": 46.1,
    "bill_depth_mm": 13.2,
    "flipper_length_mm": 211,
    "body_mass_g": 4500,
}


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Any
    schema: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return [str(label) for label in self.pipeline.classes_]

    @property
    def category_features(self) -> set[str]:
        return {f["name"] for f in self.schema["features"] if f["type"] == "category"}

    def frame(self, row: dict[str, Any]) -> pd.DataFrame:
        """`row` as a one-row frame built the way the API builds one.

        Columns in the order the pipeline was fitted with, each from a NumPy array of
        a fixed dtype: float64 for numbers, object for categories (pandas 3 then
        stores those as its string dtype, as it does in the API).
        """
        columns = {}
        for name in self.pipeline.feature_names_in_:
            dtype = object if name in self.category_features else np.float64
            columns[name] = np.array([row[name]], dtype=dtype)
        return pd.DataFrame(columns, copy=False)


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
    pipeline = skops.io.load(model_dir / "model.skops", trusted=TRUSTED_TYPES)
    schema = json.loads((model_dir / "schema.json").read_text(encoding="utf-8"))
    return TrainedModel(pipeline=pipeline, schema=schema)
