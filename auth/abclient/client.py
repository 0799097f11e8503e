"""The experiment config a website reads, and the client that sends its predictions.

The auth pipeline publishes one JSON config per experiment (schema_version 1, see
auth/abclient/README.md). ExperimentConfig parses and checks it; ExperimentClient
then, for each prediction a site asks for:

1. assigns the user to a variant (assignment.assign_variant, sticky per user);
2. writes one exposure event, a JSON line with the hashed user id, so the analysis
   (`python -m cloudbuild ab-report`) knows who saw which variant;
3. answers from Redis if the same request was answered by the same model commit
   within the TTL;
4. otherwise POSTs to the variant's gateway route with an API key and a JWT, and
   caches the answer when it came from the model commit the config names.

Redis is an optimisation the site must never depend on: when it is down or slow
the client calls the gateway, logs (logger "abclient") why the cache was skipped,
and leaves Redis alone for a few seconds so a dead cache costs one timeout per few
seconds, not one per request.

The package uses relative imports only, so a site can copy the folder anywhere.
"""

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Self, TextIO
from urllib.parse import urlsplit

import httpx
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from .assignment import TOTAL_WEIGHT, assign_variant, check_variant_name, check_weight, hash_user

LOG = logging.getLogger("abclient")

SCHEMA_VERSION = 1
CACHE_KEY_PREFIX = "abclient:v1"
# A cache is only worth asking when it answers much faster than the gateway (tens of
# milliseconds at best); past this the site is better off calling through.
REDIS_TIMEOUT_SECONDS = 0.1

_COMMIT = re.compile(r"[0-9a-f]{40}")
# Plain http would send the API key and the JWT in the clear; it is allowed only to a
# gateway on this machine, which is what a local test or a port's test uses.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


# --- the config --------------------------------------------------------------------


class ConfigError(ValueError):
    """The experiment config cannot be used; the message starts with the offending field."""


class NoExperimentRunning(ConfigError):
    """The published document says no experiment runs: its variants are empty.

    The pipeline publishes that when auth/experiment.yaml declares none; a site then
    sends its predictions to the gateway's /predict, with no assignment to log.
    """


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm of the experiment: a branch's model behind its own gateway route."""

    name: str
    branch: str
    weight: int
    route: str
    url: str
    revision_tag: str
    model_commit: str
    model_branch: str


@dataclass(frozen=True, slots=True)
class PublishedFrom:
    """The commit of the repository whose pipeline published the config."""

    branch: str
    commit: str


