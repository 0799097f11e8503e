"""The request, response and error types every API handler of the double shares.

Errors leave the double the way Google's JSON APIs send them, so client libraries
raise the same exception classes (NotFound, BadRequest, ...) they raise in production:

    {"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

# google.rpc.Code names for the HTTP statuses the handlers use.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
}


def same_etag(sent: str | None, current: str) -> bool:
    """Whether a client's etag is the current one.

    Etags are bytes sent as base64, and gcloud re-encodes them URL-safe ("-_" for
    "+/"), so they are compared as bytes, never as text.
    """
    if sent is None:
        return True

    def raw(etag: str) -> bytes:
        return base64.urlsafe_b64decode(etag.replace("+", "-").replace("/", "_"))

    try:
        return raw(sent) == raw(current)
    except ValueError:
        return False


class ApiError(Exception):
    """Raised by a handler to answer with a Google-style error document.

    `status` names the google.rpc.Code where the HTTP code alone does not tell it
    (409 is ALREADY_EXISTS, or ABORTED for a concurrent change).
    """

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS_NAMES.get(code, "UNKNOWN")

    def response(self) -> Response:
        return Response.json(
            {"error": {"code": self.code, "message": self.message, "status": self.status}},
            status=self.code,
        )


@dataclass(frozen=True)
class Request:
    method: str
    host: str  # as the client addressed it, e.g. "aiplatform.googleapis.test" or "127.0.0.1:8123"
    path: str  # still percent-encoded: storage object names hide "/" as %2F
    query: dict[str, str]
    headers: Message
    body: bytes

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as error:
            raise ApiError(400, f"Invalid JSON payload received. {error}") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, document: Any, status: int = 200) -> Response:
        body = json.dumps(document, indent=2).encode()
        return cls(status, body, {"Content-Type": "application/json; charset=UTF-8"})


def match_route(routes: dict[str, re.Pattern[str]], path: str) -> tuple[str, re.Match[str] | None]:
    """The name of the first of `routes` that matches all of `path`, and its match."""
    for name, pattern in routes.items():
        if match := pattern.fullmatch(path):
            return name, match
    return "", None
