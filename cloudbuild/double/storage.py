"""Cloud Storage's JSON API: the part google-cloud-storage and `gcloud storage` use.

Buckets (create, get) and objects (upload as media, multipart or resumable; download;
metadata; list with prefix and delimiter; delete). A bucket must be created before use,
as in Cloud Storage, through the API or `create_bucket`.

State under the folder given:

    buckets/<bucket>.json      the bucket resource
    attributes/<bucket>.json   each object's content type and custom metadata, by name
    objects/<bucket>/<name>    each object's bytes, one file per object
    uploads/                   resumable upload sessions and writes in progress

`objects/` is laid out as Vertex AI's Cloud Storage FUSE mount (`/gcs/`) is, so a
process standing in for a training container can read and write `gs://` locations as
plain files there (`fuse_root`, `local_path`). The price: an object name cannot be both
an object and a folder ("a" and "a/b"), nor have empty, "." or ".." parts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import google_crc32c

from cloudbuild.double.http import ApiError, Request, Response, match_route, same_etag
from cloudbuild.double.state import write_json

BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]")
MAX_OBJECT_NAME_BYTES = 1024
DEFAULT_PAGE_SIZE = 1000

_BUCKET = r"/storage/v1/b/(?P<bucket>[^/]+)"
_ROUTES = {
    "insert_bucket": re.compile(r"/storage/v1/b"),
    "bucket": re.compile(_BUCKET),
    "bucket_iam": re.compile(_BUCKET + r"/iam"),
    "objects": re.compile(_BUCKET + r"/o"),
    "object": re.compile(_BUCKET + r"/o/(?P<name>.+)"),
    "download": re.compile(r"/download" + _BUCKET + r"/o/(?P<name>.+)"),
    "upload": re.compile(r"/upload" + _BUCKET + r"/o"),
}


class StorageApi:
    service = "storage"
    path_prefixes = ("/storage/v1/", "/upload/storage/v1/", "/download/storage/v1/")

    def __init__(self, root: Path) -> None:
        self.fuse_root = root / "objects"
        self._buckets = root / "buckets"
        self._attributes = root / "attributes"
        self._uploads = root / "uploads"
        for folder in (self.fuse_root, self._buckets, self._attributes, self._uploads):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def create_bucket(self, name: str) -> dict[str, Any]:
        """Create a bucket as `POST /storage/v1/b` would; 409 if it exists."""
        if not BUCKET_NAME.fullmatch(name):
            raise ApiError(400, f"Invalid bucket name: '{name}'")
        path = self._buckets / f"{name}.json"
        now = _timestamp(time.time())
        bucket = {
            "kind": "storage#bucket",
            "id": name,
            "name": name,
            "location": "US",
            "storageClass": "STANDARD",
            "metageneration": "1",
            "timeCreated": now,
            "updated": now,
        }
        with self._lock:
            if path.exists():
                raise ApiError(
                    409,
                    "Your previous request to create the named bucket succeeded "
                    "and you already own it.",
                )
            (self.fuse_root / name).mkdir(exist_ok=True)
            write_json(path, bucket)
        return bucket

    def local_path(self, bucket: str, name: str = "") -> Path:
        """Where the object `name` of `bucket` (or the bucket's folder) lives on disk."""
        return self.fuse_root / bucket / name if name else self.fuse_root / bucket

    def handle(self, request: Request) -> Response:
        route, match = match_route(_ROUTES, request.path)
        method = request.method
        if route == "insert_bucket" and method == "POST":
            return Response.json(self.create_bucket(request.json().get("name", "")))
        bucket = unquote(match["bucket"]) if match else ""
        if route == "bucket" and method == "GET":
            return Response.json(self._bucket(bucket))
        if route == "bucket_iam" and method == "GET":
            return Response.json(self.iam_policy(bucket))
        if route == "bucket_iam" and method == "PUT":
            return Response.json(self._set_iam_policy(bucket, request.json()))
        if route == "objects" and method == "GET":
            return Response.json(self._list(request, bucket))
        if route in ("object", "download"):
            name = unquote(match["name"])
            if method == "GET" and (route == "download" or request.query.get("alt") == "media"):
                return self._media(bucket, name)
            if method == "GET":
                return Response.json(self._object(request, bucket, name))
            if method == "DELETE":
                self._delete(bucket, name)
                return Response(204)
        if route == "upload" and method in ("POST", "PUT"):
            return self._upload(request, bucket)
        raise ApiError(501, f"the storage double does not implement {method} {request.path}")

    # Buckets

    def _bucket(self, bucket: str) -> dict[str, Any]:
        path = self._buckets / f"{bucket}.json"
        if not BUCKET_NAME.fullmatch(bucket) or not path.exists():
            raise ApiError(404, "The specified bucket does not exist.")
        return json.loads(path.read_text())

    def iam_policy(self, bucket: str) -> dict[str, Any]:
        """The bucket's IAM policy; a new bucket has no bindings of ours."""
        self._bucket(bucket)
        path = self._buckets / f"{bucket}.iam.json"
        if path.exists():
            return json.loads(path.read_text())
        return {
            "kind": "storage#policy",
            "resourceId": f"projects/_/buckets/{bucket}",
            "version": 1,
            "etag": "CAE=",
            "bindings": [],
        }

    def _set_iam_policy(self, bucket: str, policy: dict[str, Any]) -> dict[str, Any]:
        current = self.iam_policy(bucket)
        if not same_etag(policy.get("etag"), current["etag"]):
            raise ApiError(412, "the policy changed since it was read (etag mismatch)")
        version = int(base64.b64decode(current["etag"])[-1]) + 1
        stored = {**current, "bindings": policy.get("bindings", [])}
        stored["etag"] = base64.b64encode(bytes([8, version % 256])).decode()
        write_json(self._buckets / f"{bucket}.iam.json", stored)
        return stored

    # Objects

    def _object(self, request: Request, bucket: str, name: str) -> dict[str, Any]:
        path = self._existing(bucket, name)
        return _resource(request.host, bucket, name, path, self._read_attributes(bucket))

    def _media(self, bucket: str, name: str) -> Response:
        path = self._existing(bucket, name)
        data = path.read_bytes()
        md5, crc32c = _hashes(data)
        attributes = self._read_attributes(bucket).get(name, {})
        return Response(
            200,
            data,
            {
                "Content-Type": attributes.get("contentType") or _guess_type(name),
                # The client checks the download against these, as it does in production.
                "x-goog-hash": f"crc32c={crc32c},md5={md5}",
                "x-goog-generation": _generation(path),
                "x-goog-metageneration": "1",
                "x-goog-stored-content-length": str(len(data)),
                "x-goog-stored-content-encoding": "identity",
            },
        )

    def _list(self, request: Request, bucket: str) -> dict[str, Any]:
        self._bucket(bucket)
        prefix = request.query.get("prefix", "")
        delimiter = request.query.get("delimiter", "")
        page_size = int(request.query.get("maxResults") or DEFAULT_PAGE_SIZE)
        after = request.query.get("pageToken", "")

        items: dict[str, Path] = {}
        prefixes: set[str] = set()
        folder = self.local_path(bucket)
        for path in folder.rglob("*"):
            name = path.relative_to(folder).as_posix()
            if not path.is_file() or not name.startswith(prefix):
                continue
            cut = name.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                prefixes.add(name[: cut + len(delimiter)])
            else:
                items[name] = path
        # One sorted sequence of names and prefixes; a page token is the last one sent.
        entries = sorted(entry for entry in items.keys() | prefixes if entry > after)
        page = entries[:page_size]
        attributes = self._read_attributes(bucket)
        result: dict[str, Any] = {
            "kind": "storage#objects",
            "items": [
                _resource(request.host, bucket, entry, items[entry], attributes)
                for entry in page
                if entry in items
            ],
            "prefixes": [entry for entry in page if entry in prefixes],
        }
        if len(entries) > page_size:
            result["nextPageToken"] = page[-1]
        return result

    def _delete(self, bucket: str, name: str) -> None:
        with self._lock:
            path = self._existing(bucket, name)
            path.unlink()
            # Cloud Storage has no folders: one left empty must not linger as one.
            top = self.local_path(bucket)
            for parent in path.parents:
                if parent == top or any(parent.iterdir()):
                    break
                parent.rmdir()
            attributes = self._read_attributes(bucket)
            attributes.pop(name, None)
            self._write_attributes(bucket, attributes)

    # Uploads

    def _upload(self, request: Request, bucket: str) -> Response:
        self._bucket(bucket)
        if "upload_id" in request.query:
            return self._resume(request, request.query["upload_id"])
        upload_type = request.query.get("uploadType", "")
        precondition = request.query.get("ifGenerationMatch")
        if upload_type == "media":
            resource = {"name": request.query.get("name", "")}
            content_type = request.headers.get("Content-Type", "")
            data = request.body
        elif upload_type == "multipart":
            resource, content_type, data = _split_multipart(request)
            resource.setdefault("name", request.query.get("name", ""))
        elif upload_type == "resumable" and request.method == "POST":
            return self._start_session(request, bucket)
        else:
            raise ApiError(400, f"Unsupported upload type {upload_type!r}")
        return Response.json(
            self._store(request.host, bucket, resource, data, content_type, precondition)
        )

    def _start_session(self, request: Request, bucket: str) -> Response:
        resource = request.json()
        resource.setdefault("name", request.query.get("name", ""))
        session = {
            "bucket": bucket,
            "resource": resource,
            "contentType": request.headers.get("X-Upload-Content-Type", ""),
            "ifGenerationMatch": request.query.get("ifGenerationMatch"),
        }
        upload_id = uuid.uuid4().hex
        write_json(self._uploads / f"{upload_id}.json", session)
        (self._uploads / f"{upload_id}.part").write_bytes(b"")
        location = (
            f"http://{request.host}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
            f"?uploadType=resumable&upload_id={upload_id}"
        )
        return Response(200, b"", {"Location": location})

    def _resume(self, request: Request, upload_id: str) -> Response:
        session_path = self._uploads / f"{upload_id}.json"
        part_path = self._uploads / f"{upload_id}.part"
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id) or not session_path.exists():
            raise ApiError(404, f"No such upload session: {upload_id}")
        session = json.loads(session_path.read_text())
        # "bytes 0-99/200", "bytes 100-199/*" or, to ask or to finish, "bytes */200".
        match = re.fullmatch(
            r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", request.headers.get("Content-Range", "")
        )
        if match is None:
            raise ApiError(400, "Missing or malformed Content-Range")
        start, _, total = match.groups()
        if start is not None:
            with part_path.open("r+b") as part:
                part.seek(int(start))
                part.write(request.body)
                part.truncate()
        size = part_path.stat().st_size
        if total == "*" or size < int(total):
            headers = {"Range": f"bytes=0-{size - 1}"} if size else {}
            return Response(308, b"", headers)
        stored = self._store(
            request.host,
            session["bucket"],
            session["resource"],
            part_path.read_bytes(),
            session["contentType"],
            session["ifGenerationMatch"],
        )
        session_path.unlink()
        part_path.unlink()
        return Response.json(stored)

    def _store(
        self,
        host: str,
        bucket: str,
        resource: dict[str, Any],
        data: bytes,
        content_type: str,
        precondition: str | None,
    ) -> dict[str, Any]:
        """Write an object, if its generation is `precondition` when given; its resource."""
        name = resource.get("name", "")
        if not _storable(name):
            raise ApiError(
                400,
                f"the double keeps objects as files and cannot store the name {name!r}: "
                "it needs non-empty parts other than '.' and '..'",
            )
        path = self.local_path(bucket, name)
        md5, crc32c = _hashes(data)
        for field, actual in (("md5Hash", md5), ("crc32c", crc32c)):
            if field in resource and resource[field] != actual:
                raise ApiError(
                    400, f'Provided {field} "{resource[field]}" does not match the data ({actual})'
                )
        with self._lock:
            previous = _generation(path) if path.is_file() else "0"
            if precondition is not None and precondition != previous:
                raise ApiError(
                    412, "At least one of the pre-conditions you specified did not hold."
                )
            staged = self._uploads / f"{uuid.uuid4().hex}.tmp"
            staged.write_bytes(data)
            # The file's mtime is the object's generation, so it must move on at every
            # write even when the clock's resolution is coarser than the writes.
            generation = max(time.time_ns(), int(previous) + 1)
            os.utime(staged, ns=(generation, generation))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                staged.replace(path)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                staged.unlink()
                raise ApiError(
                    400, f"the double cannot store {name!r} beside an object of the same path"
                ) from None
            attributes = self._read_attributes(bucket)
            attributes[name] = {
                "contentType": resource.get("contentType") or content_type or _guess_type(name),
                "metadata": resource.get("metadata") or {},
            }
            self._write_attributes(bucket, attributes)
        return _resource(host, bucket, name, path, attributes)

    # State

    def _existing(self, bucket: str, name: str) -> Path:
        """The file of an existing object; 404 otherwise, as for names no file can hold."""
        self._bucket(bucket)
        path = self.local_path(bucket, name) if _storable(name) else None
        if path is None or not path.is_file():
            raise ApiError(404, f"No such object: {bucket}/{name}")
        return path

    def _read_attributes(self, bucket: str) -> dict[str, Any]:
        path = self._attributes / f"{bucket}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _write_attributes(self, bucket: str, attributes: dict[str, Any]) -> None:
        write_json(self._attributes / f"{bucket}.json", attributes)


