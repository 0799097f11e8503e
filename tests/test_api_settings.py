from pathlib import Path

import pytest

from api.settings import Settings, SettingsError, get_settings


def test_defaults_follow_the_vertex_contract():
    settings = Settings.from_env({})

    assert settings == Settings(
        model_dir=Path("/app/model"),
        port=8080,
        health_route="/health",
        predict_route="/predict",
        max_batch=256,
        max_body_bytes=1_000_000,
    )


def test_every_variable_is_read():
    settings = Settings.from_env(
        {
            "MODEL_DIR": "/models/penguins",
            "AIP_HTTP_PORT": "9000",
            "AIP_HEALTH_ROUTE": "/v1/endpoints/1/deployedModels/2:predict",
            "AIP_PREDICT_ROUTE": "/v1/endpoints/1/deployedModels/2:predict",
            "MAX_BATCH": "32",
            "MAX_BODY_BYTES": "4096",
        }
    )

    assert settings.model_dir == Path("/models/penguins")
    assert settings.port == 9000
    assert (
        settings.health_route
        == settings.predict_route
        == "/v1/endpoints/1/deployedModels/2:predict"
    )
    assert settings.max_batch == 32
    assert settings.max_body_bytes == 4096


@pytest.mark.parametrize(
    ("env", "port"),
    [
        ({"PORT": "8081"}, 8081),
        ({"AIP_HTTP_PORT": "7000", "PORT": "8081"}, 7000),
        ({"AIP_HTTP_PORT": "", "PORT": "8081"}, 8081),
    ],
)
def test_port_comes_from_vertex_then_cloud_run(env, port):
    assert Settings.from_env(env).port == port


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MAX_BATCH": "many"}, "MAX_BATCH must be an integer, got 'many'"),
        ({"PORT": "http"}, "PORT must be an integer"),
        ({"AIP_HTTP_PORT": "70000"}, "the port must be between 1 and 65535"),
        ({"MAX_BATCH": "0"}, "MAX_BATCH must be at least 1"),
        ({"MAX_BODY_BYTES": "-1"}, "MAX_BODY_BYTES must be at least 1"),
        ({"AIP_PREDICT_ROUTE": "predict"}, "AIP_PREDICT_ROUTE must start with '/'"),
        ({"AIP_HEALTH_ROUTE": "health"}, "AIP_HEALTH_ROUTE must start with '/'"),
    ],
)
def test_a_bad_value_names_its_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_get_settings_reads_the_environment_once(monkeypatch):
    get_settings.cache_clear()
    monkeypatch.setenv("MAX_BATCH", "7")
    try:
        first = get_settings()
        monkeypatch.setenv("MAX_BATCH", "9")
        assert get_settings() is first
        assert first.max_batch == 7
    finally:
        get_settings.cache_clear()


def test_host_is_every_interface_unless_set():
    # The platforms reach the container from outside; `make serve` keeps to loopback.
    assert Settings.from_env({}).host == "0.0.0.0"
    assert Settings.from_env({"HOST": "127.0.0.1"}).host == "127.0.0.1"
