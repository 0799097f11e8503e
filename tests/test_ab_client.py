"""The A/B client against a real Redis and a loopback stand-in for the gateway
(auth/abclient/client.py): config checks, cache, exposure log, failures."""

import copy
import dataclasses
import hashlib
import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from auth.abclient import (
    ConfigError,
    ExperimentClient,
    ExperimentConfig,
    GatewayError,
    NoExperimentRunning,
    assign_variant,
    cache_key,
    canonical_request,
    hash_user,
)
from cloudbuild.experiment import published
from cloudbuild.preflight.serving import free_port
from tests.redis_server import RedisServer

pytest_plugins = ["tests.redis_server"]

API_KEY = "test-api-key"
CONTROL_COMMIT = "3f2a1b4c" * 5
TREATMENT_COMMIT = "9a8b7c6d" * 5
NEWER_COMMIT = "0123abcd" * 5
PUBLISHER_COMMIT = "5e6f7a8b" * 5
GENTOO = {"island": "Biscoe", "flipper_length_mm": 217, "body_mass_g": 5200, "sex": "female"}
ADELIE = {"island": "Dream", "flipper_length_mm": 181, "body_mass_g": 3700, "sex": "male"}


def jwt_for(audience: str) -> str:
    """A stand-in for a signed JWT; the fake gateway checks the audience it names."""
    return f"jwt-for:{audience}"


class FakeGateway:
    """A loopback stand-in for ESPv2 and the API behind it.

    It checks both credentials as the gateway does, answers /variants/<name>/predict
    like the API (a label per instance and the model's commit), and records each
    request, so tests can count what reached it.
    """

    def __init__(self) -> None:
        self.commits = {"control": CONTROL_COMMIT, "treatment": TREATMENT_COMMIT}
        # An answer to give instead of the API's: a refusal, or something malformed.
        self.answer_instead: tuple[int, dict[str, Any]] | None = None
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # shutdown() waits up to one poll interval; the default half second per test adds up.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FakeGateway":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is visible

            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                gateway.requests.append(
                    {"path": self.path, "body": body, "client_port": self.client_address[1]}
                )
                self._answer(*gateway._respond(self.path, self.headers, body))

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: object) -> None:
                pass

        return Handler

    def _respond(self, path: str, headers: Any, body: str) -> tuple[int, dict[str, Any]]:
        if headers["x-api-key"] != API_KEY:
            return 401, {"code": 401, "message": "API key not valid. Please pass a valid API key."}
        if headers["authorization"] != f"Bearer {jwt_for(self.url)}":
            return 401, {"code": 401, "message": "Jwt issuer is not configured"}
        match = re.fullmatch(r"/variants/([a-z][a-z0-9-]*)/predict", path)
        if match is None or match[1] not in self.commits:
            return 404, {"code": 404, "message": "The current request is not defined by this API."}
        if self.answer_instead is not None:
            return self.answer_instead
        instances = json.loads(body)["instances"]
        predictions = [
            {"label": "Gentoo" if item["flipper_length_mm"] > 205 else "Adelie"}
            for item in instances
        ]
        model = {"commit": self.commits[match[1]], "branch": match[1]}
        return 200, {"predictions": predictions, "model": model}


def config_data(gateway_url: str, **commits: str) -> dict[str, Any]:
    """The published config of a 50/50 experiment, as in the README."""
    branches = {"control": "main", "treatment": "feature/bigger-c"}
    model_commits = {"control": CONTROL_COMMIT, "treatment": TREATMENT_COMMIT} | commits
    return {
        "schema_version": 1,
        "experiment": "bigger-c",
        "salt": "bigger-c-2026-11",
        "control": "control",
        "gateway_url": gateway_url,
        "published_at": "2026-11-23T12:00:00Z",
        "published_from": {"branch": "main", "commit": PUBLISHER_COMMIT},
        "variants": [
            {
                "name": name,
                "branch": branch,
                "weight": 50,
                "route": f"/variants/{name}/predict",
                "url": f"{gateway_url}/variants/{name}/predict",
                "revision_tag": f"{branch.replace('/', '-')}-{model_commits[name][:6]}",
                "model_commit": model_commits[name],
                "model_branch": branch,
            }
            for name, branch in branches.items()
        ],
    }


