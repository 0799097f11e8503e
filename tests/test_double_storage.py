"""The Cloud Storage double, driven by the real google-cloud-storage client."""

import base64
import hashlib
import io
import json
import os

import google_crc32c
import pytest
import requests
from google.api_core import exceptions
from google.cloud import storage

from cloudbuild.double import Double

pytest_plugins = ["tests.gcp_double_fixture"]

BUCKET = "test-bucket"


@pytest.fixture
def client(double: Double) -> storage.Client:
    double.storage.create_bucket(BUCKET)
    return storage.Client(project="test-project")


def upload_types(double: Double) -> list[str]:
    return [
        entry["query"].get("uploadType")
        for entry in double.requests()
        if entry["path"].startswith("/upload/") and entry["method"] == "POST"
    ]


def test_buckets_are_created_once_and_must_exist(double: Double):
    client = storage.Client(project="test-project")
    with pytest.raises(exceptions.NotFound):
        client.get_bucket(BUCKET)
    client.create_bucket(BUCKET)
    assert client.get_bucket(BUCKET).name == BUCKET
    with pytest.raises(exceptions.Conflict):
        client.create_bucket(BUCKET)
    with pytest.raises(exceptions.BadRequest):
        client.create_bucket("Upper-Case-Bucket")


def test_a_missing_bucket_is_not_found_for_every_object_call(client: storage.Client):
    blob = client.bucket("no-such-bucket").blob("a.txt")
    with pytest.raises(exceptions.NotFound):
        blob.upload_from_string("x")
    with pytest.raises(exceptions.NotFound):
        blob.download_as_bytes()
    with pytest.raises(exceptions.NotFound):
        list(client.list_blobs("no-such-bucket"))


def test_a_small_upload_is_multipart_and_round_trips_with_its_metadata(
    double: Double, client: storage.Client
):
    data = b'{"hello": "world"}\r\n--not-a-boundary\r\n'
    blob = client.bucket(BUCKET).blob("folder/file one.json")
    blob.metadata = {"origin": "test"}
    blob.upload_from_string(data, content_type="application/json")

    fetched = client.bucket(BUCKET).get_blob("folder/file one.json")
    assert fetched.download_as_bytes() == data
    assert fetched.size == len(data)
    assert fetched.content_type == "application/json"
    assert fetched.metadata == {"origin": "test"}
    assert fetched.md5_hash == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert fetched.crc32c == base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()
    assert upload_types(double) == ["multipart"]


def test_an_upload_of_unknown_size_is_resumable_in_chunks(double: Double, client: storage.Client):
    data = os.urandom(300 * 1024)
    blob = client.bucket(BUCKET).blob("big.bin", chunk_size=256 * 1024)
    blob.upload_from_file(io.BytesIO(data), content_type="application/x-test")

    assert client.bucket(BUCKET).blob("big.bin").download_as_bytes() == data
    assert client.bucket(BUCKET).get_blob("big.bin").content_type == "application/x-test"
    assert upload_types(double) == ["resumable"]
    chunks = [entry["status"] for entry in double.requests() if entry["method"] == "PUT"]
    assert chunks == [308, 200]


def test_a_media_upload_names_the_object_in_the_query(double: Double, client: storage.Client):
    response = requests.post(
        f"{double.url}/upload/storage/v1/b/{BUCKET}/o",
        params={"uploadType": "media", "name": "raw.txt"},
        data=iter([b"raw ", b"bytes"]),  # a stream: sent with chunked transfer encoding
        headers={"Content-Type": "text/plain"},
        timeout=5,
    )
    assert response.status_code == 200
    assert response.json()["name"] == "raw.txt"
    assert client.bucket(BUCKET).blob("raw.txt").download_as_bytes() == b"raw bytes"


