"""The API's settings, read once from the environment.

The names follow the platforms that run the image: Vertex AI's custom-container
contract sets `AIP_HTTP_PORT`, `AIP_HEALTH_ROUTE` and `AIP_PREDICT_ROUTE`; Cloud Run
sets `PORT`. The rest are ours. A bad value stops the server at start-up with a
message naming the variable, instead of surfacing later as odd behaviour.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path


class SettingsError(ValueError):
    """An environment variable holds a value the API cannot run with."""


@dataclass(frozen=True)
class Settings:
    """Each field is set by the environment variable named in `from_env`."""

    model_dir: Path = Path("/app/model")
    # The platforms reach the container from outside it, so it listens on every
    # interface; `make serve` and the tests set HOST=127.0.0.1 to stay on loopback.
    host: str = "0.0.0.0"  # noqa: S104
    port: int = 8080
    health_route: str = "/health"
    predict_route: str = "/predict"
    max_batch: int = 256
    max_body_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        for variable, route in (
            ("AIP_HEALTH_ROUTE", self.health_route),
            ("AIP_PREDICT_ROUTE", self.predict_route),
        ):
            if not route.startswith("/"):
                raise SettingsError(f"{variable} must start with '/', got {route!r}")
        if not 0 < self.port < 65536:
            raise SettingsError(f"the port must be between 1 and 65535, got {self.port}")
        if self.max_batch < 1:
            raise SettingsError(f"MAX_BATCH must be at least 1, got {self.max_batch}")
        if self.max_body_bytes < 1:
            raise SettingsError(f"MAX_BODY_BYTES must be at least 1, got {self.max_body_bytes}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        """Settings from `env`; an unset or empty variable keeps the default."""
        defaults = cls()
        # Vertex AI sets AIP_HTTP_PORT and Cloud Run sets PORT; the Vertex name wins so the
        # image follows that contract even where a base environment also sets PORT.
        port_variable = "AIP_HTTP_PORT" if _value(env, "AIP_HTTP_PORT") else "PORT"
        return cls(
            model_dir=Path(_value(env, "MODEL_DIR") or defaults.model_dir),
            host=_value(env, "HOST") or defaults.host,
            port=_integer_from(env, port_variable, defaults.port),
            health_route=_value(env, "AIP_HEALTH_ROUTE") or defaults.health_route,
            predict_route=_value(env, "AIP_PREDICT_ROUTE") or defaults.predict_route,
            max_batch=_integer_from(env, "MAX_BATCH", defaults.max_batch),
            max_body_bytes=_integer_from(env, "MAX_BODY_BYTES", defaults.max_body_bytes),
        )


@cache
def get_settings() -> Settings:
    """The process's settings. Tests build a `Settings` and pass it to `create_app`."""
    return Settings.from_env()


def _value(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _integer_from(env: Mapping[str, str], name: str, default: int) -> int:
    value = _value(env, name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {value!r}") from None
