"""Robustness at speed: bad requests mixed with good ones on busy keep-alive connections.

A server that answers a bad request correctly one at a time can still break under
load: a 500 that closes the connection, an error that poisons the next request on
the same socket, an answer that copies the request back. This round cycles every
case below on the same connections for a few seconds and fails on any of that.
"""

import json
from pathlib import Path

from template_tests.bench import load
from template_tests.bench.workload import SAMPLE_ROW

SCRIPT = load.LUA / "robustness.lua"
# A marker the invalid bodies carry where the server will look at it: an error
# answer containing it echoes the client's input.
CANARY = "bench-canary-5f0c2a"
MAX_ERROR_BODY_BYTES = 1024
# The API's default MAX_BODY_BYTES is 1,000,000; this is clearly over it.
OVERSIZED_BYTES = 1_100_000


def case_bodies() -> dict[str, bytes]:
    """Each case's request body, valid first."""
    wrong_type = {**SAMPLE_ROW, "flipper_length_mm": CANARY}
    padding = "x" * OVERSIZED_BYTES
    return {
        "valid": json.dumps({"instances": [SAMPLE_ROW]}).encode(),
        "malformed_json": f'{{"instances": [{{"island": "{CANARY}", "sex": '.encode(),
        "wrong_type": json.dumps({"instances": [wrong_type]}).encode(),
        # Python's parser reads NaN; JSON has none, and the model cannot score one.
        "nan": json.dumps({"instances": [{**SAMPLE_ROW, "bill_length_mm": float("nan")}]}).encode(),
        "oversized": json.dumps({"instances": [SAMPLE_ROW], CANARY: padding}).encode(),
    }


def expected_statuses(case: str) -> tuple[range, str]:
    """The statuses a case may get, and how to say so; none of them is a 5xx."""
    if case == "valid":
        return range(200, 201), "200"
    if case == "oversized":
        return range(413, 414), "413"
    return range(400, 500), "4xx"


def run(url: str, folder: Path, *, seconds: int, connections: int, cpu: int) -> dict:
    """The round's counts and the list of what went wrong (empty when it passed)."""
    folder.mkdir(parents=True, exist_ok=True)
    bodies = case_bodies()
    for case, body in bodies.items():
        (folder / f"{case}.json").write_bytes(body)
    report = load.run_wrk(
        url,
        script=SCRIPT,
        connections=connections,
        # One connection per thread: each thread then knows which case every answer
        # it reads belongs to (see lua/robustness.lua).
        threads=connections,
        seconds=seconds,
        cpu=cpu,
        env={
            "BENCH_CASES": ",".join(bodies),
            "BENCH_CASES_DIR": str(folder),
            "BENCH_MAX_ERROR_BODY": str(MAX_ERROR_BODY_BYTES),
            "BENCH_CANARY": CANARY,
        },
    )
    return judge(report, list(bodies))


def judge(report: dict, cases: list[str]) -> dict:
    """The round's verdict from the robustness script's report: its counts and problems."""
    outcomes: dict[str, dict[int, int]] = {}
    for outcome, count in report["outcomes"].items():
        case, status = outcome.rsplit(" ", 1)
        outcomes.setdefault(case, {})[int(status)] = count
    found = load.socket_problems(report["errors"])
    for case in sorted(outcomes.keys() - set(cases)):
        found.append(f"{sum(outcomes[case].values())} answers to no known request ({case})")
    for case in cases:
        statuses = outcomes.get(case, {})
        if not statuses:
            found.append(f"no {case} request was answered")
        allowed, wanted = expected_statuses(case)
        for status, count in sorted(statuses.items()):
            if status not in allowed:
                found.append(f"{count} {case} requests got HTTP {status}, not {wanted}")
        if report["large_error_bodies"].get(case):
            found.append(
                f"{report['large_error_bodies'][case]} {case} error answers were larger "
                f"than {MAX_ERROR_BODY_BYTES} bytes"
            )
        if report["echoed_inputs"].get(case):
            found.append(f"{report['echoed_inputs'][case]} {case} error answers echoed the input")
    return {
        "seconds": report["duration_us"] / 1e6,
        "requests": report["requests"],
        "outcomes": outcomes,
        "errors": report["errors"],
        "passed": not found,
        "problems": found,
    }
