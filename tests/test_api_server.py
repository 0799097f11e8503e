"""The API behind a real uvicorn server, over one keep-alive connection.

In-process clients cannot show what matters here: after a 500, uvicorn closes the
connection, so a client's next request on it fails even if it was valid. No bad
request may cost the client its connection.
"""

import http.client
import json

import pytest

from api.main import create_app
from api.settings import Settings
from tests.api_model_fixture import VALID_INSTANCE, serving

pytest_plugins = ["tests.api_model_fixture"]

LIMIT = 64_000
MARKER = "Atlantis-5f0c"


@pytest.fixture(scope="module")
def port(api_model_dir):
    settings = Settings(model_dir=api_model_dir, max_batch=8, max_body_bytes=LIMIT)
    with serving(create_app(settings)) as listening:
        yield listening


def _json(instances, **extra):
    return json.dumps({"instances": instances, **extra}).encode()


def _oversized_chunks():
    # No Content-Length: the limit has to hold while the body streams in.
    for _ in range(4):
        yield json.dumps({MARKER: "x" * (LIMIT // 2)}).encode()


BAD_REQUESTS = [
    ("NaN", b'{"instances": [{"bill_length_mm": NaN}]}', "NaN", 422),
    (
        "Infinity",
        _json([VALID_INSTANCE]).replace(b"46.5", b"-Infinity"),
        "Infinity",
        422,
    ),
    ("malformed JSON", b'{"instances": [{"island": "' + MARKER.encode(), MARKER, 422),
    ("wrong type", _json([{**VALID_INSTANCE, "year": MARKER}]), MARKER, 422),
    ("unknown category", _json([{**VALID_INSTANCE, "island": MARKER}]), MARKER, 422),
    ("extra field", _json([{**VALID_INSTANCE, "colour": MARKER}]), MARKER, 422),
    ("empty batch", _json([], parameters={"note": MARKER}), MARKER, 422),
    ("batch too large", _json([{**VALID_INSTANCE, "island": MARKER}] * 9), MARKER, 422),
    ("body too large", _json([{**VALID_INSTANCE, "island": MARKER * 10_000}]), MARKER, 413),
    ("body too large, chunked", _oversized_chunks(), MARKER, 413),
]


def test_bad_requests_never_cost_the_connection(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(body):
        connection.request("POST", "/predict", body, {"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()

    connection.request("GET", "/health")
    assert connection.getresponse().read()
    opened = connection.sock

    for name, body, sent, expected_status in BAD_REQUESTS:
        status, data = post(body)
        assert status == expected_status, (name, data)
        assert len(data) < 2048, name
        assert sent.encode() not in data, name
        assert json.loads(data)["error"], name
        # http.client drops its socket when the server announces it is closing.
        assert connection.sock is opened, f"the connection was closed after: {name}"

    status, data = post(_json([VALID_INSTANCE]))

    assert status == 200, data
    assert json.loads(data)["predictions"][0]["label"] == "Gentoo"
    assert connection.sock is opened
    connection.close()
