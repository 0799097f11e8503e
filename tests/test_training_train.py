"""Training on the sample, and the model folder it produces."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from training.artifacts import (
    LINEAGE_FILE,
    METRICS_FILE,
    MODEL_FILE,
    SCHEMA_FILE,
    ModelDirExistsError,
    ModelLoadError,
    Provenance,
    load_model,
    save,
)
from training.data import read_csv
from training.features import PENGUINS
from training.pipeline import PREPROCESS
from training.train import TrainParams, TrainResult, train

SAMPLE = Path(__file__).resolve().parent.parent / "training" / "data" / "penguins.csv"
PROVENANCE = Provenance(
    branch="feature/better-bills",
    commit="0123456789abcdef0123456789abcdef01234567",
    data_uri="gs://bucket/data/penguins.csv",
    data_sha256="ab" * 32,
    job_id="1234567890",
)
EXPECTED_SCHEMA = {
    "schema_version": 1,
    "target": "species",
    "classes": ["Adelie", "Chinstrap", "Gentoo"],
    "features": [
        {"name": "bill_length_mm", "type": "number", "nullable": True},
        {"name": "bill_depth_mm", "type": "number", "nullable": True},
        {"name": "flipper_length_mm", "type": "number", "nullable": True},
        {"name": "body_mass_g", "type": "number", "nullable": True},
        {
            "name": "island",
            "type": "category",
            "categories": ["Biscoe", "Dream", "Torgersen"],
            "nullable": False,
        },
        {"name": "sex", "type": "category", "categories": ["female", "male"], "nullable": True},
    ],
}


class Untrusted(TransformerMixin, BaseEstimator):
    """Stands in for any type a model file could smuggle in."""

    def fit(self, x, y=None):
        return self

    def transform(self, x):
        return x


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return read_csv(SAMPLE).frame


@pytest.fixture(scope="module")
def result(penguins) -> TrainResult:
    return train(penguins, TrainParams())


@pytest.fixture(scope="module")
def model_dir(result, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "branch" / "commit"
    save(folder, result, PROVENANCE)
    return folder


def test_held_out_scores_are_good(result):
    metrics = result.metrics

    assert metrics["accuracy"] > 0.9
    assert metrics["f1_macro"] > 0.9
    assert 0 < metrics["log_loss"] < 0.3
    assert (metrics["n_train"], metrics["n_test"]) == (275, 69)
    # Stratified: every class is held out in proportion to its size.
    assert metrics["class_counts"]["test"] == {"Adelie": 30, "Chinstrap": 14, "Gentoo": 25}
    for label in ("Adelie", "Chinstrap", "Gentoo"):
        total = sum(metrics["class_counts"][part][label] for part in ("train", "test"))
        assert total == {"Adelie": 152, "Chinstrap": 68, "Gentoo": 124}[label]


def test_same_seed_same_model_other_seed_other_split(penguins, result):
    again = train(penguins, TrainParams())
    other = train(penguins, TrainParams(seed=7))

    assert again.metrics == result.metrics
    np.testing.assert_array_equal(again.pipeline[-1].coef_, result.pipeline[-1].coef_)
    assert other.metrics["log_loss"] != result.metrics["log_loss"]
    # The schema is the API's contract; it must not move with the split.
    assert other.schema == result.schema


def test_schema_describes_features_classes_and_categories(result):
    assert result.schema == EXPECTED_SCHEMA


def test_nullable_means_the_pipeline_imputes(result):
    transformers = result.pipeline.named_steps[PREPROCESS].named_transformers_
    for feature in PENGUINS.features:
        assert ("impute" in transformers[feature.name].named_steps) == feature.nullable


def test_parameters_reach_the_classifier(penguins):
    trained = train(penguins, TrainParams(seed=3, test_size=0.3, c=0.05, max_iter=500))
    classifier = trained.pipeline[-1]

    assert (classifier.C, classifier.max_iter, classifier.random_state) == (0.05, 500, 3)
    assert trained.metrics["n_test"] == 104


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"test_size": 0.0}, "test size must be between 0 and 1"),
        ({"test_size": 1.0}, "test size must be between 0 and 1"),
        ({"c": 0.0}, "C must be positive"),
        ({"c": float("nan")}, "C must be positive"),
        ({"seed": -1}, "seed must be between 0 and"),
        ({"max_iter": 0}, "max_iter must be at least 1"),
    ],
)
def test_out_of_range_parameters_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        TrainParams(**values)


def test_model_folder_holds_the_four_files(model_dir, result):
    assert sorted(path.name for path in model_dir.iterdir()) == sorted(
        [MODEL_FILE, METRICS_FILE, SCHEMA_FILE, LINEAGE_FILE]
    )
    assert json.loads((model_dir / SCHEMA_FILE).read_text()) == EXPECTED_SCHEMA
    assert json.loads((model_dir / METRICS_FILE).read_text()) == result.metrics
    # No staging folder is left beside it.
    assert [path.name for path in model_dir.parent.iterdir()] == [model_dir.name]


def test_lineage_records_where_the_model_came_from(model_dir):
    lineage = json.loads((model_dir / LINEAGE_FILE).read_text())

    assert {key: lineage[key] for key in ("branch", "commit", "data_uri", "data_sha256")} == {
        "branch": PROVENANCE.branch,
        "commit": PROVENANCE.commit,
        "data_uri": PROVENANCE.data_uri,
        "data_sha256": PROVENANCE.data_sha256,
    }
    assert (lineage["rows"], lineage["rows_unlabelled"]) == (344, 0)
    assert lineage["job_id"] == "1234567890"
    assert lineage["model_file"] == MODEL_FILE
    params = lineage["params"]
    assert (params["seed"], params["test_size"], params["c"], params["max_iter"]) == (
        42,
        0.2,
        1.0,
        1000,
    )
    assert params["classifier"]["C"] == 1.0
    assert params["classifier"]["solver"] == "lbfgs"
    assert set(lineage["library_versions"]) == {
        "python",
        "scikit-learn",
        "numpy",
        "pandas",
        "skops",
    }
    trained_at = datetime.fromisoformat(lineage["trained_at"])
    assert trained_at.utcoffset() == timedelta(0)
    assert datetime.now(UTC) - trained_at < timedelta(minutes=10)


def test_model_round_trips_and_predicts(model_dir, result, penguins):
    pipeline, schema, lineage = load_model(model_dir)

    assert schema == EXPECTED_SCHEMA
    assert lineage["commit"] == PROVENANCE.commit
    rows = pd.read_csv(SAMPLE)
    np.testing.assert_array_equal(pipeline.predict(rows), result.pipeline.predict(rows))
    np.testing.assert_allclose(pipeline.predict_proba(rows), result.pipeline.predict_proba(rows))


def test_loaded_model_imputes_nullable_features_and_refuses_unknown_categories(model_dir):
    pipeline = load_model(model_dir).pipeline
    gentoo = {
        "bill_length_mm": 47.5,
        "bill_depth_mm": 15.0,
        "flipper_length_mm": 217.0,
        "body_mass_g": 5200.0,
        "island": "Biscoe",
        "sex": "female",
    }
    unmeasured = {
        **dict.fromkeys(("bill_length_mm", "bill_depth_mm", "flipper_length_mm"), np.nan),
        "body_mass_g": np.nan,
        "island": "Biscoe",
        "sex": np.nan,
    }

    predicted = pipeline.predict(pd.DataFrame([gentoo, unmeasured]))

    assert predicted[0] == "Gentoo"
    assert predicted[1] in EXPECTED_SCHEMA["classes"]
    with pytest.raises(ValueError, match="unknown categories"):
        pipeline.predict(pd.DataFrame([{**gentoo, "island": "Atlantis"}]))


def test_existing_model_folder_is_never_overwritten(result, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.skops").write_text("an earlier run")

    with pytest.raises(ModelDirExistsError, match="not empty; model folders are never"):
        save(folder, result, PROVENANCE)

    assert [path.name for path in folder.iterdir()] == ["model.skops"]
    assert (folder / "model.skops").read_text() == "an earlier run"
    assert [path.name for path in tmp_path.iterdir()] == ["model"]


def test_an_empty_existing_folder_is_filled(result, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()

    save(folder, result, PROVENANCE)

    assert load_model(folder).schema == EXPECTED_SCHEMA


def test_unstaged_save_writes_in_place(result, tmp_path):
    folder = tmp_path / "bucket" / "models" / "run"

    save(folder, result, PROVENANCE, staged=False)

    assert load_model(folder).lineage["branch"] == PROVENANCE.branch
    assert [path.name for path in folder.parent.iterdir()] == ["run"]


def test_a_pipeline_load_model_would_refuse_is_not_saved(result, tmp_path):
    sneaky = dataclasses.replace(
        result, pipeline=Pipeline([("untrusted", Untrusted()), *result.pipeline.steps])
    )

    with pytest.raises(TypeError, match=r"test_training_train\.Untrusted"):
        save(tmp_path / "model", sneaky, PROVENANCE)

    assert list(tmp_path.iterdir()) == []


def test_model_file_with_untrusted_types_is_refused(model_dir, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for name in (SCHEMA_FILE, LINEAGE_FILE, METRICS_FILE):
        (folder / name).write_bytes((model_dir / name).read_bytes())
    sio.dump(
        Pipeline([("untrusted", Untrusted()), ("classifier", LogisticRegression())]),
        folder / MODEL_FILE,
    )

    with pytest.raises(
        ModelLoadError, match=r"outside the trusted list.*test_training_train\.Untrusted"
    ):
        load_model(folder)


@pytest.mark.parametrize("missing", [MODEL_FILE, SCHEMA_FILE, LINEAGE_FILE])
def test_incomplete_model_folder_is_refused(model_dir, tmp_path, missing):
    folder = tmp_path / "model"
    folder.mkdir()
    for path in model_dir.iterdir():
        if path.name != missing:
            (folder / path.name).write_bytes(path.read_bytes())

    with pytest.raises(ModelLoadError, match=f"{missing} is missing"):
        load_model(folder)


def test_schema_of_another_version_is_refused(model_dir, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for path in model_dir.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / SCHEMA_FILE).write_text(json.dumps({**EXPECTED_SCHEMA, "schema_version": 2}))

    with pytest.raises(ModelLoadError, match="schema_version 2, this code reads 1"):
        load_model(folder)