def user_in(variant: str, config: ExperimentConfig, skip: int = 0) -> str:
    """A user id the experiment assigns to `variant` (the skip-th one found)."""
    found = (
        user
        for user in (f"user-{index}" for index in range(1000))
        if assign_variant(config.salt, user, config.weights) == variant
    )
    for _ in range(skip):
        next(found)
    return next(found)


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    with FakeGateway() as running:
        yield running


@pytest.fixture
def config(gateway: FakeGateway) -> ExperimentConfig:
    return ExperimentConfig.from_dict(config_data(gateway.url))


def make_client(config: ExperimentConfig, cache: str | redis.Redis | None, **options: Any):
    options.setdefault("exposure_log", io.StringIO())
    return ExperimentClient(
        config,
        api_key=options.pop("api_key", API_KEY),
        token_for_audience=options.pop("token_for_audience", jwt_for),
        redis=cache,
        timeout_seconds=5,
        **options,
    )


# --- config --------------------------------------------------------------------------


def test_config_reads_the_published_format(gateway: FakeGateway, tmp_path: Path) -> None:
    data = config_data(gateway.url)
    data["added_by_a_newer_publisher"] = {"ignored": True}
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(data))
    from_file = ExperimentConfig.from_file(path)
    assert from_file == ExperimentConfig.from_json(json.dumps(data))
    assert from_file == ExperimentConfig.from_dict(data)
    assert from_file.weights == {"control": 50, "treatment": 50}
    assert from_file.variant("treatment").model_commit == TREATMENT_COMMIT
    assert from_file.published_at == datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert from_file.published_from.commit == PUBLISHER_COMMIT


def test_config_reads_what_the_auth_pipeline_publishes() -> None:
    # The publisher (cloudbuild/experiment.py) and this reader are two ends of one
    # format: a change to either that the other cannot follow fails here.
    resolved = {
        "experiment": "bigger-c",
        "salt": "bigger-c-2026-11",
        "control": "control",
        "variants": [
            {
                "name": name,
                "branch": branch,
                "weight": 50,
                "revision_tag": branch.replace("/", "-"),
                "backend_url": f"https://api-{name}.example",
                "model_commit": commit,
                "model_branch": branch,
            }
            for name, branch, commit in (
                ("control", "main", CONTROL_COMMIT),
                ("treatment", "feature/bigger-c", TREATMENT_COMMIT),
            )
        ],
    }
    gateway_url = "https://penguins-gateway-abc123-ew.a.run.app"
    document = published(resolved, gateway_url + "/", "main", PUBLISHER_COMMIT)
    config = ExperimentConfig.from_json(json.dumps(document))
    assert config.gateway_url == gateway_url
    assert config.weights == {"control": 50, "treatment": 50}
    assert config.variant("treatment").url == f"{gateway_url}/variants/treatment/predict"
    assert config.variant("treatment").model_commit == TREATMENT_COMMIT
    with pytest.raises(NoExperimentRunning, match="no experiment is running"):
        ExperimentConfig.from_dict(published(None, gateway_url, "main", PUBLISHER_COMMIT))


def test_config_is_immutable(config: ExperimentConfig) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.salt = "another-salt"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.variants[0].weight = 100  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.weights["control"] = 100  # type: ignore[index]
    assert isinstance(config.variants, tuple)


def _set(path: tuple[Any, ...], value: Any):
    def change(data: dict[str, Any]) -> None:
        *parents, last = path
        for key in parents:
            data = data[key]
        data[last] = value

    return change


def _drop(key: str):
    return lambda data: data.pop(key)


