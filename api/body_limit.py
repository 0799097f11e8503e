"""Refuses request bodies larger than MAX_BODY_BYTES before they are read.

A declared Content-Length over the limit is answered with 413 before any of the body
is asked for (a client that sent `Expect: 100-continue` never sends it). A body with
no declared length (chunked) is buffered only up to the limit, then refused. Either
way the application never sees an oversized body; uvicorn discards what the client
still sends, so the connection stays usable.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._refuse(scope, receive, send)
            return

        # The predict route needs the whole body anyway, so reading it here costs no
        # extra memory and lets the limit hold however the body is framed.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                # Later calls are the application waiting for the client to disconnect.
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, f"request body is larger than the limit of {self.max_body_bytes} bytes"
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                # uvicorn rejects a malformed length itself; if one gets here, the
                # streaming count below still enforces the limit.
                return None
    return None