def _storable(name: str) -> bool:
    """Whether an object name can be a file path under its bucket's folder."""
    parts = name.split("/")
    return (
        all(part not in ("", ".", "..") for part in parts)
        and "\0" not in name
        and len(name.encode()) <= MAX_OBJECT_NAME_BYTES
    )


def _split_multipart(request: Request) -> tuple[dict[str, Any], str, bytes]:
    """The JSON resource, the media's content type and the media of a multipart upload.

    Python clients end its lines with CRLF and quote nothing; gcloud ends them with LF
    and puts the boundary in single quotes. Cloud Storage takes both, so the double does.
    """
    content_type = request.headers.get("Content-Type", "")
    found = re.search(r"""boundary=(?:"([^"]+)"|'([^']+)'|([^;\s]+))""", content_type)
    if found is None:
        raise ApiError(400, "A multipart upload needs a multipart/related boundary")
    boundary = b"--" + next(group for group in found.groups() if group).encode()
    newline = b"\r\n" if request.body.startswith(boundary + b"\r\n") else b"\n"
    # <nl>--B<nl>head<nl><nl>resource<nl>--B<nl>head<nl><nl>media<nl>--B--<nl>: a
    # delimiter owns the line break before it, which the first one lacks.
    parts = (newline + request.body).split(newline + boundary)
    if len(parts) != 4 or not parts[3].startswith(b"--"):
        raise ApiError(400, "A multipart upload has exactly two parts")
    sections = []
    for part in parts[1:3]:
        head, separator, content = part.removeprefix(newline).partition(newline * 2)
        if not separator:
            raise ApiError(400, "A multipart upload part has no headers")
        sections.append((head.decode("latin-1"), content))
    try:
        resource = json.loads(sections[0][1])
    except ValueError as error:
        raise ApiError(400, f"Invalid JSON payload received. {error}") from None
    media_type = re.search(r"(?im)^content-type:\s*(.+?)\s*$", sections[1][0])
    return resource, media_type[1] if media_type else "", sections[1][1]


