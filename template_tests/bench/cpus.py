"""Which CPU serves and which drives the load, and how a process is pinned to one.

Servers get one CPU and wrk (with this harness) the other, so load generation never
steals cycles from the server it measures, and every system gets the same single
core, the way a one-vCPU container would.
"""

import os
from dataclasses import dataclass

from template_tests.bench.errors import BenchError


@dataclass(frozen=True)
class Cpus:
    server: int
    load: int


def choose() -> Cpus:
    """The first two CPUs this process may run on: nominally CPU 0 and CPU 1."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        raise BenchError(
            f"the benchmark needs two CPUs (one for the servers, one for wrk); "
            f"this process may use only {allowed}"
        )
    return Cpus(server=allowed[0], load=allowed[1])


def pinned(command: list[str], cpu: int) -> list[str]:
    """`command` run on `cpu` alone. taskset execs it, so the process keeps taskset's pid."""
    return ["taskset", "--cpu-list", str(cpu), *command]


def pin_this_process(cpu: int) -> None:
    """Keeps the harness (its polling and memory sampling) off the servers' CPU."""
    os.sched_setaffinity(0, {cpu})
