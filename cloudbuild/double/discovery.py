"""Check a request body against its schema in a Google API discovery document.

google-api-python-client ships the discovery documents of Google's REST APIs; they
describe every field a request may carry. The double refuses what Google would refuse
(a misspelt or unknown field, a required one missing, a wrong type) with the message
Google gives, so a request that passes here is one the real API parses.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import googleapiclient

from cloudbuild.double.http import ApiError

DOCUMENTS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
INT64_FORMATS = ("int64", "uint64")


@functools.cache
def document(name: str) -> dict[str, Any]:
    """The discovery document `name`, e.g. "aiplatform.v1"."""
    return json.loads((DOCUMENTS / f"{name}.json").read_text())


def problems(doc: dict[str, Any], schema: str, value: Any, enum_numbers: bool = False) -> list[str]:
    """What is wrong with `value` as a `schema` of `doc`; empty when nothing is.

    Output-only fields are accepted and left for the caller to drop, as Google does.
    Enum fields hold a name from the document or, with `enum_numbers` (as clients asking
    for `enum-encoding=int` send them), any number: only the API's protos know which
    numbers are real.
    """
    found: list[str] = []
    _check(doc["schemas"], {"$ref": schema}, value, "", enum_numbers, found)
    return found


def require(
    doc: dict[str, Any], schema: str, value: Any, ignore: Callable[[str], bool] = lambda _: False
) -> None:
    """Refuse `value` with a 400, in Google's words, unless it is a valid `schema`.

    `ignore` drops the problems an API's service accepts although its document calls
    them errors (a "Required." field that the URL already carries, say).
    """
    found = [problem for problem in problems(doc, schema, value) if not ignore(problem)]
    if found:
        raise ApiError(400, "Invalid JSON payload received. " + " ".join(found))


def output_only(doc: dict[str, Any], schema: str) -> list[str]:
    """The top-level fields of `schema` that only the server sets."""
    properties = doc["schemas"][schema]["properties"]
    return [name for name, spec in properties.items() if spec.get("readOnly")]


def _check(
    schemas: dict, spec: dict, value: Any, where: str, enum_numbers: bool, found: list[str]
) -> None:
    if "$ref" in spec:
        spec = schemas[spec["$ref"]]
    kind = spec.get("type")
    if kind == "object" and "properties" in spec:
        _check_message(schemas, spec["properties"], value, where, enum_numbers, found)
    elif kind == "object":
        if not isinstance(value, dict):
            found.append(_wrong(where, "an object", value))
            return
        for key, item in value.items():
            item_spec = spec.get("additionalProperties", {})
            _check(schemas, item_spec, item, f"{where}.{key}", enum_numbers, found)
    elif kind == "array":
        if not isinstance(value, list):
            found.append(_wrong(where, "a list", value))
            return
        for index, item in enumerate(value):
            _check(schemas, spec["items"], item, f"{where}[{index}]", enum_numbers, found)
    elif not _scalar_fits(spec, value, enum_numbers):
        found.append(_wrong(where, _describe(spec), value))


def _check_message(
    schemas: dict, properties: dict, value: Any, where: str, enum_numbers: bool, found: list[str]
) -> None:
    if not isinstance(value, dict):
        found.append(_wrong(where, "an object", value))
        return
    place = where or "the request body"
    for key in sorted(value.keys() - properties.keys()):
        found.append(f"Unknown name \"{key}\" at '{place}': Cannot find field.")
    for key, spec in properties.items():
        path = f"{where}.{key}" if where else key
        if key in value:
            _check(schemas, spec, value[key], path, enum_numbers, found)
        elif spec.get("description", "").startswith("Required."):
            found.append(f"Field: {path}; Message: Required field is not set.")


def _scalar_fits(spec: dict, value: Any, enum_numbers: bool) -> bool:
    kind = spec.get("type")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string" and "enum" in spec:
        if isinstance(value, int) and not isinstance(value, bool):
            return enum_numbers
        return value in spec["enum"]
    if kind == "string" and spec.get("format") in INT64_FORMATS:
        # proto3 JSON sends 64-bit integers as strings, and accepts numbers too.
        return isinstance(value, int) or (isinstance(value, str) and _is_integer(value))
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return (number and float(value).is_integer()) or (
            isinstance(value, str) and _is_integer(value)
        )
    if kind == "number":
        return number or (isinstance(value, str) and _is_number(value))
    if kind == "boolean":
        return isinstance(value, bool)
    return kind == "any"


def _is_integer(text: str) -> bool:
    return text.removeprefix("-").isdigit()


def _is_number(text: str) -> bool:
    """proto3 JSON also allows numbers as strings, "NaN" and "Infinity" among them."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _describe(spec: dict) -> str:
    if "enum" in spec:
        return "one of " + ", ".join(spec["enum"])
    return f"a {spec.get('type')}" + (f" ({spec['format']})" if "format" in spec else "")


def _wrong(where: str, expected: str, value: Any) -> str:
    shown = json.dumps(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"Invalid value at '{where or 'the request body'}': expected {expected}, got {shown}"
