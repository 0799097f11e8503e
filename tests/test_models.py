"""The model store: fetch the data, promote a complete model, resolve and download one.

Everything runs against the loopback double with the real google-cloud-storage client,
and the last test runs the whole training pipeline with the training code really training.
"""

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from google.cloud import storage

from cloudbuild.config import load
from cloudbuild.double import Double, Outcome, runners
from cloudbuild.models import (
    MODEL_FILES,
    ModelStoreError,
    download_model,
    fetch_data,
    model_dir_uri,
    promote,
    resolve,
    split_uri,
)
from cloudbuild.names import Names, names
from tests.gcp_double_fixture import cli
from training import artifacts

pytest_plugins = ["tests.gcp_double_fixture"]

CONFIG = load()
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98"
JOB = "projects/example-project-123/locations/europe-west1/customJobs/7"
FEATURE = names(CONFIG, "feature/x", SHA)
PRODUCTION = names(CONFIG, CONFIG.production_branch, OTHER_SHA)
SAMPLE_DATA = Path(__file__).resolve().parent.parent / "training" / "data" / "penguins.csv"


@pytest.fixture
def bucket(double: Double) -> storage.Bucket:
    double.storage.create_bucket(CONFIG.bucket)
    return storage.Client(project=CONFIG.gcp_project_id).bucket(CONFIG.bucket)


def write_model(bucket: storage.Bucket, run: Names, files=MODEL_FILES) -> None:
    _, prefix = split_uri(model_dir_uri(run))
    for file in files:
        bucket.blob(prefix + file).upload_from_string(f"{file} of {run.sha}")


def read_pointer(bucket: storage.Bucket, run: Names) -> dict:
    _, name = split_uri(run.latest_model_pointer)
    return json.loads(bucket.blob(name).download_as_text())


def pointer_exists(bucket: storage.Bucket, run: Names) -> bool:
    return bucket.blob(split_uri(run.latest_model_pointer)[1]).exists()


