"""Small JSON documents in Cloud Storage: model pointers, deployment records, the
published A/B config. One place reads and writes them, so each is a JSON object,
missing means None, and a conditional write can say "only if nobody wrote since".

The client is google-cloud-storage with the build's credentials; with
STORAGE_EMULATOR_HOST set (by the loopback double) it talks to that instead.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from google.api_core.exceptions import NotFound

if TYPE_CHECKING:
    from google.cloud import storage

GCS_URI = re.compile(r"gs://(?P<bucket>[a-z0-9][a-z0-9_.-]{1,220})/(?P<name>.*)")


class NotAnObject(ValueError):
    """The object exists but does not hold a JSON object."""


def split_uri(uri: str) -> tuple[str, str]:
    """("bucket", "object/name") of "gs://bucket/object/name"; ValueError otherwise."""
    match = GCS_URI.fullmatch(uri)
    if match is None:
        raise ValueError(f"{uri!r} is not a gs://bucket/... URI")
    return match["bucket"], match["name"]


def storage_client(project: str | None = None) -> storage.Client:
    """Reading objects needs no project. With STORAGE_EMULATOR_HOST set, the double's client."""
    # Imported here: the storage library takes half a second to import, and most
    # commands that import this module (experiment check, render-openapi) never call it.
    from google.cloud import storage

    return storage.Client(project=project)


def _blob(gcs: storage.Client, uri: str) -> storage.Blob:
    bucket, name = split_uri(uri)
    return gcs.bucket(bucket).blob(name)


def read_object(gcs: storage.Client, uri: str) -> tuple[dict[str, Any] | None, int]:
    """The JSON object at `uri` and its generation; (None, 0) when it does not exist."""
    blob = _blob(gcs, uri)
    try:
        text = blob.download_as_text()
    except NotFound:
        return None, 0
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise NotAnObject(f"{uri} does not hold a JSON object")
    return value, int(blob.generation or 0)


def write_object(
    gcs: storage.Client, uri: str, value: dict[str, Any], generation: int | None = None
) -> None:
    """Write `value` at `uri`; with `generation`, only if the object is still at that
    generation (0: only if it does not exist), else google's PreconditionFailed."""
    _blob(gcs, uri).upload_from_string(
        json.dumps(value, indent=2) + "\n",
        content_type="application/json",
        if_generation_match=generation,
    )
