"""`train`: validated data in, fitted pipeline plus held-out metrics and schema out.

Pure: no files, no environment, no clock. The CLI does the I/O around it, and
tests call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from training.data import class_counts, validate
from training.features import PENGUINS, FeatureSpec
from training.pipeline import build_pipeline, learned_categories, learned_classes

# scikit-learn accepts seeds in this range only.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class TrainParams:
    """Everything that, together with the data and library versions, fixes the model."""

    seed: int = 42
    test_size: float = 0.2
    c: float = 1.0
    max_iter: int = 1000

    def __post_init__(self) -> None:
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be between 0 and {MAX_SEED}, got {self.seed}")
        if not 0 < self.test_size < 1:
            raise ValueError(f"test size must be between 0 and 1, got {self.test_size}")
        # Written so that NaN fails too.
        if not self.c > 0:
            raise ValueError(f"C must be positive, got {self.c}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be at least 1, got {self.max_iter}")


@dataclass(frozen=True)
class TrainResult:
    pipeline: Pipeline
    params: TrainParams
    metrics: dict[str, Any]
    schema: dict[str, Any]
    rows: int
    rows_unlabelled: int


def train(data: pd.DataFrame, params: TrainParams, spec: FeatureSpec = PENGUINS) -> TrainResult:
    """Validate `data`, fit on a stratified split and score on the held-out part.

    Raises `training.data.DataError` if the data cannot be trained on. The returned
    pipeline is the one fitted on the training split, not refitted on all rows, so
    the metrics describe exactly the model that gets saved and served.
    """
    dataset = validate(data, test_size=params.test_size, spec=spec)
    x_train, x_test, y_train, y_test = train_test_split(
        dataset.features,
        dataset.target,
        test_size=params.test_size,
        stratify=dataset.target,
        random_state=params.seed,
    )
    pipeline = build_pipeline(
        spec, dataset.categories, c=params.c, max_iter=params.max_iter, seed=params.seed
    )
    pipeline.fit(x_train, y_train)
    return TrainResult(
        pipeline=pipeline,
        params=params,
        metrics=_evaluate(pipeline, x_test, y_test, y_train),
        schema=spec.schema(learned_categories(pipeline, spec), learned_classes(pipeline)),
        rows=dataset.rows,
        rows_unlabelled=dataset.dropped_unlabelled,
    )


def _evaluate(
    pipeline: Pipeline, x_test: pd.DataFrame, y_test: pd.Series, y_train: pd.Series
) -> dict[str, Any]:
    predicted = pipeline.predict(x_test)
    return {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "f1_macro": float(f1_score(y_test, predicted, average="macro")),
        "log_loss": float(
            log_loss(y_test, pipeline.predict_proba(x_test), labels=pipeline.classes_)
        ),
        "n_train": len(y_train),
        "n_test": len(y_test),
        "class_counts": {"train": class_counts(y_train), "test": class_counts(y_test)},
    }
