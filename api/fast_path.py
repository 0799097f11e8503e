"""The fitted preprocessing as plain NumPy, used only where it provably equals the pipeline.

Scoring one row with the scikit-learn pipeline costs about 6 ms, nearly all of it
fixed per call: the ColumnTransformer selects each column from a DataFrame and runs
six small pipelines, each validating its input. What those fitted steps compute is
a handful of arithmetic operations per column. For the steps this template's
training builds (SimpleImputer, StandardScaler, OneHotEncoder inside a
ColumnTransformer), `compile_preprocessing` reads their fitted parameters and
does the same operations on NumPy arrays; the classifier still scores through
scikit-learn's own `predict_proba`.

It is only used when it can be trusted:
- every step is one it knows, configured in a way it implements (anything else,
  say a custom transformer, is reported and the pipeline is used as is);
- at start-up, on probe rows covering every category, every missing value and a
  spread of numbers, it gives the pipeline's probabilities to within 1e-9.
A model trained with other steps therefore stays correct, only slower.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from api.columns import column_builder
from api.feature_schema import CategoryFeature, Feature

TOLERANCE = 1e-9
Block = Callable[[list[Any]], np.ndarray]  # one feature's values -> an (n, width) block


class NotCompilable(ValueError):
    """The pipeline has a step, or a setting, the fast path does not implement."""


class FastPath:
    """Scores instances as `pipeline.predict_proba` would, without the per-call overhead."""

    def __init__(self, pipeline: Pipeline, features: Sequence[Feature]) -> None:
        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            raise NotCompilable("the model is not a two-step Pipeline (preprocessing, classifier)")
        (_, preprocess), (_, self._classifier) = pipeline.steps
        if not isinstance(preprocess, ColumnTransformer):
            raise NotCompilable(
                f"its first step is a {type(preprocess).__name__}, not a ColumnTransformer"
            )
        if hasattr(self._classifier, "feature_names_in_"):
            raise NotCompilable("the classifier was fitted on named columns")
        by_name = {feature.name: feature for feature in features}
        self._blocks: list[tuple[str, Block, int]] = []
        for name, transformer, columns in preprocess.transformers_:
            if transformer == "drop":
                continue
            if not (isinstance(columns, list) and len(columns) == 1 and columns[0] in by_name):
                raise NotCompilable(f"transformer {name!r} does not take one schema feature")
            self._blocks.append(_compile_column(name, transformer, by_name[columns[0]]))
        self._width = sum(width for _, _, width in self._blocks)
        expected = getattr(self._classifier, "n_features_in_", None)
        if expected != self._width:
            raise NotCompilable(f"it makes {self._width} columns; the classifier takes {expected}")

    def probabilities(self, instances: Sequence[Mapping[str, Any]]) -> np.ndarray:
        matrix = np.empty((len(instances), self._width))
        start = 0
        for name, column, width in self._blocks:
            matrix[:, start : start + width] = column([row[name] for row in instances])
            start += width
        return self._classifier.predict_proba(matrix)


def _compile_column(name: str, transformer: Any, feature: Feature) -> tuple[str, Block, int]:
    steps = transformer.steps if isinstance(transformer, Pipeline) else [(name, transformer)]
    fill: Any = None
    operations: list[Callable[[np.ndarray], np.ndarray]] = []
    width = 1
    categorical = isinstance(feature, CategoryFeature)
    for index, (step_name, step) in enumerate(steps):
        where = f"{name}.{step_name}"
        if isinstance(step, SimpleImputer) and index == 0:
            if step.add_indicator or not _is_nan(step.missing_values):
                raise NotCompilable(
                    f"{where}: only NaN imputation without indicator is implemented"
                )
            fill = step.statistics_[0]
        elif isinstance(step, StandardScaler) and not categorical:
            mean = step.mean_[0] if step.with_mean else 0.0
            scale = step.scale_[0] if step.with_std else 1.0
            operations.append(lambda values, mean=mean, scale=scale: (values - mean) / scale)
        elif isinstance(step, OneHotEncoder) and categorical and index == len(steps) - 1:
            if step.drop_idx_ is not None or getattr(step, "_infrequent_enabled", False):
                raise NotCompilable(f"{where}: drop and infrequent categories are not implemented")
            categories = list(step.categories_[0])
            width = len(categories)
            operations.append(_one_hot(categories))
        else:
            raise NotCompilable(f"{where}: a {type(step).__name__} here is not implemented")

    build = column_builder(feature)

    def column(values: list[Any]) -> np.ndarray:
        # The same array the pipeline's frame gets, so the probe check compares like with like.
        array = build(values)
        # A missing value is NaN there, the one value not equal to itself: this finds it
        # in number and category columns alike.
        missing = array != array
        if missing.any():
            if fill is None:
                raise ValueError(f"{name}: a missing value and no imputer")
            array[missing] = fill
        for operation in operations:
            array = operation(array)
        return array.reshape(len(values), -1)

    return name, column, width


def _one_hot(categories: list[Any]) -> Callable[[np.ndarray], np.ndarray]:
    position = {category: index for index, category in enumerate(categories)}

    def encode(values: np.ndarray) -> np.ndarray:
        block = np.zeros((len(values), len(categories)))
        for row, value in enumerate(values):
            # The request models admit only known categories; a value that still gets
            # here is refused, as the pipeline's encoder (handle_unknown="error") would.
            if value not in position:
                raise ValueError(f"unknown category {value!r}")
            block[row, position[value]] = 1.0
        return block

    return encode


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and np.isnan(value)


def probe_instances(features: Sequence[Feature]) -> list[dict[str, Any]]:
    """Rows that exercise every category, each nullable feature's missing value, and
    numbers from large negative to large positive."""
    numbers = [-1e3, -1.0, 0.0, 0.5, 1.0, 42.0, 1e3, 3.3e3]
    sizes = [len(f.categories) for f in features if isinstance(f, CategoryFeature)]
    count = max([*sizes, len(numbers)]) + 1
    rows = []
    for row in range(count):
        instance: dict[str, Any] = {}
        for column, feature in enumerate(features):
            if feature.nullable and (row + column) % count == count - 1:
                value = None
            elif isinstance(feature, CategoryFeature):
                value = feature.categories[(row + column) % len(feature.categories)]
            else:
                value = numbers[(row + column) % len(numbers)]
            instance[feature.name] = value
        rows.append(instance)
    return rows


def agrees(
    fast: FastPath, slow: Callable[[list[dict[str, Any]]], np.ndarray], probes: list[dict]
) -> str | None:
    """None when the fast path gives the pipeline's probabilities on `probes`, else why not."""
    try:
        got, want = fast.probabilities(probes), slow(probes)
    except (ValueError, KeyError, TypeError) as error:
        return f"it failed on the probe rows: {error}"
    if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=TOLERANCE):
        worst = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
        return f"it differs from the pipeline on the probe rows (by up to {worst:.3g})"
    return None
