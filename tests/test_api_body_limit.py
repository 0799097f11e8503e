import asyncio
import json

import pytest

from api.body_limit import BodyLimitMiddleware

LIMIT = 1000


class Recorder:
    """An ASGI app that records the body it was given and answers 200."""

    def __init__(self):
        self.body = None

    async def __call__(self, scope, receive, send):
        message = await receive()
        self.body = message["body"]
        assert message["more_body"] is False
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _scope(headers=()):
    return {"type": "http", "method": "POST", "path": "/predict", "headers": list(headers)}


def _run(app, scope, receive):
    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(BodyLimitMiddleware(app, max_body_bytes=LIMIT)(scope, receive, send))
    return sent


def _chunks(*chunks):
    """A receive callable yielding `chunks` as one streamed body, and counting calls."""
    pending = list(chunks)

    async def receive():
        receive.calls += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    receive.calls = 0
    return receive


def _status_and_error(sent):
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    return sent[0]["status"], body["error"]


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    app = Recorder()

    async def receive():
        pytest.fail("the body was read")

    sent = _run(app, _scope([(b"content-length", str(LIMIT + 1).encode())]), receive)

    assert _status_and_error(sent) == (
        413,
        f"request body is larger than the limit of {LIMIT} bytes",
    )
    assert app.body is None


def test_a_streamed_body_is_refused_once_it_passes_the_limit():
    app = Recorder()
    receive = _chunks(*[b"x" * 300] * 100)

    sent = _run(app, _scope(), receive)

    assert _status_and_error(sent)[0] == 413
    assert receive.calls == 4  # 1200 bytes read of 30000 sent
    assert app.body is None


def test_a_body_within_the_limit_reaches_the_app_whole():
    app = Recorder()

    sent = _run(app, _scope([(b"content-length", b"1000")]), _chunks(b"a" * 400, b"b" * 600))

    assert sent[0]["status"] == 200
    assert app.body == b"a" * 400 + b"b" * 600


def test_a_malformed_length_falls_back_to_counting():
    app = Recorder()

    sent = _run(app, _scope([(b"content-length", b"ten")]), _chunks(b"x" * (LIMIT + 1)))

    assert _status_and_error(sent)[0] == 413


def test_a_client_that_leaves_mid_body_gets_nothing():
    app = Recorder()
    messages = [
        {"type": "http.request", "body": b"x", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive():
        return messages.pop(0)

    assert _run(app, _scope(), receive) == []
    assert app.body is None


def test_after_the_body_the_app_hears_the_disconnect():
    heard = []

    async def app(scope, receive, send):
        heard.append(await receive())
        heard.append(await receive())

    messages = [
        {"type": "http.request", "body": b"{}", "more_body": False},
        {"type": "http.disconnect"},
    ]

    async def receive():
        return messages.pop(0)

    _run(app, _scope(), receive)

    assert [message["type"] for message in heard] == ["http.request", "http.disconnect"]


def test_lifespan_messages_pass_through():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    async def receive():
        pytest.fail("lifespan was consumed by the middleware")

    _run(app, {"type": "lifespan"}, receive)

    assert seen == ["lifespan"]
