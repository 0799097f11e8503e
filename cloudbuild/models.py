"""The Cloud Storage side of training and serving: data in, model folders, LATEST pointers.

    python -m cloudbuild fetch-data [--uri URI] --dest PATH [--env-out PATH]
    python -m cloudbuild promote-model --branch B --sha S --job JOB
    python -m cloudbuild resolve-model --branch B --sha S --dest DIR [--env-out PATH]

The bucket's layout, with every name from cloudbuild.names:

    models/<slug>/<sha>/model/   one commit's model, written once by its training job
    models/<slug>/LATEST         JSON pointer to the branch's newest promoted model folder

A folder is never changed after its job; "the branch's model" moves only by rewriting
LATEST, and only once the folder holds every file the API needs. A branch with no model
of its own serves the production branch's, and resolve-model says so.

Objects are read and written through cloudbuild/bucket.py.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.api_core.exceptions import NotFound
from google.cloud import storage

from cloudbuild import env
from cloudbuild.bucket import NotAnObject, read_object, split_uri, storage_client, write_object
from cloudbuild.cli_common import PROG, CommandError, add_config_argument, checked, print_json
from cloudbuild.config import ROOT, Config, load
from cloudbuild.names import Names, check_branch, check_sha, names

# What training/artifacts.py writes; tests/test_models.py keeps the two lists equal.
MODEL_FILES = ("model.skops", "metrics.json", "schema.json", "lineage.json")
JOB_NAME = re.compile(r"projects/[^/]+/locations/[^/]+/customJobs/[0-9]+")
CHUNK = 1 << 20


class ModelStoreError(RuntimeError):
    """An object a step needs is missing, or a model folder is incomplete."""


def base_output_dir(names: Names) -> str:
    """The training job's base output directory: the commit's model_uri minus its final '/'."""
    return names.model_uri.removesuffix("/")


def model_dir_uri(names: Names) -> str:
    """The commit's model folder: Vertex AI gives the job AIP_MODEL_DIR = <base>/model/."""
    return f"{base_output_dir(names)}/model/"


