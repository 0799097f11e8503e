"""Loads the model folder baked into the image, and refuses one it cannot trust.

The folder is what a training run wrote: `model.skops` (a scikit-learn pipeline saved
with skops.io), `schema.json`, `lineage.json` and `metrics.json`. Every check here
runs once at start-up, so a bad folder stops the server with a message saying what
is wrong instead of answering requests with a model nobody can vouch for.
"""

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skops.io
from pydantic import ValidationError
from sklearn.exceptions import InconsistentVersionWarning

from api.feature_schema import FeatureSchema

MODEL_FILE = "model.skops"
SCHEMA_FILE = "schema.json"
LINEAGE_FILE = "lineage.json"
METRICS_FILE = "metrics.json"

# skops.io builds only the types it is told to trust. It already trusts scikit-learn's
# estimators and plain Python and NumPy containers; these are the types our pipelines
# need on top of that, found with `skops.io.get_untrusted_types` on a real saved model
# (tests/test_api_model_store.py keeps that true). Anything else, such as a function
# or a class from a custom module, is refused: loading it could run its code. Add a
# name here only after reading what the type can do when it is built.
TRUSTED_TYPES: tuple[str, ...] = ("numpy.dtype",)


class ModelLoadError(RuntimeError):
    """The model folder is missing, incomplete, or holds something we will not load."""


@dataclass(frozen=True)
class LoadedModel:
    pipeline: Any
    schema: FeatureSchema
    lineage: dict[str, Any]
    metrics: dict[str, Any]
    commit: str
    branch: str


def load_model(model_dir: Path) -> LoadedModel:
    """Read and check the model folder at `model_dir`."""
    if not model_dir.is_dir():
        raise ModelLoadError(
            f"model folder {model_dir} does not exist; set MODEL_DIR to a folder written "
            "by a training run"
        )
    files = (MODEL_FILE, SCHEMA_FILE, LINEAGE_FILE, METRICS_FILE)
    missing = [name for name in files if not (model_dir / name).is_file()]
    if missing:
        raise ModelLoadError(f"model folder {model_dir} lacks {', '.join(missing)}")

    schema = _read_schema(model_dir / SCHEMA_FILE)
    lineage = _read_json_object(model_dir / LINEAGE_FILE)
    metrics = _read_json_object(model_dir / METRICS_FILE)
    for key in ("commit", "branch"):
        if not isinstance(lineage.get(key), str) or not lineage[key]:
            raise ModelLoadError(f"{model_dir / LINEAGE_FILE} has no {key!r} string")

    pipeline = _read_pipeline(model_dir / MODEL_FILE)
    _check_matches_schema(pipeline, schema)
    return LoadedModel(
        pipeline=pipeline,
        schema=schema,
        lineage=lineage,
        metrics=metrics,
        commit=lineage["commit"],
        branch=lineage["branch"],
    )


def _read_pipeline(path: Path) -> Any:
    try:
        untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable skops file: {exc}") from exc
    if untrusted:
        raise ModelLoadError(
            f"{path} holds types that are not trusted: {', '.join(untrusted)}. "
            "Loading them could run arbitrary code; if the training pipeline really "
            "needs them, review them and add them to TRUSTED_TYPES in api/model_store.py"
        )
    # A model pickled by one scikit-learn and run by another can give wrong answers
    # without failing, so a version mismatch stops start-up rather than warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        try:
            return skops.io.load(path, trusted=list(TRUSTED_TYPES))
        except InconsistentVersionWarning as exc:
            raise ModelLoadError(
                f"{path} was saved by another scikit-learn version than this image has "
                f"({exc.original_sklearn_version} vs {exc.current_sklearn_version}); "
                "build the image from the same lock file as the training image"
            ) from exc
        except Exception as exc:
            raise ModelLoadError(f"{path} could not be loaded: {exc}") from exc


def _check_matches_schema(pipeline: Any, schema: FeatureSchema) -> None:
    """Refuse a schema.json that does not describe the pipeline beside it."""
    if not hasattr(pipeline, "predict_proba") or not hasattr(pipeline, "classes_"):
        raise ModelLoadError(f"{MODEL_FILE} is not a fitted classifier with predict_proba")
    classes = {str(label) for label in pipeline.classes_}
    if classes != set(schema.classes):
        raise ModelLoadError(
            f"{SCHEMA_FILE} lists classes {sorted(schema.classes)} but the model predicts "
            f"{sorted(classes)}"
        )
    fitted_on = getattr(pipeline, "feature_names_in_", None)
    if fitted_on is None:
        raise ModelLoadError(f"{MODEL_FILE} was not fitted on a DataFrame with named columns")
    names = {feature.name for feature in schema.features}
    if set(fitted_on) != names:
        raise ModelLoadError(
            f"{SCHEMA_FILE} describes features {sorted(names)} but the model was fitted on "
            f"{sorted(fitted_on)}"
        )


def _read_schema(path: Path) -> FeatureSchema:
    try:
        return FeatureSchema.model_validate(_read_json_object(path))
    except ValidationError as exc:
        raise ModelLoadError(f"{path} is not a valid feature schema: {exc}") from exc


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        # Python's json accepts NaN and Infinity, which are not JSON: a file holding
        # them would be served back by /lineage as a body no client can parse.
        value = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except ValueError as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