@dataclass(frozen=True, slots=True)
class ExperimentConfig:
    """A published experiment, checked. Build it with from_dict, from_json or from_file.

    Frozen (variants are a tuple) so a client can share one config across threads and
    nothing can change the weights under an experiment that is running. Fields the
    schema does not know are ignored: a publisher may add information without breaking
    older clients, and changes that would break them bump schema_version.
    """

    schema_version: int
    experiment: str
    salt: str
    control: str
    gateway_url: str
    published_at: datetime
    published_from: PublishedFrom
    variants: tuple[Variant, ...]

    @property
    def weights(self) -> Mapping[str, int]:
        """Variant names to weights, in the order the config lists them (ties go to the first)."""
        return MappingProxyType({variant.name: variant.weight for variant in self.variants})

    def variant(self, name: str) -> Variant:
        """The variant called `name`; KeyError if the experiment has none."""
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(f"experiment {self.experiment!r} has no variant {name!r}")

    @classmethod
    def from_file(cls, path: str | PathLike[str]) -> Self:
        """Read and check a config file; errors name the file and the field."""
        try:
            text = Path(path).read_text(encoding="utf-8")
            return cls.from_json(text)
        except (OSError, ConfigError) as error:
            raise ConfigError(f"{path}: {error}") from error

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Parse and check a config from its JSON text."""
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ConfigError(f"not valid JSON: {error}") from error
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: object) -> Self:
        """Check a config already parsed from JSON; ConfigError names the first bad field."""
        top = _object(data, "config")
        version = _field(top, "schema_version", "")
        if isinstance(version, bool) or version != SCHEMA_VERSION:
            raise ConfigError(
                f"schema_version: this client reads version {SCHEMA_VERSION}, got {version!r}"
            )
        if top.get("variants") == []:
            raise NoExperimentRunning(
                "variants: empty: no experiment is running (auth/experiment.yaml declares "
                "none); send predictions to the gateway's /predict"
            )
        gateway_url = _gateway_url(_text(top, "gateway_url", ""))
        variants = tuple(
            _variant(item, f"variants[{index}]", gateway_url)
            for index, item in enumerate(_list(top, "variants", ""))
        )
        names = [variant.name for variant in variants]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"variants: names must be unique, repeated: {', '.join(duplicates)}")
        total = sum(variant.weight for variant in variants)
        if total != TOTAL_WEIGHT:
            raise ConfigError(f"variants: weights must add up to {TOTAL_WEIGHT}, got {total}")
        control = _text(top, "control", "")
        if control not in names:
            raise ConfigError(f"control: {control!r} is not one of the variants {names}")
        published_from = _object(_field(top, "published_from", ""), "published_from")
        return cls(
            schema_version=SCHEMA_VERSION,
            experiment=_text(top, "experiment", ""),
            salt=_text(top, "salt", ""),
            control=control,
            gateway_url=gateway_url,
            published_at=_utc_time(_text(top, "published_at", "")),
            published_from=PublishedFrom(
                branch=_text(published_from, "branch", "published_from."),
                commit=_commit(published_from, "commit", "published_from."),
            ),
            variants=variants,
        )


def _variant(data: object, path: str, gateway_url: str) -> Variant:
    item = _object(data, path)
    prefix = f"{path}."
    name = _field(item, "name", prefix)
    weight = _field(item, "weight", prefix)
    for key, check, value in (("name", check_variant_name, name), ("weight", check_weight, weight)):
        try:
            check(value)
        except ValueError as error:
            raise ConfigError(f"{prefix}{key}: {error}") from None
    # The gateway exposes each variant at a route derived from its name, and the JWT's
    # audience is the gateway URL: a url elsewhere means a config built by mistake.
    route = _text(item, "route", prefix)
    expected_route = f"/variants/{name}/predict"
    if route != expected_route:
        raise ConfigError(f"{prefix}route: must be {expected_route}, got {route!r}")
    url = _text(item, "url", prefix)
    if url != gateway_url + route:
        raise ConfigError(f"{prefix}url: must be gateway_url + route, {gateway_url + route!r}")
    return Variant(
        name=name,
        branch=_text(item, "branch", prefix),
        weight=weight,
        route=route,
        url=url,
        revision_tag=_text(item, "revision_tag", prefix),
        model_commit=_commit(item, "model_commit", prefix),
        model_branch=_text(item, "model_branch", prefix),
    )


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: must be a JSON object, got {type(value).__name__}")
    return value


def _field(data: Mapping[str, Any], key: str, prefix: str) -> Any:
    if key not in data:
        raise ConfigError(f"{prefix}{key}: missing")
    return data[key]


def _text(data: Mapping[str, Any], key: str, prefix: str) -> str:
    value = _field(data, key, prefix)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{prefix}{key}: must be a non-empty string, got {value!r}")
    return value


def _list(data: Mapping[str, Any], key: str, prefix: str) -> list[Any]:
    value = _field(data, key, prefix)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{prefix}{key}: must be a non-empty list, got {value!r}")
    return value


def _commit(data: Mapping[str, Any], key: str, prefix: str) -> str:
    value = _text(data, key, prefix)
    if not _COMMIT.fullmatch(value):
        raise ConfigError(f"{prefix}{key}: must be a full git commit (40 hex), got {value!r}")
    return value


def _gateway_url(url: str) -> str:
    # The URL is the JWT audience and must equal the gateway's configured audience to
    # the character, so it is taken as published, and only a bare origin is accepted.
    parts = urlsplit(url)
    loopback = parts.hostname in _LOOPBACK_HOSTS
    secure = parts.scheme == "https" or (parts.scheme == "http" and loopback)
    if not secure or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ConfigError(
            "gateway_url: must be an https origin such as https://gateway.example "
            f"(no path, no trailing slash; http only to a loopback host), got {url!r}"
        )
    return url


def _utc_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if not text.endswith("Z") or moment is None:
        raise ConfigError(f"published_at: must be ISO-8601 UTC ending in Z, got {text!r}")
    return moment


# --- what the client computes, specified for ports ----------------------------------


def canonical_request(instances: Sequence[Mapping[str, Any]]) -> str:
    """The predict request body, written one way only, so equal requests hash equally.

    Keys sorted at every level, no whitespace, UTF-8 as is; NaN and infinities are
    refused because JSON has no spelling for them. The client sends exactly this text.
    """
    try:
        return json.dumps(
            {"instances": instances},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"instances cannot be sent as JSON: {error}") from error


def cache_key(experiment: str, variant: str, model_commit: str, canonical: str) -> str:
    """The Redis key of one answer: abclient:v1:<experiment>:<variant>:<commit>:<sha256>.

    The model commit is part of the key, so once the config names a new model no
    answer from the old one can be served, whatever the TTL left on it.
    """
    request_hash = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{CACHE_KEY_PREFIX}:{experiment}:{variant}:{model_commit}:{request_hash}"


def exposure_event(
    config: ExperimentConfig, variant: Variant, user_id: str, moment: datetime
) -> dict[str, str]:
    """The line written when a user is assigned: who (hashed), what, when (UTC, Z)."""
    return {
        "time": moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "experiment": config.experiment,
        "variant": variant.name,
        "model_commit": variant.model_commit,
        "user": hash_user(config.salt, user_id),
    }


# --- the client ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prediction:
    """A gateway answer for one user. model_commit is the commit that made the answer."""

    variant: str
    model_commit: str
    body: dict[str, Any]
    cached: bool


class GatewayError(RuntimeError):
    """The gateway refused the request, failed, or answered something that is no prediction.

    status is the HTTP status, or None when no answer came (timeout, connection).
    """

    def __init__(self, variant: str, status: int | None, message: str) -> None:
        self.variant = variant
        self.status = status
        self.message = message
        answered = "no answer" if status is None else f"HTTP {status}"
        super().__init__(f"gateway, variant {variant!r}: {answered}: {message}")


TokenForAudience = Callable[[str], str | bytes]


class ExperimentClient:
    """Predictions for a website's users through the experiment's gateway routes.

    token_for_audience(audience) returns a JWT signed by the caller service account
    for that audience (the config's gateway_url); it is called once per gateway
    request, so it should cache tokens until they near expiry (google-auth's
    jwt.Credentials does). redis is a redis.Redis, a redis:// URL (which gets short
    timeouts and no retries), or None for no cache. exposure_log is a text stream or
    a file path to append JSON lines to. http, when given, is used and left open;
    otherwise the client owns one httpx.Client (close() or `with` closes it).
    Thread-safe: one client can serve all of a site's threads.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        *,
        api_key: str,
        token_for_audience: TokenForAudience,
        exposure_log: TextIO | str | PathLike[str],
        redis: redis_lib.Redis | str | None = None,
        cache_ttl_seconds: float = 300,
        http: httpx.Client | None = None,
        timeout_seconds: float = 10.0,
        cache_retry_after_seconds: float = 5.0,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be a non-empty string")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        self.config = config
        self._api_key = api_key
        self._token_for_audience = token_for_audience
        self._timeout = timeout_seconds
        self._exposures = _ExposureLog(exposure_log)
        self._cache = (
            None
            if redis is None
            else _ResponseCache(_redis_client(redis), cache_ttl_seconds, cache_retry_after_seconds)
        )
        self._owns_http = http is None
        self._http = httpx.Client(timeout=timeout_seconds) if http is None else http

    def predict(self, user_id: str, instances: Sequence[Mapping[str, Any]]) -> Prediction:
        """The prediction of the user's variant for `instances`, from the cache or the gateway.

        Raises ValueError for instances that are no list of objects, GatewayError when
        the gateway answers anything but success; Redis problems never raise.
        """
        # A str is a Sequence too (of one-character strings): refuse it by name.
        is_list = isinstance(instances, Sequence) and not isinstance(instances, str | bytes)
        if not is_list or not instances or not all(isinstance(i, Mapping) for i in instances):
            raise ValueError("instances must be a non-empty list of objects")
        canonical = canonical_request(instances)
        variant = self.config.variant(
            assign_variant(self.config.salt, user_id, self.config.weights)
        )
        # Logged on assignment, before the answer: analysing users by the variant they
        # were assigned (intent to treat) stays unbiased even if one variant fails more.
        self._exposures.write(exposure_event(self.config, variant, user_id, datetime.now(UTC)))
        key = cache_key(self.config.experiment, variant.name, variant.model_commit, canonical)
        if self._cache is not None:
            cached = self._cache.get(key)
            if cached is not None:
                return Prediction(variant.name, variant.model_commit, cached, cached=True)
        status, body = self._call_gateway(variant, canonical)
        answered_commit = body["model"]["commit"]
        if answered_commit != variant.model_commit:
            LOG.warning(
                "experiment %s: config is stale: variant %s answered with model commit %s, "
                "the config published at %s says %s; answer not cached",
                self.config.experiment,
                variant.name,
                answered_commit,
                self.config.published_at.isoformat(),
                variant.model_commit,
            )
        elif status == httpx.codes.OK and self._cache is not None:
            self._cache.put(key, body)
        return Prediction(variant.name, answered_commit, body, cached=False)

    def close(self) -> None:
        """Close the HTTP client if this client made it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _call_gateway(self, variant: Variant, canonical: str) -> tuple[int, dict[str, Any]]:
        token = self._token_for_audience(self.config.gateway_url)
        if isinstance(token, bytes):  # google-auth's jwt.Credentials.token is bytes
            token = token.decode("ascii")
        if not isinstance(token, str) or not token:
            raise TypeError(f"token_for_audience must return a JWT (str or bytes), got {token!r}")
        headers = {
            "content-type": "application/json",
            "x-api-key": self._api_key,
            "authorization": f"Bearer {token}",
        }
        try:
            response = self._http.post(
                variant.url, content=canonical.encode(), headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as error:
            raise GatewayError(variant.name, None, f"{type(error).__name__}: {error}") from error
        if not response.is_success:
            raise GatewayError(variant.name, response.status_code, _gateway_message(response))
        body = _predict_answer(response)
        if body is None:
            raise GatewayError(
                variant.name, response.status_code, f"not a predict answer: {response.text[:200]!r}"
            )
        return response.status_code, body


def _predict_answer(response: httpx.Response) -> dict[str, Any] | None:
    """The body, if it has the shape of the API's predict answer; else None."""
    try:
        body = response.json()
    except ValueError:
        return None
    model = body.get("model") if isinstance(body, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("commit"), str):
        return None
    return body if isinstance(body.get("predictions"), list) else None