def fetch_data(uri: str, dest: Path) -> str:
    """Download the data object `uri` to `dest` and return the file's sha256 (hex)."""
    bucket, name = split_uri(uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        storage_client().bucket(bucket).blob(name).download_to_filename(dest)
    except NotFound:
        raise ModelStoreError(f"the training data {uri} does not exist") from None
    digest = hashlib.sha256()
    with dest.open("rb") as data:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def promote(config: Config, names: Names, job_name: str) -> dict[str, Any]:
    """Point the branch's LATEST at this commit's model folder, if it is complete."""
    folder = model_dir_uri(names)
    client = storage_client(config.gcp_project_id)
    _model_objects(client, folder)  # refuses an incomplete folder
    pointer = {
        "model_uri": folder,
        "branch": names.branch,
        "slug": names.slug,
        "commit": names.sha,
        "job": job_name,
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_object(client, names.latest_model_pointer, pointer)
    return pointer


def resolve(config: Config, names: Names) -> dict[str, Any]:
    """The model this branch serves: its own LATEST, else the production branch's.

    The result is the pointer plus `pointer` (where it was read), `fell_back` and a
    `message` saying which model was taken and why.
    """
    client = storage_client(config.gcp_project_id)
    production = config.production_branch
    pointer = _read_pointer(client, names.latest_model_pointer)
    if pointer is not None:
        found, fell_back = names.latest_model_pointer, False
        reason = f"branch {names.branch!r} has a promoted model of its own"
    elif names.is_production:
        raise ModelStoreError(
            f"the production branch {production!r} has no model yet "
            f"({names.latest_model_pointer} does not exist): run its training pipeline first"
        )
    else:
        pointer = _read_pointer(client, names.production_latest_model_pointer)
        if pointer is None:
            raise ModelStoreError(
                f"no model to serve: branch {names.branch!r} has none "
                f"({names.latest_model_pointer} does not exist) and neither has the "
                f"production branch {production!r} ({names.production_latest_model_pointer})"
            )
        found, fell_back = names.production_latest_model_pointer, True
        reason = (
            f"branch {names.branch!r} has no model of its own yet, so it serves the "
            f"production branch {production!r}'s"
        )
    model_uri = pointer.get("model_uri", "")
    # The folder is packaged into the API image: only this project's model folders qualify.
    if not isinstance(model_uri, str) or not model_uri.startswith(f"gs://{config.bucket}/models/"):
        raise ModelStoreError(f"{found} points outside gs://{config.bucket}/models/: {model_uri!r}")
    message = f"{reason}: {model_uri} (commit {pointer.get('commit')}, job {pointer.get('job')})"
    return {**pointer, "pointer": found, "fell_back": fell_back, "message": message}


def download_model(model_folder_uri: str, dest: Path) -> list[Path]:
    """Download every object of a complete model folder into the empty folder `dest`."""
    folder = model_folder_uri.removesuffix("/") + "/"
    objects = _model_objects(storage_client(), folder)
    if dest.exists() and any(dest.iterdir()):
        raise ModelStoreError(f"{dest} is not empty; a model is only ever unpacked afresh")
    _, prefix = split_uri(folder)
    root = dest.resolve()
    written = []
    for blob in objects:
        target = (root / blob.name.removeprefix(prefix)).resolve()
        # Object names are the bucket's, not ours: none may land outside `dest`.
        if not target.is_relative_to(root):
            raise ModelStoreError(f"{folder} holds {blob.name!r}, which leaves {dest}")
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(target)
        written.append(target)
    return sorted(written)


def _model_objects(client: storage.Client, folder: str) -> list[storage.Blob]:
    """Every object under `folder`, which must hold all of MODEL_FILES."""
    bucket, prefix = split_uri(folder)
    objects = list(client.list_blobs(bucket, prefix=prefix))
    present = {blob.name.removeprefix(prefix) for blob in objects}
    missing = [file for file in MODEL_FILES if file not in present]
    if missing:
        raise ModelStoreError(
            f"the model folder {folder} is incomplete: {', '.join(missing)} missing"
            + ("" if objects else " (the folder is empty)")
        )
    return objects


def _read_pointer(client: storage.Client, uri: str) -> dict[str, Any] | None:
    try:
        return read_object(client, uri)[0]
    except NotAnObject:
        raise ModelStoreError(f"{uri} is not a model pointer (a JSON object)") from None


def _write_env(path: Path, values: dict[str, str]) -> None:
    """KEY=value lines a later build step sources; every value shell-quoted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(env.render(values))


def _job_name(text: str) -> str:
    if not JOB_NAME.fullmatch(text):
        raise ValueError(f"{text!r} is not a custom job's name (projects/.../customJobs/ID)")
    return text


def _names(args: argparse.Namespace) -> tuple[Config, Names]:
    config = load(args.config)
    try:
        return config, names(config, args.branch, args.sha)
    except ValueError as error:
        raise CommandError(str(error)) from None


def _add_branch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--branch", required=True, type=checked(check_branch), help="the branch, as pushed"
    )
    parser.add_argument(
        "--sha", required=True, type=checked(check_sha), help="the full 40-character commit id"
    )
    add_config_argument(parser)


def _failed(error: ModelStoreError) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 1


# A branch trains on other data by committing this file (under training/, so the
# push fires the training pipeline); a manual run's _TRAINING_DATA_URI wins over it.
BRANCH_DATA_FILE = ROOT / "training" / "data-uri.txt"


def branch_data_uri(path: Path) -> str:
    """The branch's own data location: the file's one non-comment line, or ""."""
    if not path.exists():
        return ""
    lines = [line.strip() for line in path.read_text().splitlines()]
    found = [line for line in lines if line and not line.startswith("#")]
    if len(found) != 1:
        raise CommandError(f"{path.name}: expected one gs:// URI, found {len(found)} lines")
    return found[0]


def fetch_data_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} fetch-data",
        description="Download the training data and print its sha256.",
    )
    parser.add_argument(
        "--uri",
        default="",
        metavar="URI",
        help="gs:// object (default, also when empty: training.data_uri in project.yaml)",
    )
    parser.add_argument("--dest", required=True, type=Path, metavar="PATH", help="local file")
    parser.add_argument(
        "--env-out", type=Path, metavar="PATH", help="also write DATA_URI and DATA_SHA256 here"
    )
    add_config_argument(parser)
    args = parser.parse_args(argv)

    uri = args.uri or branch_data_uri(BRANCH_DATA_FILE) or load(args.config).training.data_uri
    try:
        split_uri(uri)
    except ValueError as error:
        raise CommandError(str(error)) from None
    try:
        sha256 = fetch_data(uri, args.dest)
    except ModelStoreError as error:
        return _failed(error)
    if args.env_out:
        _write_env(args.env_out, {"DATA_URI": uri, "DATA_SHA256": sha256})
    print(sha256)
    return 0


def promote_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} promote-model",
        description="Point the branch's LATEST at this commit's model, once it is complete.",
    )
    _add_branch_arguments(parser)
    parser.add_argument(
        "--job", required=True, type=checked(_job_name), help="the training job's name"
    )
    args = parser.parse_args(argv)

    config, run_names = _names(args)
    try:
        pointer = promote(config, run_names, args.job)
    except ModelStoreError as error:
        return _failed(error)
    print(f"promoted {pointer['model_uri']} as {run_names.latest_model_pointer}")
    print_json(pointer)
    return 0


def resolve_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} resolve-model",
        description="Download the model this branch serves: its own, else production's.",
    )
    _add_branch_arguments(parser)
    parser.add_argument(
        "--dest", required=True, type=Path, metavar="DIR", help="empty folder to download into"
    )
    parser.add_argument(
        "--env-out",
        type=Path,
        metavar="PATH",
        help="also write MODEL_URI, MODEL_BRANCH, MODEL_COMMIT and MODEL_FELL_BACK here",
    )
    args = parser.parse_args(argv)

    config, run_names = _names(args)
    try:
        model = resolve(config, run_names)
        download_model(model["model_uri"], args.dest)
    except ModelStoreError as error:
        return _failed(error)
    if args.env_out:
        values = {
            "MODEL_URI": model["model_uri"],
            "MODEL_BRANCH": str(model.get("branch", "")),
            "MODEL_COMMIT": str(model.get("commit", "")),
            "MODEL_FELL_BACK": "true" if model["fell_back"] else "false",
        }
        _write_env(args.env_out, values)
    print(model["message"])
    print(f"downloaded into {args.dest}")
    return 0
