"""The NumPy fast path scores exactly as the pipeline it stands in for, or is not used.

The pipeline is the one training really builds and fits on the shipped data; the
API's own fixture pipeline (several columns per transformer) is one the fast path
does not implement, so it shows the fallback.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import MinMaxScaler

from api.fast_path import FastPath, NotCompilable, agrees, probe_instances
from api.feature_schema import FeatureSchema
from api.predictor import Predictor
from tests.api_model_fixture import DATA, SCHEMA
from training.data import read_csv
from training.train import TrainParams, train

pytest_plugins = ["tests.api_model_fixture"]


@pytest.fixture(scope="module")
def trained():
    result = train(read_csv(DATA).frame, TrainParams())
    return result.pipeline, FeatureSchema.model_validate(result.schema).features


def rows_of_the_data(features) -> list[dict]:
    frame = pd.read_csv(DATA)
    rows = []
    for record in frame.to_dict("records"):
        row = {}
        for feature in features:
            value = record[feature.name]
            row[feature.name] = None if pd.isna(value) else value
        if row["island"] is not None:
            rows.append(row)
    return rows


def test_the_trained_pipeline_is_scored_by_the_fast_path(trained):
    pipeline, features = trained
    predictor = Predictor(pipeline, features)
    assert predictor.fast_path_refused is None
    assert predictor.scoring.startswith("NumPy fast path")


def test_it_equals_the_pipeline_on_every_row_of_the_data_and_the_probes(trained):
    pipeline, features = trained
    predictor = Predictor(pipeline, features)
    for rows in (rows_of_the_data(features), probe_instances(features)):
        fast, slow = predictor.probabilities(rows), predictor.pipeline_probabilities(rows)
        assert fast.shape == slow.shape == (len(rows), 3)
        assert np.max(np.abs(fast - slow)) < 1e-12


def test_the_probes_cover_every_category_and_every_missing_value(trained):
    _, features = trained
    probes = probe_instances(features)
    for feature in features:
        values = {row[feature.name] for row in probes}
        if feature.nullable:
            assert None in values
        if feature.type == "category":
            assert set(feature.categories) <= values


def test_a_step_it_does_not_implement_leaves_the_pipeline_in_charge(trained):
    pipeline, features = trained
    changed = pipeline.named_steps["preprocess"].named_transformers_["body_mass_g"]
    original = changed.steps[-1]
    changed.steps[-1] = ("scale", MinMaxScaler().fit([[2000.0], [6000.0]]))
    try:
        with pytest.raises(NotCompilable, match="MinMaxScaler"):
            FastPath(pipeline, features)
        predictor = Predictor(pipeline, features)
        assert "MinMaxScaler" in predictor.fast_path_refused
        assert predictor.scoring == "scikit-learn pipeline"
    finally:
        changed.steps[-1] = original


def test_a_fast_path_that_disagrees_with_the_pipeline_is_refused(trained):
    pipeline, features = trained
    fast = FastPath(pipeline, features)
    scaler = pipeline.named_steps["preprocess"].named_transformers_["bill_depth_mm"][-1]
    scaler.mean_ = scaler.mean_ + 0.5  # the pipeline changes; the compiled copy does not
    try:
        reason = agrees(fast, Predictor(pipeline, features).pipeline_probabilities,
                        probe_instances(features))  # fmt: skip
        assert reason is not None and "differs from the pipeline" in reason
    finally:
        scaler.mean_ = scaler.mean_ - 0.5


def test_the_api_fixture_pipeline_falls_back_and_says_why(penguins_model):
    features = FeatureSchema.model_validate(SCHEMA).features
    predictor = Predictor(penguins_model, features)
    assert "does not take one schema feature" in predictor.fast_path_refused


def test_an_unknown_category_is_refused_as_the_pipeline_refuses_it(trained):
    pipeline, features = trained
    row = probe_instances(features)[0] | {"island": "Atlantis"}
    with pytest.raises(ValueError, match="Atlantis"):
        FastPath(pipeline, features).probabilities([row])