def _gateway_message(response: httpx.Response) -> str:
    """What the gateway said: ESPv2 answers {"message": ...}, the API {"detail": ...}."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for field in ("message", "detail", "error"):
            value = body.get(field)
            if isinstance(value, dict):
                value = value.get("message", value)
            if value:
                return value if isinstance(value, str) else json.dumps(value)
    return response.text[:500] or response.reason_phrase


# --- the client's helpers ---------------------------------------------------------------


def _redis_client(redis: redis_lib.Redis | str) -> redis_lib.Redis:
    if not isinstance(redis, str):
        return redis
    # One short attempt is all a request should wait for on a cache it can do without.
    # redis.Redis(...) retries a failed command up to ten times by default (redis-py
    # 6+); from_url happens not to, and saying it here does not depend on that.
    return redis_lib.Redis.from_url(
        redis,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


class _ResponseCache:
    """Redis as a cache the site can do without.

    Any Redis error is logged and turns into a miss (or a skipped write), and Redis
    is then left alone for retry_after_seconds, so a dead or slow cache costs one
    timeout every few seconds rather than one per request.
    """

    def __init__(self, redis: redis_lib.Redis, ttl_seconds: float, retry_after_seconds: float):
        if ttl_seconds <= 0:
            raise ValueError(f"cache_ttl_seconds must be positive, got {ttl_seconds}")
        self._redis = redis
        self._ttl_milliseconds = max(1, round(ttl_seconds * 1000))
        self._retry_after = retry_after_seconds
        self._failed_at: float | None = None

    def get(self, key: str) -> dict[str, Any] | None:
        if not self._available():
            return None
        try:
            value = self._redis.get(key)
        except redis_lib.RedisError as error:
            self._failed("read", error)
            return None
        if value is None:
            return None
        try:
            return json.loads(value)
        except ValueError:
            LOG.warning("cache skipped: the value at %s is not JSON; asking the gateway", key)
            return None

    def put(self, key: str, body: dict[str, Any]) -> None:
        if not self._available():
            return
        try:
            self._redis.set(key, json.dumps(body, separators=(",", ":")), px=self._ttl_milliseconds)
        except redis_lib.RedisError as error:
            self._failed("write", error)

    def _available(self) -> bool:
        failed_at = self._failed_at
        if failed_at is None:
            return True
        waited = time.monotonic() - failed_at
        if waited < self._retry_after:
            LOG.debug("cache skipped: Redis failed %.1f s ago", waited)
            return False
        self._failed_at = None
        return True

    def _failed(self, action: str, error: redis_lib.RedisError) -> None:
        self._failed_at = time.monotonic()
        LOG.warning(
            "cache skipped: Redis %s failed (%s: %s); calling the gateway without the cache "
            "and leaving Redis alone for %.0f s",
            action,
            type(error).__name__,
            error,
            self._retry_after,
        )


class _ExposureLog:
    """Appends exposure events as JSON lines, whole lines only, from any thread.

    A path is opened for each event, in append mode: each line then reaches the file
    in one write, so several processes can share the file, and a log rotated by
    renaming is followed at the next event.
    """

    def __init__(self, target: TextIO | str | PathLike[str]) -> None:
        self._target = target
        self._lock = threading.Lock()

    def write(self, event: Mapping[str, str]) -> None:
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            if isinstance(self._target, str | PathLike):
                with open(self._target, "a", encoding="utf-8") as file:
                    file.write(line)
            else:
                self._target.write(line)
                self._target.flush()