def _duplicate_first_variant(data: dict[str, Any]) -> None:
    data["variants"][1] = dict(data["variants"][0], weight=50)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set(("schema_version",), 2), "schema_version: this client reads version 1, got 2"),
        (_drop("salt"), "salt: missing"),
        (_set(("experiment",), ""), "experiment: must be a non-empty string"),
        (_set(("variants",), []), "variants: empty: no experiment is running"),
        (_set(("variants",), {"control": 100}), "variants: must be a non-empty list"),
        (_set(("variants", 1), "treatment"), r"variants\[1\]: must be a JSON object"),
        (_set(("variants", 1, "weight"), 120), r"variants\[1\].weight: weight must be an integer"),
        (_set(("variants", 1, "weight"), 49), "variants: weights must add up to 100, got 99"),
        (_set(("variants", 0, "name"), "Control"), r"variants\[0\].name: variant name must match"),
        (_duplicate_first_variant, "variants: names must be unique, repeated: control"),
        (_set(("variants", 1, "model_commit"), "9a8b7c"), r"variants\[1\].model_commit: must be"),
        (_set(("variants", 1, "route"), "/predict"), r"variants\[1\].route: must be /variants/"),
        (_set(("variants", 1, "url"), "https://elsewhere"), r"variants\[1\].url: must be gateway"),
        (_set(("control",), "baseline"), "control: 'baseline' is not one of the variants"),
        (_set(("gateway_url",), "http://gateway.example"), "gateway_url: must be an https origin"),
        (_set(("gateway_url",), "https://gateway.example/"), "gateway_url: must be an https"),
        (_set(("published_at",), "2026-11-23 12:00"), "published_at: must be ISO-8601 UTC"),
        (_set(("published_from", "commit"), "HEAD"), "published_from.commit: must be a full git"),
    ],
)
def test_config_errors_name_the_field(gateway: FakeGateway, change, message: str) -> None:
    data = copy.deepcopy(config_data(gateway.url))
    change(data)
    with pytest.raises(ConfigError, match=f"^{message}"):
        ExperimentConfig.from_dict(data)


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "experiment.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: not valid JSON"):
        ExperimentConfig.from_file(path)
    with pytest.raises(ConfigError, match="missing.json: "):
        ExperimentConfig.from_file(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="^config: must be a JSON object, got list"):
        ExperimentConfig.from_json("[]")


# --- cache -----------------------------------------------------------------------------


def test_a_miss_calls_the_gateway_then_the_same_request_is_a_hit(
    gateway: FakeGateway, config: ExperimentConfig, redis_server: RedisServer, redis_client
) -> None:
    client = make_client(config, redis_server.url)
    user = user_in("treatment", config)
    first = client.predict(user, [GENTOO, ADELIE])
    second = client.predict(user, [GENTOO, ADELIE])
    assert len(gateway.requests) == 1
    assert gateway.requests[0]["path"] == "/variants/treatment/predict"
    assert [(answer.variant, answer.model_commit, answer.cached) for answer in (first, second)] == [
        ("treatment", TREATMENT_COMMIT, False),
        ("treatment", TREATMENT_COMMIT, True),
    ]
    assert second.body == first.body
    assert [item["label"] for item in first.body["predictions"]] == ["Gentoo", "Adelie"]
    key = cache_key("bigger-c", "treatment", TREATMENT_COMMIT, canonical_request([GENTOO, ADELIE]))
    assert json.loads(redis_client.get(key)) == first.body
    assert 299_000 < redis_client.pttl(key) <= 300_000  # the default TTL, 300 s


def test_the_cache_is_shared_by_users_of_a_variant_not_across_variants(
    gateway: FakeGateway, config: ExperimentConfig, redis_client: redis.Redis
) -> None:
    client = make_client(config, redis_client)  # a redis.Redis is used as given
    assert not client.predict(user_in("control", config), [GENTOO]).cached
    assert client.predict(user_in("control", config, skip=1), [GENTOO]).cached
    assert not client.predict(user_in("treatment", config), [GENTOO]).cached
    assert [request["path"] for request in gateway.requests] == [
        "/variants/control/predict",
        "/variants/treatment/predict",
    ]


