"""Driving a server with wrk, and the phases of one system's slot in a round.

wrk runs on the load CPU with one thread: one thread can issue far more requests
than any of these servers answers on its single CPU, and a second thread on the
same core would only add context switches to the latencies. Its Lua scripts (in
lua/) print the counts, socket errors and latency percentiles as one JSON line.
"""

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from template_tests.bench import cpus
from template_tests.bench.errors import BenchError

LUA = Path(__file__).resolve().parent / "lua"
MEASURE_SCRIPT = LUA / "measure.lua"
RESULT_PREFIX = "BENCH_RESULT "
# wrk's error counts that mean the connection failed. Its fifth, "status", counts
# answers from 400 up, which the scripts' own per-status tallies already cover.
SOCKET_ERRORS = ("connect", "read", "write", "timeout")
# A request slower than this counts as a timeout error and fails the run.
REQUEST_TIMEOUT = "5s"
# Beyond wrk's own duration: its start, the connections' close, the done() report.
WRK_GRACE_S = 30


def check_wrk() -> str:
    """wrk's version line; raises if wrk is not installed."""
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed: run `make bench-deps` (Debian's wrk package)")
    # wrk prints its version and usage, and exits 1, when given no URL.
    completed = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    first_line = (completed.stdout or completed.stderr).splitlines()[0]
    return first_line.split(" Copyright")[0].strip()


def run_wrk(
    url: str,
    *,
    script: Path,
    connections: int,
    threads: int,
    seconds: int,
    cpu: int,
    env: dict[str, str],
) -> dict:
    """wrk's report on `seconds` of load from `connections` keep-alive connections."""
    command = ["wrk", f"--threads={threads}", f"--connections={connections}"]
    command += [f"--duration={seconds}s", f"--timeout={REQUEST_TIMEOUT}"]
    command += [f"--script={script}", url]
    completed = subprocess.run(
        cpus.pinned(command, cpu),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=seconds + WRK_GRACE_S,
        check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise BenchError(
        f"wrk gave no result (exit {completed.returncode}):\n"
        f"{completed.stdout.strip()}\n{completed.stderr.strip()}"
    )


def summarize(report: dict) -> dict:
    """The figures the results use from one wrk report, milliseconds and req/s."""
    latency = report["latency_us"]
    seconds = report["duration_us"] / 1e6
    return {
        "requests": report["requests"],
        "seconds": seconds,
        "rps": report["requests"] / seconds if seconds else 0.0,
        "p50_ms": latency["percentiles"]["50"] / 1000,
        "p90_ms": latency["percentiles"]["90"] / 1000,
        "p99_ms": latency["percentiles"]["99"] / 1000,
        "mean_ms": (latency["mean"] or 0) / 1000,
        "max_ms": latency["max"] / 1000,
        "percentiles_ms": {p: us / 1000 for p, us in latency["percentiles"].items()},
        "statuses": report.get("statuses", {}),
        "errors": report["errors"],
    }


def socket_problems(errors: dict) -> list[str]:
    return [f"{errors[kind]} socket {kind} errors" for kind in SOCKET_ERRORS if errors[kind]]


def problems(summary: dict) -> list[str]:
    """Why a phase's answers fail the run: socket errors, timeouts, any non-2xx status."""
    found = socket_problems(summary["errors"])
    for status, count in sorted(summary["statuses"].items()):
        if not 200 <= int(status) < 300:
            found.append(f"{count} answers with HTTP {status}")
    if summary["requests"] == 0:
        found.append("no request completed")
    return found


def measure_slot(
    url: str,
    body_file: Path,
    *,
    warmup_s: int,
    measure_s: int,
    connections: int,
    cpu: int,
    settle: Callable[[], float],
) -> dict:
    """A system's turn in a round: warm-up, then one connection, then `connections`.

    `settle` is called after each phase and waits until the server has worked off
    the requests the phase left queued.
    """
    env = {"BENCH_BODY_FILE": str(body_file)}

    def phase(connection_count: int, seconds: int) -> dict:
        report = run_wrk(
            url,
            script=MEASURE_SCRIPT,
            connections=connection_count,
            threads=1,
            seconds=seconds,
            cpu=cpu,
            env=env,
        )
        summary = summarize(report)
        summary["problems"] = problems(summary)
        summary["settled_s"] = settle()
        return summary

    return {
        "warmup": phase(connections, warmup_s),
        "one_connection": phase(1, measure_s),
        "many_connections": phase(connections, measure_s),
    }
