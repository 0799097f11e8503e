"""A real, throwaway redis-server on a loopback port, for tests that need Redis itself.

Test modules load the fixtures with `pytest_plugins = ["tests.redis_server"]`:

- `redis_server` (one per test module): a running server, its URL and a client;
- `redis_client` (per test): a client to that server, emptied before the test.

Code that is no test can use `running_redis_server(folder)` as a context manager.

The server is Debian's redis-server, installed by tests/system-packages.sh (which
`make setup` runs). When it is missing the fixture fails rather than skips: a
skipped cache test reads as green while testing nothing. It holds no assertions,
so pytest need not rewrite it (PYTEST_DONT_REWRITE).
"""

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from cloudbuild.preflight.serving import free_port

START_TIMEOUT_SECONDS = 10.0
# Another process can take the free port between our probe and redis-server's bind;
# a few fresh ports make that race harmless.
START_ATTEMPTS = 3
MISSING = (
    "redis-server is not on PATH; run tests/system-packages.sh (make setup runs it) "
    "to install Debian's redis-server"
)


class RedisServerMissing(RuntimeError):
    """redis-server is not on PATH."""


@dataclass(frozen=True)
class RedisServer:
    """A running redis-server: where it listens and how to talk to it."""

    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


@contextmanager
def running_redis_server(folder: Path) -> Iterator[RedisServer]:
    """Start redis-server in `folder` (its working directory and log), stop it on exit.

    No persistence (--save "", --appendonly no): the data lives as long as the test.
    """
    executable = shutil.which("redis-server")
    if executable is None:
        raise RedisServerMissing(MISSING)
    folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, START_ATTEMPTS + 1):
        server = RedisServer(port=free_port(), log=folder / f"redis-{attempt}.log")
        with server.log.open("wb") as log:
            process = subprocess.Popen(
                [executable, *_options(server.port, folder)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
            )
        try:
            if _answers_ping(server, process):
                yield server
                return
        finally:
            _stop(process)
    raise RuntimeError(
        f"redis-server did not start in {START_ATTEMPTS} attempts; see {server.log}:\n"
        + server.log.read_text(errors="replace")[-2000:]
    )


def _options(port: int, folder: Path) -> list[str]:
    options = {
        "bind": "127.0.0.1",
        "port": str(port),
        "save": "",
        "appendonly": "no",
        "dir": str(folder.resolve()),
    }
    return [word for name, value in options.items() for word in (f"--{name}", value)]


def _answers_ping(server: RedisServer, process: subprocess.Popen[bytes]) -> bool:
    """Wait until the server answers PING; False if it exited first (port taken)."""
    client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.02)
    finally:
        client.close()
    raise RuntimeError(
        f"redis-server on port {server.port} gave no PONG within {START_TIMEOUT_SECONDS} s; "
        f"see {server.log}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail(MISSING, pytrace=False)
    with running_redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()