def test_answers_expire_after_the_ttl(
    gateway: FakeGateway, config: ExperimentConfig, redis_server: RedisServer, redis_client
) -> None:
    client = make_client(config, redis_server.url, cache_ttl_seconds=1)
    user = user_in("control", config)
    client.predict(user, [GENTOO])
    key = cache_key("bigger-c", "control", CONTROL_COMMIT, canonical_request([GENTOO]))
    assert 0 < redis_client.pttl(key) <= 1000
    deadline = time.monotonic() + 3
    while redis_client.exists(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not redis_client.exists(key)
    assert not client.predict(user, [GENTOO]).cached
    assert len(gateway.requests) == 2


def test_a_new_model_commit_never_gets_the_old_answer(
    gateway: FakeGateway, config: ExperimentConfig, redis_server: RedisServer, redis_client
) -> None:
    user = user_in("treatment", config)
    make_client(config, redis_server.url).predict(user, [GENTOO])
    gateway.commits["treatment"] = NEWER_COMMIT  # the branch retrained and redeployed
    newer = ExperimentConfig.from_dict(config_data(gateway.url, treatment=NEWER_COMMIT))
    answer = make_client(newer, redis_server.url).predict(user, [GENTOO])
    assert (answer.model_commit, answer.cached) == (NEWER_COMMIT, False)
    assert len(gateway.requests) == 2
    assert len(redis_client.keys("abclient:v1:bigger-c:treatment:*")) == 2


def test_an_answer_from_another_commit_than_the_config_says_is_not_cached(
    gateway: FakeGateway,
    config: ExperimentConfig,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway.commits["treatment"] = NEWER_COMMIT  # deployed, config not yet republished
    client = make_client(config, redis_server.url)
    user = user_in("treatment", config)
    with caplog.at_level(logging.WARNING, logger="abclient"):
        answers = [client.predict(user, [GENTOO]) for _ in range(2)]
    assert [(answer.model_commit, answer.cached) for answer in answers] == [
        (NEWER_COMMIT, False),
        (NEWER_COMMIT, False),
    ]
    assert len(gateway.requests) == 2
    assert redis_client.dbsize() == 0
    stale = [record for record in caplog.records if "config is stale" in record.getMessage()]
    assert len(stale) == 2
    assert NEWER_COMMIT in stale[0].getMessage() and TREATMENT_COMMIT in stale[0].getMessage()


def test_the_canonical_request_ignores_key_order(
    gateway: FakeGateway, config: ExperimentConfig, redis_server: RedisServer
) -> None:
    client = make_client(config, redis_server.url)
    user = user_in("control", config)
    shuffled = dict(reversed(list(GENTOO.items())))
    assert not client.predict(user, [GENTOO]).cached
    assert client.predict(user, [shuffled]).cached
    # The gateway got the canonical text itself: sorted keys, no spaces, UTF-8 as is.
    assert gateway.requests[0]["body"] == (
        '{"instances":[{"body_mass_g":5200,"flipper_length_mm":217,'
        '"island":"Biscoe","sex":"female"}]}'
    )
    request_hash = hashlib.sha256(gateway.requests[0]["body"].encode()).hexdigest()
    assert cache_key("bigger-c", "control", CONTROL_COMMIT, canonical_request([shuffled])) == (
        f"abclient:v1:bigger-c:control:{CONTROL_COMMIT}:{request_hash}"
    )
    assert canonical_request([{"island": "Biscoe", "note": "ü"}]) == (
        '{"instances":[{"island":"Biscoe","note":"ü"}]}'
    )


def test_the_cache_key_example_of_the_porting_spec() -> None:
    canonical = canonical_request([{"island": "Biscoe", "bill_length_mm": 46.5, "sex": None}])
    assert canonical == '{"instances":[{"bill_length_mm":46.5,"island":"Biscoe","sex":null}]}'
    assert cache_key("bigger-c", "treatment", TREATMENT_COMMIT, canonical) == (
        f"abclient:v1:bigger-c:treatment:{TREATMENT_COMMIT}:"
        "2f6e44b3e601f53d0b991a42b8e89c70fa89563f9c44830ecfb328b5bc53aabd"
    )


# --- when things fail --------------------------------------------------------------------


def test_redis_down_still_answers_quickly_and_says_why(
    gateway: FakeGateway, config: ExperimentConfig, caplog: pytest.LogCaptureFixture
) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    client = make_client(config, closed)
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="abclient"):
        answers = [client.predict(user_in("control", config), [GENTOO]) for _ in range(2)]
    assert time.monotonic() - started < 1.0
    assert [answer.cached for answer in answers] == [False, False]
    assert answers[0].body["predictions"] == [{"label": "Gentoo"}]
    assert len(gateway.requests) == 2
    # One warning with the reason; then, for the next 5 s, skips noted at debug level.
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "abclient"]
    assert logged[0][0] == "WARNING"
    assert "cache skipped: Redis read failed (ConnectionError" in logged[0][1]
    assert "leaving Redis alone for 5 s" in logged[0][1]
    assert len(logged) == 4  # the first call's write and the second call's read and write
    assert all(level == "DEBUG" and "cache skipped: Redis failed" in m for level, m in logged[1:])


