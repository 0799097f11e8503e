"""Running a system: start it on the servers' CPU, wait for its first prediction, stop it.

Each server runs in a session of its own, so stopping it stops every process it
started too. Its output goes to a log file the error messages point to.
"""

import contextlib
import http.client
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from cloudbuild.preflight.serving import free_port
from template_tests.bench import cpus, memory
from template_tests.bench.errors import BenchError
from template_tests.bench.systems import System

LOOPBACK = "127.0.0.1"
# How often start-up polls for a prediction: fine enough for start-ups of seconds.
POLL_INTERVAL_S = 0.02
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 15
REQUEST_TIMEOUT_S = 10
# A server counts as idle once its CPU time grows by at most one clock tick in this
# long; waiting for that is bounded, so a server that never rests cannot stall a run.
IDLE_WINDOW_S = 0.2
IDLE_TIMEOUT_S = 10


class Server:
    def __init__(self, system: System, cpu: int, log_path: Path) -> None:
        self.system = system
        self.cpu = cpu
        self.log_path = log_path
        self.port = 0
        self.started_at = 0.0
        self.process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server was not started"
        return self.process.pid

    @property
    def predict_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.system.predict_path}"

    def start(self) -> None:
        self.port = free_port()
        launch = self.system.launch(self.port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            cpus.pinned(launch.command, self.cpu),
            cwd=launch.cwd,
            env=launch.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_for_first_prediction(self, expected: list[float]) -> float:
        """Seconds from spawning to the first correct prediction, polling every 20 ms."""
        deadline = self.started_at + START_TIMEOUT_S
        last_failure = "no answer"
        while True:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise BenchError(
                    f"{self.system.title} exited (code {code}) before answering; "
                    f"see {self.log_path}"
                )
            try:
                status, answer = self.predict()
            except OSError as exc:
                # Refused until the server listens; that is what is being waited for.
                last_failure = str(exc)
            else:
                if status == 200:
                    elapsed = time.monotonic() - self.started_at
                    self.system.check_answer(answer, expected)
                    return elapsed
                last_failure = f"HTTP {status}: {answer[:200]!r}"
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{self.system.title} gave no prediction within {START_TIMEOUT_S} s "
                    f"(last: {last_failure}); see {self.log_path}"
                )
            time.sleep(POLL_INTERVAL_S)

    def predict(self) -> tuple[int, bytes]:
        """One prediction request on a fresh connection: the status and the body."""
        connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=REQUEST_TIMEOUT_S)
        try:
            connection.request(
                "POST",
                self.system.predict_path,
                body=self.system.body,
                headers={"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def wait_until_idle(self) -> float:
        """Wait for the server to finish what a finished load phase left queued.

        When wrk stops, up to one request per connection is still queued in the
        server; it goes on answering them (into closed sockets) for a while. The
        next phase, of this system or another on the same CPU, must not pay for
        that. Returns the seconds waited.
        """
        started = time.monotonic()
        ticks = _cpu_ticks(self.pid)
        while time.monotonic() - started < IDLE_TIMEOUT_S:
            time.sleep(IDLE_WINDOW_S)
            now = _cpu_ticks(self.pid)
            if now - ticks <= 1:
                break
            ticks = now
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process is not None:
            # The session's id is the server's pid: this reaches the server and every
            # process it started, even if the server itself has already exited.
            self._signal_session(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._signal_session(signal.SIGKILL)
                self.process.wait()
            # Its pid may be reused from now on: never signal it again.
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _signal_session(self, signum: int) -> None:
        assert self.process is not None
        # Nothing of it may be left to signal.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def __enter__(self) -> "Server":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _cpu_ticks(root: int) -> int:
    """User and system CPU time, in clock ticks, of `root` and its descendants."""
    total = 0
    for pid in memory.tree(root):
        fields = memory.stat_fields(pid)
        if fields:  # else it exited meanwhile
            # utime and stime: fields 14 and 15 of stat(5); the list starts at field 3.
            total += int(fields[11]) + int(fields[12])
    return total


def startup_times(
    system: System, runs: int, cpu: int, logs: Path, expected: list[float]
) -> list[float]:
    """Spawn-to-first-prediction seconds of `runs` fresh starts, one after another."""
    times = []
    for run in range(1, runs + 1):
        with Server(system, cpu, logs / f"{system.key}-startup-{run}.log") as server:
            times.append(server.wait_for_first_prediction(expected))
    return times


def check_concurrent_answers(server: Server, expected: list[float], count: int) -> None:
    """`count` simultaneous requests, each of which must get the sample row's answer.

    A batching server answers these from shared batches; a wrong split of a batch's
    result would otherwise go unnoticed, since the load phases only count statuses.
    """
    with ThreadPoolExecutor(max_workers=count) as pool:
        answers = list(pool.map(lambda _: server.predict(), range(count)))
    for status, answer in answers:
        if status != 200:
            raise BenchError(f"{server.system.title} answered HTTP {status}: {answer[:200]!r}")
        server.system.check_answer(answer, expected)
