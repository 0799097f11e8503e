import copy
import zipfile

import pytest
import sklearn
import skops.io
from sklearn.preprocessing import FunctionTransformer

from api.model_store import TRUSTED_TYPES, ModelLoadError, load_model
from tests.api_model_fixture import LINEAGE, METRICS, SCHEMA, write_model_dir

pytest_plugins = ["tests.api_model_fixture"]


def _passthrough(values):
    return values


def test_loads_the_folder_a_training_run_writes(api_model_dir, penguins_model):
    model = load_model(api_model_dir)

    assert model.commit == LINEAGE["commit"]
    assert model.branch == LINEAGE["branch"]
    assert model.lineage == LINEAGE
    assert model.metrics == METRICS
    assert [feature.name for feature in model.schema.features] == [
        feature["name"] for feature in SCHEMA["features"]
    ]
    assert list(model.pipeline.classes_) == list(penguins_model.classes_)


def test_trusted_types_cover_a_real_saved_pipeline(api_model_dir):
    # What skops would refuse without being told; TRUSTED_TYPES must name all of it.
    needed = skops.io.get_untrusted_types(file=api_model_dir / "model.skops")

    assert needed, "skops now trusts everything here by default: review TRUSTED_TYPES"
    assert set(needed) <= set(TRUSTED_TYPES)


def test_refuses_a_model_holding_an_untrusted_type(tmp_path):
    folder = write_model_dir(tmp_path, FunctionTransformer(_passthrough))

    with pytest.raises(ModelLoadError, match="not trusted: .*_passthrough") as error:
        load_model(folder)
    assert "TRUSTED_TYPES in api/model_store.py" in str(error.value)


def test_refuses_a_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist; set MODEL_DIR"):
        load_model(tmp_path / "absent")


def test_names_the_files_a_folder_lacks(tmp_path, penguins_model):
    folder = write_model_dir(tmp_path, penguins_model)
    (folder / "schema.json").unlink()
    (folder / "metrics.json").unlink()

    with pytest.raises(ModelLoadError, match="lacks schema.json, metrics.json"):
        load_model(folder)


def test_refuses_a_file_that_is_not_a_skops_archive(tmp_path, penguins_model):
    folder = write_model_dir(tmp_path, penguins_model)
    (folder / "model.skops").write_bytes(b"not a zip file")

    with pytest.raises(ModelLoadError, match="model.skops is not a readable skops file"):
        load_model(folder)


def test_refuses_a_model_saved_by_another_scikit_learn(tmp_path, penguins_model):
    folder = write_model_dir(tmp_path, penguins_model)
    archive = folder / "model.skops"
    with zipfile.ZipFile(archive) as source:
        members = {name: source.read(name) for name in source.namelist()}
    # Each estimator's state records the scikit-learn version that fitted it.
    assert sklearn.__version__.encode() in members["schema.json"]
    members["schema.json"] = members["schema.json"].replace(sklearn.__version__.encode(), b"1.0.2")
    with zipfile.ZipFile(archive, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)

    with pytest.raises(ModelLoadError, match=r"another scikit-learn version .*1\.0\.2 vs"):
        load_model(folder)


def _schema_with(**changes):
    schema = copy.deepcopy(SCHEMA)
    schema.update(changes)
    return schema


def _features_with(feature_name, **changes):
    features = copy.deepcopy(SCHEMA["features"])
    for feature in features:
        if feature["name"] == feature_name:
            feature.update(changes)
    return features


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (_schema_with(schema_version=2), "(?s)not a valid feature schema.*schema_version"),
        (_schema_with(features=_features_with("year", type="date")), "not a valid feature schema"),
        (_schema_with(features=_features_with("sex", categories=[])), "not a valid feature schema"),
        (_schema_with(features=_features_with("sex", nulable=True)), "not a valid feature schema"),
        (
            _schema_with(features=[*SCHEMA["features"], SCHEMA["features"][0]]),
            "a feature name appears twice",
        ),
        (_schema_with(classes=["Adelie", "Gentoo"]), "lists classes .* but the model predicts"),
        (
            _schema_with(features=_features_with("year", name="yr")),
            "describes features .* but the model was fitted on",
        ),
    ],
)
def test_refuses_a_schema_that_does_not_fit(tmp_path, penguins_model, schema, message):
    folder = write_model_dir(tmp_path, penguins_model, schema=schema)

    with pytest.raises(ModelLoadError, match=message):
        load_model(folder)


@pytest.mark.parametrize("key", ["commit", "branch"])
def test_refuses_lineage_without_commit_or_branch(tmp_path, penguins_model, key):
    lineage = {name: value for name, value in LINEAGE.items() if name != key}
    folder = write_model_dir(tmp_path, penguins_model, lineage=lineage)

    with pytest.raises(ModelLoadError, match=f"lineage.json has no '{key}' string"):
        load_model(folder)


def test_refuses_metrics_that_are_not_json(tmp_path, penguins_model):
    folder = write_model_dir(tmp_path, penguins_model)
    (folder / "metrics.json").write_text('{"f1": NaN}')

    with pytest.raises(ModelLoadError, match="metrics.json is not valid JSON: NaN"):
        load_model(folder)