class SilentServer:
    """A TCP server that accepts connections and never answers: a Redis that hangs."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self._socket.getsockname()[1]}/0"

    def _accept(self) -> None:
        while True:
            try:
                self.connections.append(self._socket.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self._socket.close()
        for connection in self.connections:
            connection.close()


def test_a_hanging_redis_costs_one_short_timeout_then_is_left_alone(
    gateway: FakeGateway, config: ExperimentConfig, caplog: pytest.LogCaptureFixture
) -> None:
    hanging = SilentServer()
    client = make_client(config, hanging.url, cache_retry_after_seconds=0.3)
    user = user_in("control", config)
    try:
        with caplog.at_level(logging.WARNING, logger="abclient"):
            started = time.monotonic()
            assert not client.predict(user, [GENTOO]).cached
            assert time.monotonic() - started < 0.5  # the 0.1 s socket timeout, no retries
            assert len(hanging.connections) == 1
            assert not client.predict(user, [GENTOO]).cached  # within 0.3 s: Redis not asked
            assert len(hanging.connections) == 1
            time.sleep(0.35)
            assert not client.predict(user, [GENTOO]).cached  # after it: asked again
            assert len(hanging.connections) == 2
    finally:
        hanging.close()
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    assert all("cache skipped: Redis read failed (TimeoutError" in m for m in warnings)
    assert len(gateway.requests) == 3


def test_a_redis_that_stalls_mid_connection_is_not_waited_for(
    gateway: FakeGateway,
    config: ExperimentConfig,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(config, redis_server.url)
    user = user_in("control", config)
    client.predict(user, [GENTOO])  # opens the client's pooled connection
    # Redis stops answering every client for 0.4 s, on connections already open.
    redis_client.execute_command("CLIENT", "PAUSE", "400", "ALL")
    try:
        with caplog.at_level(logging.WARNING, logger="abclient"):
            started = time.monotonic()
            answer = client.predict(user, [GENTOO])
            elapsed = time.monotonic() - started
    finally:
        redis_client.ping()  # returns when the pause is over, so the next test finds Redis
    # One 0.1 s timeout, not the pause, and no retry that would outlast it.
    assert elapsed < 0.3
    assert not answer.cached
    assert len(gateway.requests) == 2
    assert ["TimeoutError" in record.getMessage() for record in caplog.records] == [True]


@pytest.mark.parametrize(
    ("options", "refusal", "status", "message"),
    [
        ({"api_key": "revoked-key"}, None, 401, "API key not valid"),
        ({"token_for_audience": lambda _: "jwt-for:wrong-audience"}, None, 401, "Jwt issuer"),
        ({}, (422, {"detail": [{"loc": ["body"], "msg": "bad"}]}), 422, '"msg": "bad"'),
        ({}, (429, {"code": 429, "message": "Quota exceeded"}), 429, "Quota exceeded"),
    ],
)
def test_a_refusal_raises_with_status_and_message_and_is_not_cached(
    gateway: FakeGateway,
    config: ExperimentConfig,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    options: dict[str, Any],
    refusal: tuple[int, dict[str, Any]] | None,
    status: int,
    message: str,
) -> None:
    gateway.answer_instead = refusal
    client = make_client(config, redis_server.url, **options)
    with pytest.raises(GatewayError, match=f"HTTP {status}: .*{re.escape(message)}") as raised:
        client.predict(user_in("control", config), [GENTOO])
    assert (raised.value.status, raised.value.variant) == (status, "control")
    assert message in raised.value.message
    assert redis_client.dbsize() == 0


def test_a_success_that_is_no_predict_answer_raises_and_is_not_cached(
    gateway: FakeGateway, config: ExperimentConfig, redis_client: redis.Redis
) -> None:
    gateway.answer_instead = (200, {"predictions": [], "model": "no commit here"})
    with pytest.raises(GatewayError, match="HTTP 200: not a predict answer"):
        make_client(config, redis_client).predict("user-1", [GENTOO])
    assert redis_client.dbsize() == 0


def test_a_token_callable_returning_nothing_is_a_clear_error(config: ExperimentConfig) -> None:
    with pytest.raises(TypeError, match="token_for_audience must return a JWT"):
        make_client(config, None, token_for_audience=lambda _: None).predict("user-1", [GENTOO])


def test_a_gateway_that_does_not_answer_raises_gateway_error(redis_server: RedisServer) -> None:
    config = ExperimentConfig.from_dict(config_data(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(GatewayError, match="no answer: ConnectError") as raised:
        make_client(config, redis_server.url).predict("user-1", [GENTOO])
    assert raised.value.status is None


def test_the_client_sends_bytes_tokens_and_reuses_its_connection(
    gateway: FakeGateway, config: ExperimentConfig
) -> None:
    audiences: list[str] = []

    def google_auth_style(audience: str) -> bytes:  # jwt.Credentials.token is bytes
        audiences.append(audience)
        return jwt_for(audience).encode()

    with make_client(config, None, token_for_audience=google_auth_style) as client:
        client.predict("user-1", [GENTOO])
        client.predict("user-1", [ADELIE])
    assert audiences == [gateway.url, gateway.url]
    assert len({request["client_port"] for request in gateway.requests}) == 1


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        ([], "non-empty list of objects"),
        ("not a list", "list of objects"),
        ([1, 2], "non-empty list of objects"),
        ([{"flipper_length_mm": float("nan")}], "cannot be sent as JSON"),
        ([{"when": datetime(2026, 1, 1)}], "cannot be sent as JSON"),
    ],
)
def test_instances_that_are_no_request_are_refused_before_anything_happens(
    gateway: FakeGateway, config: ExperimentConfig, instances: Any, message: str
) -> None:
    log = io.StringIO()
    with pytest.raises(ValueError, match=message):
        make_client(config, None, exposure_log=log).predict("user-1", instances)
    assert log.getvalue() == ""
    assert gateway.requests == []


# --- exposure log -------------------------------------------------------------------------


def test_one_exposure_line_per_prediction_with_the_hashed_user(
    gateway: FakeGateway, config: ExperimentConfig, redis_server: RedisServer
) -> None:
    log = io.StringIO()
    client = make_client(config, redis_server.url, exposure_log=log)
    users = [user_in("control", config), user_in("treatment", config), user_in("control", config)]
    before = datetime.now(UTC)
    answers = [client.predict(user, [GENTOO]) for user in users]
    lines = log.getvalue().splitlines()
    assert len(lines) == 3  # the third is a cache hit and is logged all the same
    assert answers[2].cached
    for line, user, answer in zip(lines, users, answers, strict=True):
        event = json.loads(line)
        assert list(event) == ["time", "experiment", "variant", "model_commit", "user"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["time"])
        moment = datetime.fromisoformat(event["time"])
        assert before.replace(microsecond=0) <= moment <= datetime.now(UTC)
        assert event["experiment"] == "bigger-c"
        assert event["variant"] == answer.variant
        assert event["model_commit"] == config.variant(answer.variant).model_commit
        assert event["user"] == hash_user(config.salt, user)
        assert user not in line


def test_an_exposure_log_path_is_appended_to(
    gateway: FakeGateway, config: ExperimentConfig, tmp_path: Path
) -> None:
    path = tmp_path / "exposures.jsonl"
    path.write_text('{"earlier": "line"}\n')
    client = make_client(config, None, exposure_log=path)
    client.predict("user-1", [GENTOO])
    client.predict("user-2", [GENTOO])
    lines = path.read_text().splitlines()
    assert lines[0] == '{"earlier": "line"}'
    assert [json.loads(line)["user"] for line in lines[1:]] == [
        hash_user(config.salt, "user-1"),
        hash_user(config.salt, "user-2"),
    ]
