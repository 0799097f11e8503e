"""The request, response and error types every API handler of the double shares.

Errors leave the double the way Google's JSON APIs send them, so client libraries
raise the same exception classes (NotFound, BadRequest, ...) they raise in production:

    {"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}
"""

from __future__ import annotations

import base64
import json
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
    """Raised by a handler to answer with a Google-style error document."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def response(self) -> Response:
        status = STATUS_NAMES.get(self.code, "UNKNOWN")
        return Response.json(
            {"error": {"code": self.code, "message": self.message, "status": status}},
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
