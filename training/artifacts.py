"""The model folder a training run leaves behind, and how it is read back.

    model.skops    the fitted scikit-learn Pipeline
    metrics.json   scores on the held-out split
    schema.json    features, types, categories and classes: the API's request contract
    lineage.json   branch, commit, data URI and hash, parameters, library versions, job

The model is stored with `skops.io`, not pickle or joblib: unpickling runs whatever
code the file names, so anyone able to write to the model bucket could run code
inside the API. skops rebuilds only types on an allow-list and refuses the file
otherwise; any reader of these folders must trust no more than `TRUSTED_TYPES`.

Folders are written once and never overwritten. `load_model` depends only on this
module, `training.features` and skops, so a reader needs no training code.
"""

from __future__ import annotations

import json
import platform
import shutil
import uuid
import zipfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import skops.io as sio
from sklearn.pipeline import Pipeline
from skops.io.exceptions import UntrustedTypesFoundException

from training.features import SCHEMA_VERSION

if TYPE_CHECKING:
    from training.train import TrainResult

MODEL_FILE = "model.skops"
METRICS_FILE = "metrics.json"
SCHEMA_FILE = "schema.json"
LINEAGE_FILE = "lineage.json"

# Types the pipeline needs beyond those skops trusts by default (scikit-learn
# estimators, numpy arrays, Python builtins). `save` refuses a pipeline that needs
# anything else, so a new type is reviewed and added here on purpose rather than
# discovered when the API fails to start; `load_model` refuses files that hold
# anything else.
TRUSTED_TYPES: tuple[str, ...] = ("numpy.dtype",)

LIBRARIES = ("scikit-learn", "numpy", "pandas", "skops")


class ModelDirExistsError(FileExistsError):
    """The model folder already holds files; folders are never overwritten."""


class ModelLoadError(ValueError):
    """A model folder is incomplete, or its model file is not one we trust."""


@dataclass(frozen=True)
class Provenance:
    """Where a run came from: what the lineage records beyond the training result."""

    branch: str
    commit: str
    data_uri: str
    data_sha256: str
    job_id: str | None


class LoadedModel(NamedTuple):
    pipeline: Pipeline
    schema: dict[str, Any]
    lineage: dict[str, Any]


def check_writable(model_dir: Path) -> None:
    """Raise `ModelDirExistsError` unless `model_dir` is absent or an empty folder.

    Called before training too, so a run that would be refused at the end does not
    spend its compute first.
    """
    if model_dir.is_dir():
        if any(model_dir.iterdir()):
            raise ModelDirExistsError(
                f"model folder {model_dir} is not empty; model folders are never overwritten"
            )
    elif model_dir.exists():
        raise ModelDirExistsError(f"model folder {model_dir} exists and is not a folder")


def save(
    model_dir: Path, result: TrainResult, provenance: Provenance, *, staged: bool = True
) -> None:
    """Write the four files of a successful run into `model_dir`.

    `staged=True` writes into a hidden sibling folder and renames it into place, so
    readers see either no folder or a complete one. Pass `staged=False` on the
    Cloud Storage FUSE mount, where renaming a folder copies each object and is
    neither atomic nor always allowed; there the files are written directly and
    `lineage.json` last, so a folder without it is an interrupted run.
    """
    files = {
        MODEL_FILE: _dump(result.pipeline),
        SCHEMA_FILE: _json(result.schema),
        METRICS_FILE: _json(result.metrics),
        LINEAGE_FILE: _json(_lineage(result, provenance)),
    }
    check_writable(model_dir)
    if staged:
        _write_staged(model_dir, files)
    else:
        model_dir.mkdir(parents=True, exist_ok=True)
        _write_files(model_dir, files)


def load_model(model_dir: Path) -> LoadedModel:
    """Read a model folder written by `save`, trusting only `TRUSTED_TYPES`."""
    schema = _read_json(model_dir / SCHEMA_FILE)
    lineage = _read_json(model_dir / LINEAGE_FILE)
    if schema.get("schema_version") != SCHEMA_VERSION:
        raise ModelLoadError(
            f"{model_dir / SCHEMA_FILE} has schema_version {schema.get('schema_version')!r}, "
            f"this code reads {SCHEMA_VERSION}"
        )
    path = model_dir / MODEL_FILE
    try:
        pipeline = sio.load(path, trusted=list(TRUSTED_TYPES))
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing") from None
    except zipfile.BadZipFile:
        raise ModelLoadError(f"{path} is not a skops file") from None
    except UntrustedTypesFoundException:
        untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
        raise ModelLoadError(
            f"{path} holds types outside the trusted list, refusing to load it: "
            f"{', '.join(untrusted)}"
        ) from None
    if not isinstance(pipeline, Pipeline):
        raise ModelLoadError(f"{path} holds a {type(pipeline).__name__}, not a Pipeline")
    classes = [str(label) for label in pipeline.classes_]
    if classes != schema.get("classes"):
        raise ModelLoadError(
            f"{path} predicts classes {classes} but {SCHEMA_FILE} lists {schema.get('classes')}"
        )
    return LoadedModel(pipeline=pipeline, schema=schema, lineage=lineage)


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), **{name: version(name) for name in LIBRARIES}}


def _lineage(result: TrainResult, provenance: Provenance) -> dict[str, Any]:
    return {
        "branch": provenance.branch,
        "commit": provenance.commit,
        "data_uri": provenance.data_uri,
        "data_sha256": provenance.data_sha256,
        "rows": result.rows,
        "rows_unlabelled": result.rows_unlabelled,
        "params": {
            **asdict(result.params),
            # Every classifier setting, defaults included: a default that changes
            # between scikit-learn releases would otherwise go unrecorded.
            "classifier": result.pipeline[-1].get_params(),
        },
        "library_versions": library_versions(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "job_id": provenance.job_id,
        "model_file": MODEL_FILE,
    }


def _dump(pipeline: Pipeline) -> bytes:
    # skops stores the object tree as verbose JSON; deflate shrinks it about tenfold.
    data = sio.dumps(pipeline, compression=zipfile.ZIP_DEFLATED)
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:
        raise TypeError(
            f"the pipeline holds types load_model would refuse: {', '.join(untrusted)}; "
            "review them and add them to TRUSTED_TYPES in training/artifacts.py"
        )
    return data


def _json(document: dict[str, Any]) -> bytes:
    # NaN and Infinity are Python's extensions, not JSON; readers may refuse them.
    return (json.dumps(document, indent=2, allow_nan=False) + "\n").encode()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object")
    return document


def _write_staged(model_dir: Path, files: dict[str, bytes]) -> None:
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = model_dir.parent / f".{model_dir.name}.partial-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        _write_files(staging, files)
        try:
            # rename(2) replaces an empty folder and fails on a non-empty one, so a
            # run that filled the folder after `check_writable` is still not clobbered.
            staging.rename(model_dir)
        except OSError:
            check_writable(model_dir)
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        # "x" refuses to replace a file another writer created in the meantime.
        with (folder / name).open("xb") as handle:
            handle.write(content)
