"""Error responses: small JSON bodies that never echo what the client sent.

FastAPI's default 422 handler returns each error together with the input that caused
it. That copies request data into responses, grows with the body, and fails outright
when the input holds NaN or Infinity (Python's JSON parser accepts them, the encoder
refuses them): the client gets a 500 and uvicorn closes the keep-alive connection, so
the client's next request on it fails as well. Every handler here answers with
`{"error": ..., "detail": [...]}`, built only from field locations and messages,
capped in count and length.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from api.predictor import UnscorableInstancesError

MAX_ERRORS = 20
_MAX_MESSAGE = 200
# Locations include the keys a client sent (an unexpected field is named by its key).
_MAX_LOCATION_PART = 64
_WHOLE_BODY = 'expected a JSON object with an "instances" list, sent as application/json'


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(UnscorableInstancesError, _unscorable_instances)
    app.add_exception_handler(HTTPException, _http_error)
    # Starlette sends this answer and then re-raises, so uvicorn still logs the traceback.
    app.add_exception_handler(Exception, _internal_error)


def error_response(
    status_code: int,
    error: str,
    detail: list[dict[str, str]] | None = None,
    *,
    omitted: int = 0,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": error}
    if detail is not None:
        body["detail"] = detail
    if omitted:
        body["omitted"] = omitted
    return JSONResponse(body, status_code=status_code, headers=headers)


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    return error_response(
        422,
        "invalid request",
        [_describe(error) for error in errors[:MAX_ERRORS]],
        omitted=max(0, len(errors) - MAX_ERRORS),
    )


async def _unscorable_instances(request: Request, exc: UnscorableInstancesError) -> JSONResponse:
    message = "the model gives no finite scores for this instance; are its values far out of range?"
    return error_response(
        422,
        "invalid request",
        [{"loc": f"instances.{index}", "msg": message} for index in exc.indices[:MAX_ERRORS]],
        omitted=max(0, len(exc.indices) - MAX_ERRORS),
    )


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return error_response(exc.status_code, _clip(str(exc.detail)), headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(500, "internal server error")


def _describe(error: dict[str, Any]) -> dict[str, str]:
    """An error's location and message, and never its `input`."""
    location = list(error.get("loc", ()))
    if location[:1] == ["body"]:
        location = location[1:]
    if error.get("type") == "json_invalid":
        # FastAPI puts the character offset where parsing stopped in the location.
        reason = error.get("ctx", {}).get("error", "malformed")
        where = f" at character {location[0]}" if location else ""
        return {"loc": "body", "msg": _clip(f"invalid JSON: {reason}{where}")}
    if not location:
        # Also what a body sent without a JSON content type looks like after FastAPI.
        return {"loc": "body", "msg": _WHOLE_BODY}
    path = ".".join(_clip(str(part), _MAX_LOCATION_PART) for part in location)
    return {"loc": path, "msg": _clip(str(error.get("msg", "invalid value")))}


def _clip(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