def test_gclouds_multipart_form_is_accepted_too(double: Double, client: storage.Client):
    # As `gcloud storage cp` sends it: LF line ends and a single-quoted boundary.
    body = (
        b"--===1==\nContent-Type: application/json\nMIME-Version: 1.0\n\n"
        b'{"bucket": "test-bucket", "contentType": "text/plain", "name": "x/f.txt"}\n'
        b"--===1==\nContent-Type: text/plain\nContent-Transfer-Encoding: binary\n\n"
        b"hello\r\n\n"
        b"--===1==--\n"
    )
    response = requests.post(
        f"{double.url}/upload/storage/v1/b/{BUCKET}/o?uploadType=multipart",
        data=body,
        headers={"Content-Type": "multipart/related; boundary='===1=='"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    blob = client.bucket(BUCKET).get_blob("x/f.txt")
    assert blob.download_as_bytes() == b"hello\r\n"
    assert blob.content_type == "text/plain"


def test_listing_honours_prefix_delimiter_and_pages(client: storage.Client):
    bucket = client.bucket(BUCKET)
    for name in ["a/1", "a/2", "a/b/3", "c", "d/4"]:
        bucket.blob(name).upload_from_string(name)

    assert [blob.name for blob in client.list_blobs(BUCKET, prefix="a/")] == ["a/1", "a/2", "a/b/3"]
    top = client.list_blobs(BUCKET, delimiter="/")
    assert [blob.name for blob in top] == ["c"]
    assert top.prefixes == {"a/", "d/"}
    nested = client.list_blobs(BUCKET, prefix="a/", delimiter="/")
    assert [blob.name for blob in nested] == ["a/1", "a/2"]
    assert nested.prefixes == {"a/b/"}
    paged = client.list_blobs(BUCKET, max_results=None, page_size=2)
    assert [[blob.name for blob in page] for page in paged.pages] == [
        ["a/1", "a/2"],
        ["a/b/3", "c"],
        ["d/4"],
    ]


def test_delete_removes_the_object_and_its_empty_folder(double: Double, client: storage.Client):
    blob = client.bucket(BUCKET).blob("gone/soon.txt")
    blob.upload_from_string("x")
    blob.delete()
    assert not blob.exists()
    assert not double.storage.local_path(BUCKET, "gone").exists()
    with pytest.raises(exceptions.NotFound):
        blob.delete()
    # The name of a deleted folder is free again for an object.
    client.bucket(BUCKET).blob("gone").upload_from_string("now an object")


def test_a_precondition_on_the_generation_is_enforced(client: storage.Client):
    blob = client.bucket(BUCKET).blob("once.txt")
    blob.upload_from_string("first", if_generation_match=0)
    with pytest.raises(exceptions.PreconditionFailed):
        blob.upload_from_string("second", if_generation_match=0)
    current = client.bucket(BUCKET).get_blob("once.txt").generation
    blob.upload_from_string("second", if_generation_match=current)
    assert client.bucket(BUCKET).get_blob("once.txt").generation > current


def test_objects_are_files_laid_out_like_the_gcs_fuse_mount(double: Double, client: storage.Client):
    client.bucket(BUCKET).blob("models/x/model.txt").upload_from_string("via the API")
    assert double.storage.local_path(BUCKET, "models/x/model.txt").read_text() == "via the API"
    assert double.storage.local_path(BUCKET) == double.storage.fuse_root / BUCKET

    # What a training process writes through the mount is an object like any other.
    written = double.storage.fuse_root / BUCKET / "models" / "x" / "metrics.json"
    written.write_text('{"accuracy": 1.0}')
    names = [blob.name for blob in client.list_blobs(BUCKET, prefix="models/x/")]
    assert names == ["models/x/metrics.json", "models/x/model.txt"]
    assert client.bucket(BUCKET).blob("models/x/metrics.json").download_as_text() == (
        '{"accuracy": 1.0}'
    )


def test_names_a_file_cannot_hold_are_refused(double: Double, client: storage.Client):
    with pytest.raises(exceptions.BadRequest):
        client.bucket(BUCKET).blob("a/../escape").upload_from_string("x")
    # Reading one is simply not finding it: gcloud looks for "folder/" placeholders.
    assert not client.bucket(BUCKET).blob("a/").exists()
    client.bucket(BUCKET).blob("file").upload_from_string("x")
    with pytest.raises(exceptions.BadRequest):
        client.bucket(BUCKET).blob("file/child").upload_from_string("x")


def test_state_survives_a_restart(double: Double, client: storage.Client):
    client.bucket(BUCKET).blob("kept.txt").upload_from_string("still here", content_type="text/x")
    with Double(double.state_dir) as again:
        response = requests.get(f"{again.url}/storage/v1/b/{BUCKET}/o/kept.txt", timeout=5)
        assert response.json()["contentType"] == "text/x"
        media = requests.get(
            f"{again.url}/download/storage/v1/b/{BUCKET}/o/kept.txt?alt=media", timeout=5
        )
        assert media.content == b"still here"


def test_errors_have_googles_shape(double: Double):
    response = requests.get(f"{double.url}/storage/v1/b/{BUCKET}", timeout=5)
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": 404,
            "message": "The specified bucket does not exist.",
            "status": "NOT_FOUND",
        }
    }


def test_every_request_is_logged_with_its_json_body(double: Double):
    requests.post(
        f"{double.url}/storage/v1/b", params={"project": "p"}, json={"name": BUCKET}, timeout=5
    )
    entry = double.requests()[-1]
    assert entry == {
        "method": "POST",
        "host": double.url.removeprefix("http://"),
        "path": "/storage/v1/b",
        "query": {"project": "p"},
        "body": {"name": BUCKET},
        "bytes": len(json.dumps({"name": BUCKET})),
        "status": 200,
    }