def _resource(
    host: str, bucket: str, name: str, path: Path, attributes: dict[str, Any]
) -> dict[str, Any]:
    data = path.read_bytes()
    md5, crc32c = _hashes(data)
    generation = _generation(path)
    updated = _timestamp(path.stat().st_mtime)
    own = attributes.get(name, {})
    encoded = quote(name, safe="")
    resource = {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{generation}",
        "selfLink": f"http://{host}/storage/v1/b/{bucket}/o/{encoded}",
        "mediaLink": f"http://{host}/download/storage/v1/b/{bucket}/o/{encoded}?alt=media",
        "name": name,
        "bucket": bucket,
        "generation": generation,
        "metageneration": "1",
        "contentType": own.get("contentType") or _guess_type(name),
        "storageClass": "STANDARD",
        "size": str(len(data)),
        "md5Hash": md5,
        "crc32c": crc32c,
        "etag": md5,
        "timeCreated": updated,
        "updated": updated,
    }
    if own.get("metadata"):
        resource["metadata"] = own["metadata"]
    return resource


def _hashes(data: bytes) -> tuple[str, str]:
    """Base64 MD5 and CRC32C, the forms the JSON API and the x-goog-hash header use."""
    md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
    crc32c = base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()
    return md5, crc32c


def _generation(path: Path) -> str:
    return str(path.stat().st_mtime_ns)


def _guess_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _timestamp(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
