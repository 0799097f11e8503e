"""`python -m training`: locations, environment defaults, exit codes and refusals."""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from training.__main__ import UsageError, main, to_local_path
from training.artifacts import LINEAGE_FILE, load_model

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "training" / "data" / "penguins.csv"
SAMPLE_SHA256 = hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
ENVIRONMENT = (
    "AIP_MODEL_DIR",
    "BRANCH_NAME",
    "COMMIT_SHA",
    "CLOUD_ML_JOB_ID",
    "GCS_FUSE_ROOT",
)
BAD_DATA = {
    "no rows": "species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex\n",
    "missing column": "species,island\nAdelie,Dream\nGentoo,Biscoe\n",
    "text in numbers": (
        "species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex\n"
        + "Adelie,Dream,long,18.7,181,3750,male\n" * 4
        + "Gentoo,Biscoe,46.1,13.2,211,4500,female\n" * 4
    ),
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Runs on a build or Vertex AI machine set these; tests start without them."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code: int, err: str, message: str) -> None:
    assert code == 2
    assert err.startswith("error: ")
    assert message in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("gs://bucket/data/penguins.csv", "/gcs/bucket/data/penguins.csv"),
        ("gs://bucket/models/main/abc/model/", "/gcs/bucket/models/main/abc/model"),
        ("gs://bucket", "/gcs/bucket"),
        ("training/data/penguins.csv", "training/data/penguins.csv"),
        ("/abs/path", "/abs/path"),
    ],
)
def test_gs_locations_map_to_the_fuse_mount(location, expected):
    assert to_local_path(location, Path("/gcs")) == Path(expected)


@pytest.mark.parametrize(
    ("location", "message"),
    [("gs:///data.csv", "names no bucket"), ("s3://bucket/data.csv", "unsupported location")],
)
def test_other_locations_are_refused(location, message):
    with pytest.raises(UsageError, match=message):
        to_local_path(location, Path("/gcs"))


def test_train_writes_a_model_and_prints_a_summary(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("BRANCH_NAME", "feature/x")
    monkeypatch.setenv("COMMIT_SHA", "abc123")
    model_dir = tmp_path / "model"

    code, out, err = run(capsys, "train", "--data", str(SAMPLE), "--model-dir", str(model_dir))

    assert (code, err) == (0, "")
    summary = json.loads(out)
    assert summary["model_dir"] == str(model_dir)
    assert summary["metrics"]["accuracy"] > 0.9
    lineage = load_model(model_dir).lineage
    assert (lineage["branch"], lineage["commit"]) == ("feature/x", "abc123")
    assert (lineage["data_uri"], lineage["data_sha256"]) == (str(SAMPLE), SAMPLE_SHA256)
    assert lineage["job_id"] is None


def test_arguments_override_the_environment(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("BRANCH_NAME", "from-env")
    monkeypatch.setenv("CLOUD_ML_JOB_ID", "987")
    model_dir = tmp_path / "model"

    code, _, _ = run(
        capsys,
        *("train", "--data", str(SAMPLE), "--model-dir", str(model_dir)),
        *("--branch", "from-arg", "--data-uri", "gs://b/penguins.csv"),
        *("--seed", "7", "--test-size", "0.25", "--c", "0.5"),
    )

    assert code == 0
    lineage = load_model(model_dir).lineage
    assert (lineage["branch"], lineage["commit"], lineage["job_id"]) == (
        "from-arg",
        "unknown",
        "987",
    )
    assert lineage["data_uri"] == "gs://b/penguins.csv"
    assert {key: lineage["params"][key] for key in ("seed", "test_size", "c")} == {
        "seed": 7,
        "test_size": 0.25,
        "c": 0.5,
    }


def test_vertex_ai_run_reads_and_writes_through_the_mount(capsys, monkeypatch, tmp_path):
    """A job's arguments as Vertex AI gives them: gs:// data and AIP_MODEL_DIR.

    Folder renames fail here, as they can on the real mount, so the model must be
    written in place.
    """
    mount = tmp_path / "gcs"
    data = mount / "bucket" / "data" / "penguins.csv"
    data.parent.mkdir(parents=True)
    shutil.copyfile(SAMPLE, data)
    monkeypatch.setenv("GCS_FUSE_ROOT", str(mount))
    monkeypatch.setenv("AIP_MODEL_DIR", "gs://bucket/models/main/abc/model/")

    def refuse_rename(self, target):
        raise OSError(errno.ENOTSUP, "Cloud Storage FUSE does not rename folders")

    monkeypatch.setattr(Path, "rename", refuse_rename)

    code, out, _ = run(
        capsys, "train", "--data", "gs://bucket/data/penguins.csv", "--expect-sha256", SAMPLE_SHA256
    )

    assert code == 0
    assert json.loads(out)["model_dir"] == "gs://bucket/models/main/abc/model/"
    model_dir = mount / "bucket" / "models" / "main" / "abc" / "model"
    assert load_model(model_dir).lineage["data_uri"] == "gs://bucket/data/penguins.csv"
    assert [path.name for path in model_dir.parent.iterdir()] == ["model"]


def test_without_a_subcommand_it_trains(capsys, tmp_path):
    code, _, _ = run(capsys, "--data", str(SAMPLE), "--model-dir", str(tmp_path / "model"))

    assert code == 0
    assert (tmp_path / "model" / LINEAGE_FILE).is_file()


def test_no_model_folder_is_refused(capsys):
    code, _, err = run(capsys, "train", "--data", str(SAMPLE))

    assert_refused(code, err, "pass --model-dir or set AIP_MODEL_DIR")


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no rows", "the data has no rows"),
        ("missing column", "missing columns: bill_length_mm"),
        ("text in numbers", "bill_length_mm must be numeric"),
    ],
)
def test_bad_data_exits_2_and_writes_nothing(capsys, tmp_path, case, message):
    data = tmp_path / "data.csv"
    data.write_text(BAD_DATA[case])
    out_root = tmp_path / "models"

    code, out, err = run(capsys, "train", "--data", str(data), "--model-dir", str(out_root / "m"))

    assert_refused(code, err, message)
    assert out == ""
    assert not out_root.exists()