def source(env_file: Path, *variables: str) -> list[str]:
    """The variables' values after a build step's shell sources `env_file`."""
    script = 'set -eu; . "$1"; shift; for v; do printf "%s\\n" "${!v}"; done'
    result = subprocess.run(
        ["bash", "-c", script, "_", str(env_file), *variables],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


def test_the_model_files_are_those_training_writes():
    written = {
        artifacts.MODEL_FILE,
        artifacts.METRICS_FILE,
        artifacts.SCHEMA_FILE,
        artifacts.LINEAGE_FILE,
    }
    assert set(MODEL_FILES) == written


# fetch-data


def test_fetch_data_downloads_the_object_and_returns_its_sha256(bucket, tmp_path):
    bucket.blob("data/train.csv").upload_from_filename(SAMPLE_DATA)
    dest = tmp_path / "build" / "data" / "train.csv"
    digest = fetch_data(f"gs://{CONFIG.bucket}/data/train.csv", dest)
    assert dest.read_bytes() == SAMPLE_DATA.read_bytes()
    assert digest == hashlib.sha256(SAMPLE_DATA.read_bytes()).hexdigest()


def test_fetch_data_defaults_to_the_configured_uri_and_writes_the_env(bucket, tmp_path, capsys):
    _, name = split_uri(CONFIG.training.data_uri)
    bucket.blob(name).upload_from_filename(SAMPLE_DATA)
    env_file = tmp_path / "data.env"
    # The build passes an empty --uri when no one overrode the data.
    assert cli("fetch-data", "--uri", "", "--dest", tmp_path / "d.csv", "--env-out", env_file) == 0
    digest = hashlib.sha256(SAMPLE_DATA.read_bytes()).hexdigest()
    assert capsys.readouterr().out == digest + "\n"
    assert source(env_file, "DATA_URI", "DATA_SHA256") == [CONFIG.training.data_uri, digest]


def test_fetch_data_of_a_missing_object_fails(bucket, tmp_path, capsys):
    uri = f"gs://{CONFIG.bucket}/data/missing.csv"
    assert cli("fetch-data", "--uri", uri, "--dest", tmp_path / "d.csv") == 1
    assert capsys.readouterr().err == f"error: the training data {uri} does not exist\n"


def test_fetch_data_refuses_a_uri_that_is_not_cloud_storage(double, tmp_path, capsys):
    assert cli("fetch-data", "--uri", "https://example.com/x", "--dest", tmp_path / "d") == 2
    assert "is not a gs://bucket/... URI" in capsys.readouterr().err


# promote-model


def test_promote_refuses_an_incomplete_folder(bucket):
    write_model(bucket, FEATURE, files=MODEL_FILES[:-1])
    with pytest.raises(ModelStoreError, match="incomplete: lineage.json missing"):
        promote(CONFIG, FEATURE, JOB)
    assert not pointer_exists(bucket, FEATURE)


def test_promote_points_latest_at_the_folder_and_leaves_the_folder_alone(bucket):
    write_model(bucket, FEATURE)
    _, prefix = split_uri(model_dir_uri(FEATURE))
    before = {blob.name: blob.generation for blob in bucket.list_blobs(prefix=prefix)}

    pointer = promote(CONFIG, FEATURE, JOB)

    assert read_pointer(bucket, FEATURE) == pointer
    assert pointer == {
        "model_uri": model_dir_uri(FEATURE),
        "branch": "feature/x",
        "slug": FEATURE.slug,
        "commit": SHA,
        "job": JOB,
        "promoted_at": pointer["promoted_at"],
    }
    assert {blob.name: blob.generation for blob in bucket.list_blobs(prefix=prefix)} == before


def test_promote_model_of_an_empty_folder_fails_the_step(bucket, capsys):
    argv = ["promote-model", "--branch", "feature/x", "--sha", SHA, "--job", JOB]
    assert cli(*argv) == 1
    assert "the folder is empty" in capsys.readouterr().err
    assert not pointer_exists(bucket, FEATURE)


def test_promote_model_refuses_a_job_that_is_not_a_job_name(double, capsys):
    with pytest.raises(SystemExit) as exit:
        cli("promote-model", "--branch", "feature/x", "--sha", SHA, "--job", "")
    assert exit.value.code == 2
    assert "is not a custom job's name" in capsys.readouterr().err


# resolve-model


def test_resolve_takes_the_branchs_own_model(bucket):
    write_model(bucket, FEATURE)
    write_model(bucket, PRODUCTION)
    promote(CONFIG, FEATURE, JOB)
    promote(CONFIG, PRODUCTION, JOB)

    model = resolve(CONFIG, FEATURE)
    assert model["model_uri"] == model_dir_uri(FEATURE)
    assert model["pointer"] == FEATURE.latest_model_pointer
    assert model["fell_back"] is False
    assert "has a promoted model of its own" in model["message"]


def test_resolve_falls_back_to_the_production_branch_and_says_so(bucket):
    write_model(bucket, PRODUCTION)
    promote(CONFIG, PRODUCTION, JOB)

    model = resolve(CONFIG, FEATURE)
    assert model["model_uri"] == model_dir_uri(PRODUCTION)
    assert model["pointer"] == PRODUCTION.latest_model_pointer
    assert model["fell_back"] is True
    assert model["commit"] == OTHER_SHA
    assert "'feature/x' has no model of its own yet" in model["message"]
    assert f"production branch '{CONFIG.production_branch}'" in model["message"]


def test_resolve_fails_when_no_model_exists_anywhere(bucket):
    with pytest.raises(ModelStoreError, match="no model to serve") as error:
        resolve(CONFIG, FEATURE)
    assert FEATURE.latest_model_pointer in str(error.value)
    assert PRODUCTION.latest_model_pointer in str(error.value)


def test_the_production_branch_never_falls_back_to_itself(bucket):
    with pytest.raises(ModelStoreError, match="production branch 'main' has no model yet"):
        resolve(CONFIG, PRODUCTION)


def test_resolve_refuses_a_pointer_to_a_folder_outside_the_models(bucket):
    _, name = split_uri(FEATURE.latest_model_pointer)
    bucket.blob(name).upload_from_string(json.dumps({"model_uri": "gs://elsewhere/model/"}))
    with pytest.raises(ModelStoreError, match="points outside"):
        resolve(CONFIG, FEATURE)


# download


def test_download_gets_exactly_the_folders_files(bucket, tmp_path):
    write_model(bucket, FEATURE)
    _, prefix = split_uri(model_dir_uri(FEATURE))
    bucket.blob(prefix + "extra/notes.txt").upload_from_string("kept")
    # Neighbours whose names merely start like the folder stay out.
    bucket.blob(prefix.removesuffix("/") + "-old/model.skops").upload_from_string("not this")
    bucket.blob(split_uri(FEATURE.latest_model_pointer)[1]).upload_from_string("{}")

    dest = tmp_path / "model"
    written = download_model(model_dir_uri(FEATURE), dest)

    found = {path.relative_to(dest).as_posix() for path in dest.rglob("*") if path.is_file()}
    assert found == {*MODEL_FILES, "extra/notes.txt"}
    assert written == sorted(dest.resolve() / name for name in found)
    assert (dest / "schema.json").read_text() == f"schema.json of {SHA}"


def test_download_refuses_an_incomplete_folder(bucket, tmp_path):
    write_model(bucket, FEATURE, files=["model.skops"])
    with pytest.raises(ModelStoreError, match="metrics.json, schema.json, lineage.json missing"):
        download_model(model_dir_uri(FEATURE), tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_download_refuses_a_folder_that_is_not_empty(bucket, tmp_path):
    write_model(bucket, FEATURE)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "stale.skops").write_text("old")
    with pytest.raises(ModelStoreError, match="is not empty"):
        download_model(model_dir_uri(FEATURE), tmp_path / "model")


def test_resolve_model_downloads_says_why_and_writes_the_env(bucket, tmp_path, capsys):
    write_model(bucket, PRODUCTION)
    promote(CONFIG, PRODUCTION, JOB)
    env_file = tmp_path / "build" / "model.env"
    argv = ["resolve-model", "--branch", "feature/x", "--sha", SHA]
    assert cli(*argv, "--dest", tmp_path / "model", "--env-out", env_file) == 0

    out = capsys.readouterr().out
    assert "'feature/x' has no model of its own yet" in out
    assert sorted(path.name for path in (tmp_path / "model").iterdir()) == sorted(MODEL_FILES)
    values = source(env_file, "MODEL_URI", "MODEL_BRANCH", "MODEL_COMMIT", "MODEL_FELL_BACK")
    assert values == [model_dir_uri(PRODUCTION), CONFIG.production_branch, OTHER_SHA, "true"]


def test_resolve_model_fails_the_step_when_there_is_no_model(bucket, tmp_path, capsys):
    argv = ["resolve-model", "--branch", "feature/x", "--sha", SHA, "--dest", tmp_path / "m"]
    assert cli(*argv) == 1
    assert capsys.readouterr().err.startswith("error: no model to serve")


# The training pipeline's steps, in order


def pipeline_steps(tmp_path: Path, branch: str, sha: str) -> list[int]:
    """fetch-data, train-job, promote-model as the build runs them; stops at a failure."""
    fetch = ["fetch-data", "--dest", tmp_path / "train.csv", "--env-out", tmp_path / "data.env"]
    codes = [cli(*fetch)]
    if codes[-1]:
        return codes
    data_uri, data_sha256 = source(tmp_path / "data.env", "DATA_URI", "DATA_SHA256")
    run = ["--branch", branch, "--sha", sha]
    train = ["train-job", *run, "--data-uri", data_uri, "--data-sha256", data_sha256]
    codes.append(cli(*train, "--job-out", tmp_path / "job.txt"))
    if codes[-1]:
        return codes
    job = (tmp_path / "job.txt").read_text().strip()
    codes.append(cli("promote-model", *run, "--job", job))
    return codes


def test_a_failed_training_job_stops_the_pipeline_before_promotion(double, bucket, tmp_path):
    _, name = split_uri(CONFIG.training.data_uri)
    bucket.blob(name).upload_from_filename(SAMPLE_DATA)
    double.vertex.runner = lambda job, _: Outcome(False, "out of memory")

    assert pipeline_steps(tmp_path, "feature/x", SHA) == [0, 1]
    assert not pointer_exists(bucket, FEATURE)
    # Promotion would have refused anyway: the failed job left no model.
    with pytest.raises(ModelStoreError, match="incomplete"):
        promote(CONFIG, FEATURE, JOB)


def test_the_pipeline_trains_promotes_and_serves_for_real(double, bucket, tmp_path):
    _, name = split_uri(CONFIG.training.data_uri)
    bucket.blob(name).upload_from_filename(SAMPLE_DATA)
    double.vertex.runner = runners.train_locally

    assert pipeline_steps(tmp_path, CONFIG.production_branch, OTHER_SHA) == [0, 0, 0]
    assert read_pointer(bucket, PRODUCTION)["model_uri"] == model_dir_uri(PRODUCTION)

    # A new branch's api pipeline serves production's model until it trains its own.
    dest = tmp_path / "api-model"
    argv = ["resolve-model", "--branch", "feature/x", "--sha", SHA, "--dest", dest]
    assert cli(*argv) == 0
    loaded = artifacts.load_model(dest)
    assert loaded.lineage["commit"] == OTHER_SHA
    assert loaded.lineage["branch"] == CONFIG.production_branch
    assert loaded.lineage["data_sha256"] == hashlib.sha256(SAMPLE_DATA.read_bytes()).hexdigest()


def test_a_branch_names_its_own_training_data_in_one_file(tmp_path):
    from cloudbuild.cli_common import CommandError
    from cloudbuild.models import BRANCH_DATA_FILE, branch_data_uri

    assert BRANCH_DATA_FILE.parent.name == "training"  # a change to it fires training
    assert branch_data_uri(tmp_path / "absent.txt") == ""
    override = tmp_path / "data-uri.txt"
    override.write_text("# this branch trains on the 2009 sample\ngs://bucket/data/2009.csv\n")
    assert branch_data_uri(override) == "gs://bucket/data/2009.csv"
    override.write_text("gs://bucket/a.csv\ngs://bucket/b.csv\n")
    with pytest.raises(CommandError, match="expected one gs:// URI, found 2"):
        branch_data_uri(override)
