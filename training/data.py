"""Reading the training data and checking it against the feature spec.

Every check raises `DataError` with a one-line message naming the columns or
classes at fault, before anything is fitted or written. `validate` is the single
definition of "data we can train on": training calls it, and so does the build's
fetch step (`python -m training validate`), so the two can never disagree.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.features import PENGUINS, FeatureSpec

# A stratified split puts at least one row of every class in both the training and
# the test set, so no class can have fewer rows than this.
MIN_ROWS_PER_CLASS = 2


class DataError(ValueError):
    """The data cannot be trained on; the message says why."""


@dataclass(frozen=True)
class DataFile:
    frame: pd.DataFrame
    sha256: str


@dataclass(frozen=True)
class Dataset:
    """Validated data: typed feature columns in spec order and a labelled target."""

    features: pd.DataFrame
    target: pd.Series
    rows: int
    # Per categorical feature, the sorted values the data holds: the feature's domain,
    # which the model accepts and the schema publishes.
    categories: dict[str, list[str]]

    @property
    def dropped_unlabelled(self) -> int:
        return self.rows - len(self.target)


def class_counts(labels: pd.Series) -> dict[str, int]:
    """Rows per class, by class name, in a form JSON can hold."""
    return {str(label): int(n) for label, n in labels.value_counts().sort_index().items()}


def read_csv(path: Path, *, expect_sha256: str | None = None) -> DataFile:
    """Read a CSV file, hashing exactly the bytes that are parsed.

    With `expect_sha256`, a file that differs from the one the build validated is
    refused before it is parsed.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if expect_sha256 is not None and digest != expect_sha256.lower():
        raise DataError(f"sha256 of {path} is {digest}, expected {expect_sha256.lower()}")
    if not raw.strip():
        raise DataError(f"data file {path} is empty")
    try:
        # Everything is read as text so that `validate`, not pandas' type guessing,
        # decides what a column holds and reports the values that do not fit.
        frame = pd.read_csv(io.BytesIO(raw), dtype=str, encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"data file {path} is not UTF-8 text") from None
    except pd.errors.ParserError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise DataError(f"data file {path} is not valid CSV: {reason}") from None
    return DataFile(frame=frame, sha256=digest)


def validate(frame: pd.DataFrame, *, test_size: float, spec: FeatureSpec = PENGUINS) -> Dataset:
    """Check `frame` against `spec` and return the rows training will use.

    Rows without a target value are dropped (they cannot be learned from, and
    unlabelled rows are a normal part of collected data); `Dataset.rows` keeps the
    original count so the lineage shows how many were dropped. Missing feature
    values stay for the pipeline's imputers, except in non-nullable columns, where
    they are an error. Columns outside the spec are ignored.
    """
    missing = [column for column in spec.columns if column not in frame.columns]
    if missing:
        raise DataError(
            f"missing columns: {', '.join(missing)} (expected {', '.join(spec.columns)})"
        )
    if frame.empty:
        raise DataError("the data has no rows")

    target = _text(frame[spec.target])
    labelled = target.notna()
    if not labelled.any():
        raise DataError(f"target column {spec.target} has no values")
    target = target[labelled].reset_index(drop=True)
    rows = frame.loc[labelled].reset_index(drop=True)

    features = pd.DataFrame(
        {
            feature.name: _numbers(rows[feature.name], feature.name, feature.type)
            if feature.is_numeric
            else _text(rows[feature.name])
            for feature in spec.features
        }
    )
    for feature in spec.features:
        absent = int(features[feature.name].isna().sum())
        if absent == len(features):
            raise DataError(f"column {feature.name} has no values")
        if absent and not feature.nullable:
            raise DataError(
                f"column {feature.name} is required but {absent} labelled row(s) lack a value"
            )

    _check_classes(target, spec.target, test_size)
    categories = {
        feature.name: sorted(features[feature.name].dropna().unique().tolist())
        for feature in spec.features
        if not feature.is_numeric
    }
    return Dataset(features=features, target=target, rows=len(frame), categories=categories)


def _text(column: pd.Series) -> pd.Series:
    """Values as stripped strings; blank counts as missing."""
    text = column.astype(str).str.strip()
    return text.where(column.notna() & (text != ""))


def _numbers(column: pd.Series, name: str, kind: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        numbers = column.astype("float64")
    else:
        text = _text(column)
        numbers = pd.to_numeric(text, errors="coerce").astype("float64")
        bad = text.notna() & numbers.isna()
        if bad.any():
            examples = ", ".join(repr(value) for value in sorted(set(text[bad]))[:3])
            raise DataError(
                f"column {name} must be numeric but holds {int(bad.sum())} "
                f"non-numeric value(s), e.g. {examples}"
            )
    if np.isinf(numbers).any():
        raise DataError(f"column {name} holds infinite values")
    if kind == "integer" and (numbers.dropna() % 1 != 0).any():
        raise DataError(f"column {name} must hold whole numbers")
    return numbers


def _check_classes(target: pd.Series, name: str, test_size: float) -> None:
    counts = target.value_counts().sort_index()
    if len(counts) < 2:
        raise DataError(
            f"target column {name} holds a single class ({counts.index[0]!r}); "
            "a classifier needs at least two"
        )
    scarce = counts[counts < MIN_ROWS_PER_CLASS]
    if not scarce.empty:
        listed = ", ".join(f"{label} ({n})" for label, n in scarce.items())
        raise DataError(
            f"classes with fewer than {MIN_ROWS_PER_CLASS} rows cannot be split into "
            f"training and test sets: {listed}"
        )
    # The same arithmetic as sklearn's train_test_split, so that the split itself
    # cannot fail after validation passed.
    n_test = math.ceil(test_size * len(target))
    n_train = len(target) - n_test
    if min(n_test, n_train) < len(counts):
        raise DataError(
            f"a test size of {test_size} splits {len(target)} rows into {n_train} for "
            f"training and {n_test} for testing; each needs at least one row of each of "
            f"the {len(counts)} classes"
        )