def test_data_with_another_hash_is_refused(capsys, tmp_path):
    code, _, err = run(
        capsys,
        *("train", "--data", str(SAMPLE), "--model-dir", str(tmp_path / "m")),
        *("--expect-sha256", "f" * 64),
    )

    assert_refused(code, err, f"is {SAMPLE_SHA256}, expected {'f' * 64}")
    assert list(tmp_path.iterdir()) == []


def test_existing_model_folder_is_refused_before_training(capsys, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "metrics.json").write_text("{}")

    code, _, err = run(capsys, "train", "--data", str(SAMPLE), "--model-dir", str(model_dir))

    assert_refused(code, err, "is not empty; model folders are never overwritten")
    assert [path.name for path in model_dir.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--test-size", "1.5"], "test size must be between 0 and 1"),
        (["train", "--c", "-1"], "C must be positive"),
        (["train", "--seed", "many"], "argument --seed: invalid int value"),
        (["train", "--expect-sha256", "abc"], "not a sha256 hex digest"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["validate", "--test-size", "0"], "test size must be between 0 and 1"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, tmp_path, argv, message):
    try:
        code = main([*argv, "--model-dir", str(tmp_path / "m")] if argv[0] == "train" else argv)
    except SystemExit as stop:
        code = stop.code
    _, err = capsys.readouterr()

    assert_refused(code, err, message)
    assert list(tmp_path.iterdir()) == []


def test_validate_reports_the_data_and_writes_nothing(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    code, out, err = run(
        capsys, "validate", "--data", str(SAMPLE), "--expect-sha256", SAMPLE_SHA256
    )

    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "data": str(SAMPLE),
        "sha256": SAMPLE_SHA256,
        "rows": 344,
        "rows_unlabelled": 0,
        "classes": {"Adelie": 152, "Chinstrap": 68, "Gentoo": 124},
        "categories": {"island": ["Biscoe", "Dream", "Torgersen"], "sex": ["female", "male"]},
    }
    assert list(tmp_path.iterdir()) == []


def test_validate_refuses_bad_data(capsys, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text(BAD_DATA["missing column"])

    code, _, err = run(capsys, "validate", "--data", str(data))

    assert_refused(code, err, "missing columns: bill_length_mm")


def test_module_entry_point_refuses_without_a_traceback(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text(BAD_DATA["text in numbers"])

    completed = subprocess.run(
        [sys.executable, "-m", "training", "validate", "--data", str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 2
    assert completed.stderr == (
        "error: column bill_length_mm must be numeric but holds 4 non-numeric value(s), "
        "e.g. 'long'\n"
    )


def test_only_the_chief_replica_of_a_vertex_job_trains(tmp_path, monkeypatch):
    from training.__main__ import main

    worker = '{"cluster": {}, "task": {"type": "workerpool1", "index": 0}}'
    monkeypatch.setenv("CLUSTER_SPEC", worker)
    assert main(["train", "--model-dir", str(tmp_path / "model")]) == 0
    assert not (tmp_path / "model").exists()
    monkeypatch.setenv("CLUSTER_SPEC", worker.replace("workerpool1", "workerpool0"))
    assert main(["train", "--model-dir", str(tmp_path / "model")]) == 0
    assert (tmp_path / "model" / "lineage.json").exists()
