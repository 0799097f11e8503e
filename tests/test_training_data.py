"""Reading and validating training data: what is accepted, and every refusal."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data import DataError, class_counts, read_csv, validate
from training.features import PENGUINS, Feature, FeatureSpec

SAMPLE = Path(__file__).resolve().parent.parent / "training" / "data" / "penguins.csv"
TEST_SIZE = 0.2


@pytest.fixture
def penguins() -> pd.DataFrame:
    """The sample as read for training: every value still text."""
    return read_csv(SAMPLE).frame


def check(frame: pd.DataFrame, tmp_path: Path, *, test_size: float = TEST_SIZE):
    """Round-trip through a CSV file, as training data always arrives."""
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return validate(read_csv(path).frame, test_size=test_size)


def test_sample_is_valid_and_hashed_byte_for_byte():
    data = read_csv(SAMPLE)
    dataset = validate(data.frame, test_size=TEST_SIZE)

    assert data.sha256 == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    assert dataset.rows == 344
    assert dataset.dropped_unlabelled == 0
    assert class_counts(dataset.target) == {"Adelie": 152, "Chinstrap": 68, "Gentoo": 124}
    assert dataset.categories == {
        "island": ["Biscoe", "Dream", "Torgersen"],
        "sex": ["female", "male"],
    }
    assert list(dataset.features.columns) == [feature.name for feature in PENGUINS.features]
    assert dataset.features["bill_length_mm"].dtype == np.float64
    # The sample's gaps reach the pipeline's imputers untouched.
    assert int(dataset.features["sex"].isna().sum()) == 11
    assert int(dataset.features["body_mass_g"].isna().sum()) == 2


def test_frame_with_parsed_types_is_accepted():
    dataset = validate(pd.read_csv(SAMPLE), test_size=TEST_SIZE)

    assert dataset.features["body_mass_g"].max() == 6300.0
    assert dataset.categories["island"] == ["Biscoe", "Dream", "Torgersen"]


def test_rows_without_target_are_dropped_and_counted(penguins, tmp_path):
    penguins.loc[[0, 5, 9], "species"] = None

    dataset = check(penguins, tmp_path)

    assert dataset.rows == 344
    assert dataset.dropped_unlabelled == 3
    assert len(dataset.target) == len(dataset.features) == 341


def test_surrounding_whitespace_is_not_part_of_a_value(penguins, tmp_path):
    penguins.loc[0, "island"] = "  Torgersen "
    penguins.loc[1, "sex"] = "   "

    dataset = check(penguins, tmp_path)

    assert dataset.categories["island"] == ["Biscoe", "Dream", "Torgersen"]
    assert pd.isna(dataset.features.loc[1, "sex"])


def _drop_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["island", "sex"])


def _text_in_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[3, "bill_length_mm"] = "unknown"
    frame.loc[7, "bill_length_mm"] = "39,1"
    return frame


def _infinite(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[0, "body_mass_g"] = "inf"
    return frame


def _single_class(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["species"] == "Adelie"]


def _no_target(frame: pd.DataFrame) -> pd.DataFrame:
    frame["species"] = None
    return frame


def _one_chinstrap(frame: pd.DataFrame) -> pd.DataFrame:
    chinstrap = frame.index[frame["species"] == "Chinstrap"]
    return frame.drop(index=chinstrap[1:])


def _required_missing(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[[2, 4], "island"] = None
    return frame


def _empty_feature(frame: pd.DataFrame) -> pd.DataFrame:
    frame["sex"] = None
    return frame


def _header_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[0:0]


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_drop_columns, r"missing columns: island, sex \(expected species, "),
        (_text_in_numbers, r"bill_length_mm must be numeric .* 2 .* '39,1', 'unknown'"),
        (_infinite, r"body_mass_g holds infinite values"),
        (_single_class, r"species holds a single class \('Adelie'\)"),
        (_no_target, r"target column species has no values"),
        (_one_chinstrap, r"fewer than 2 rows .*: Chinstrap \(1\)"),
        (_required_missing, r"island is required but 2 labelled row\(s\) lack a value"),
        (_empty_feature, r"column sex has no values"),
        (_header_only, r"the data has no rows"),
    ],
)
def test_bad_data_is_refused_by_name(penguins, tmp_path, corrupt, message):
    with pytest.raises(DataError, match=message):
        check(corrupt(penguins), tmp_path)


def test_test_split_too_small_for_every_class(penguins, tmp_path):
    few = penguins.groupby("species").head(4)

    with pytest.raises(DataError, match=r"splits 12 rows into 11 .* and 1 .* 3 classes"):
        check(few, tmp_path, test_size=0.05)


def test_integer_features_must_be_whole_numbers():
    spec = FeatureSpec(
        target="label",
        features=(Feature("count", "integer", nullable=True),),
    )
    frame = pd.DataFrame({"label": list("aabb"), "count": ["1", "2", "2.5", None]})

    with pytest.raises(DataError, match="count must hold whole numbers"):
        validate(frame, test_size=0.5, spec=spec)
    frame.loc[2, "count"] = "3"
    assert validate(frame, test_size=0.5, spec=spec).features["count"].tolist()[:3] == [1, 2, 3]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"is empty"),
        (b"\n  \n", r"is empty"),
        ("species,island\nAdélie,Dream\n".encode("latin-1"), r"is not UTF-8 text"),
        (
            b"species,island\nAdelie,Dream\nGentoo,Biscoe,extra,fields\n",
            r"is not valid CSV: .*Expected 2 fields in line 3, saw 4",
        ),
    ],
)
def test_unreadable_files_are_refused(tmp_path, content, message):
    path = tmp_path / "data.csv"
    path.write_bytes(content)

    with pytest.raises(DataError, match=message):
        read_csv(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(DataError, match="data file not found: .*absent.csv"):
        read_csv(tmp_path / "absent.csv")


def test_expected_hash_must_match():
    digest = hashlib.sha256(SAMPLE.read_bytes()).hexdigest()

    assert read_csv(SAMPLE, expect_sha256=digest.upper()).sha256 == digest
    with pytest.raises(DataError, match=f"sha256 of .* is {digest}, expected 0{{64}}"):
        read_csv(SAMPLE, expect_sha256="0" * 64)
