"""How every API of the double keeps its state: JSON files, written whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudbuild.double.http import ApiError


def now() -> str:
    """A timestamp as Google's APIs write them (RFC 3339, UTC, "Z")."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def write_json(path: Path, document: Any) -> None:
    """Replace `path` in one step, so a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps(document, indent=2))
    staged.replace(path)


def read_json(path: Path, missing: str) -> Any:
    """The document at `path`; a 404 saying `missing` when there is none."""
    if not path.exists():
        raise ApiError(404, missing)
    return json.loads(path.read_text())
