"""Command line: train a model, or check training data without training.

    python -m training train --data PATH [--model-dir DIR] [--branch B] [--commit C]
                             [--data-uri URI] [--expect-sha256 HEX]
                             [--seed N] [--test-size F] [--c C]
    python -m training validate --data PATH [--expect-sha256 HEX] [--test-size F]
    python -m training --data PATH ...        (no subcommand: the same as `train`)

`validate` runs exactly the checks training runs, prints the row and class counts
and the file's sha256 as JSON, and writes nothing. The build's fetch step uses it
to stop bad data before anything is published, then hands the hash to the training
job as `--expect-sha256`, so the job trains on exactly the file that was checked.

Locations may be local paths or `gs://bucket/path`. Vertex AI mounts Cloud Storage
at `/gcs` (Cloud Storage FUSE), so `gs://bucket/path` is read and written as
`/gcs/bucket/path`; set GCS_FUSE_ROOT to use another folder as the mount, e.g. to
run the job's exact arguments on a machine without one.

Defaults taken from the environment:
    --model-dir   AIP_MODEL_DIR (Vertex AI sets it, as a gs:// URI)
    --branch      BRANCH_NAME, else "local"
    --commit      COMMIT_SHA, else "unknown"
    --data-uri    the --data argument as given
    job id        CLOUD_ML_JOB_ID (Vertex AI sets it), else null in lineage.json
    --data        training/data/penguins.csv, the sample shipped with the template

Exit status: 0 with a one-line JSON summary on stdout; 2 when the arguments or the
data are refused, with one `error: ...` line on stderr and nothing written. Any other
failure is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from training.artifacts import ModelDirExistsError, Provenance, check_writable, save
from training.data import DataError, class_counts, read_csv, validate
from training.train import TrainParams, train

SAMPLE_DATA = Path(__file__).resolve().parent / "data" / "penguins.csv"
DEFAULT_GCS_ROOT = "/gcs"
SUBCOMMANDS = ("train", "validate")
_DEFAULTS = TrainParams()
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


class UsageError(ValueError):
    """An argument or environment value the command cannot work with."""


def to_local_path(location: str, gcs_root: Path) -> Path:
    """The path to open for `location`: itself, or its place under the GCS mount."""
    match = _SCHEME.match(location)
    if match is None:
        return Path(location)
    if match.group(1) != "gs":
        raise UsageError(f"unsupported location {location!r}: use a local path or gs://")
    bucket, _, path = location[len("gs://") :].partition("/")
    if not bucket:
        raise UsageError(f"location {location!r} names no bucket")
    return gcs_root / bucket / path


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in (*SUBCOMMANDS, "-h", "--help"):
        args.insert(0, "train")
    parsed = _parser().parse_args(args)
    try:
        return _train(parsed) if parsed.command == "train" else _validate(parsed)
    except (UsageError, DataError, ModelDirExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _is_chief() -> bool:
    """Whether this replica writes the model.

    Vertex AI runs every replica of a multi-replica job with the same arguments and
    describes each in CLUSTER_SPEC; scikit-learn trains on one machine, so only the
    chief (worker pool 0) trains and writes, and the others end at once, successfully.
    """
    spec = os.environ.get("CLUSTER_SPEC")
    if not spec:
        return True
    return json.loads(spec).get("task", {}).get("type", "workerpool0") == "workerpool0"


def _train(args: argparse.Namespace) -> int:
    if not _is_chief():
        print("not the chief replica: the chief (workerpool0) trains and writes the model")
        return 0
    params = _params(seed=args.seed, test_size=args.test_size, c=args.c)
    location = args.model_dir or os.environ.get("AIP_MODEL_DIR")
    if not location:
        raise UsageError("no model folder: pass --model-dir or set AIP_MODEL_DIR")
    gcs_root = _gcs_root()
    model_dir = to_local_path(location, gcs_root)
    data_path = to_local_path(args.data, gcs_root)

    check_writable(model_dir)
    data_file = read_csv(data_path, expect_sha256=args.expect_sha256)
    result = train(data_file.frame, params)
    provenance = Provenance(
        branch=args.branch or os.environ.get("BRANCH_NAME") or "local",
        commit=args.commit or os.environ.get("COMMIT_SHA") or "unknown",
        data_uri=args.data_uri or args.data,
        data_sha256=data_file.sha256,
        job_id=os.environ.get("CLOUD_ML_JOB_ID") or None,
    )
    save(model_dir, result, provenance, staged=not model_dir.is_relative_to(gcs_root))
    print(json.dumps({"model_dir": location, "metrics": result.metrics}))
    return 0


def _validate(args: argparse.Namespace) -> int:
    params = _params(test_size=args.test_size)
    data_file = read_csv(to_local_path(args.data, _gcs_root()), expect_sha256=args.expect_sha256)
    dataset = validate(data_file.frame, test_size=params.test_size)
    summary = {
        "data": args.data,
        "sha256": data_file.sha256,
        "rows": dataset.rows,
        "rows_unlabelled": dataset.dropped_unlabelled,
        "classes": class_counts(dataset.target),
        "categories": dataset.categories,
    }
    print(json.dumps(summary))
    return 0


def _gcs_root() -> Path:
    return Path(os.environ.get("GCS_FUSE_ROOT", DEFAULT_GCS_ROOT))


def _params(**values: int | float) -> TrainParams:
    try:
        return TrainParams(**values)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    """Reports usage mistakes like every other refusal: one `error:` line, status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see --help)\n")


def _sha256(value: str) -> str:
    if not _SHA256.match(value):
        raise argparse.ArgumentTypeError(f"not a sha256 hex digest: {value!r}")
    return value.lower()


def _parser() -> argparse.ArgumentParser:
    data = _Parser(add_help=False)
    data.add_argument(
        "--data",
        default=str(SAMPLE_DATA),
        help="CSV file, local or gs:// (default: the shipped sample)",
    )
    data.add_argument(
        "--expect-sha256",
        type=_sha256,
        metavar="HEX",
        help="refuse the data unless its sha256 is this",
    )
    data.add_argument(
        "--test-size",
        type=float,
        default=_DEFAULTS.test_size,
        help="share of rows held out for the metrics (default: %(default)s)",
    )

    parser = _Parser(prog="python -m training", description="Train or validate.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    training = commands.add_parser("train", parents=[data], help="train and write a model folder")
    training.add_argument(
        "--model-dir", help="output folder, local or gs:// (default: $AIP_MODEL_DIR)"
    )
    training.add_argument("--branch", help="git branch for lineage (default: $BRANCH_NAME)")
    training.add_argument("--commit", help="git commit for lineage (default: $COMMIT_SHA)")
    training.add_argument("--data-uri", help="data URI for lineage (default: --data)")
    training.add_argument(
        "--seed",
        type=int,
        default=_DEFAULTS.seed,
        help="split and model seed (default: %(default)s)",
    )
    training.add_argument(
        "--c",
        type=float,
        default=_DEFAULTS.c,
        help="inverse regularisation strength of the logistic regression (default: %(default)s)",
    )

    commands.add_parser("validate", parents=[data], help="check the data, write nothing")
    return parser


if __name__ == "__main__":
    sys.exit(main())
