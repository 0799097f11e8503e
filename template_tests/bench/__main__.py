"""`python -m template_tests.bench [--smoke] [--out DIR]`: run the serving benchmark.

The phases, each bounded in time:
1. train the sample model, and time the raw predict_proba floor;
2. (full run) install MLServer's environment, write its two model folders;
3. start-up: each system spawned afresh several times, timed to its first correct
   prediction;
4. load: every system started once and checked against the raw probabilities, then
   rounds in rotated order, each system's slot a warm-up, 1 connection, 16;
5. each server's peak memory, then the robustness round on our API;
6. results.json, results.md and latency.png in DIR; the table is printed.

Exit status: 0 when everything was measured, goals met or not; 1 when a phase saw
socket errors or non-2xx answers, or the robustness round failed; 2 when the run
could not be completed (the message says why).
"""

import argparse
import contextlib
import os
import platform
import sys
import time
from pathlib import Path

from template_tests.bench import (
    cpus,
    goals,
    load,
    mlserver,
    raw_predict,
    report,
    results,
    robustness,
    servers,
    systems,
    venvs,
    workload,
)
from template_tests.bench.errors import BenchError
from template_tests.bench.memory import TreeMemory
from template_tests.bench.profile import FULL, SMOKE, Profile

# A smoke run writes elsewhere by default, so it never replaces a real run's results.
DEFAULT_OUT = {"full": Path("build/bench"), "smoke": Path("build/bench-smoke")}
# A one-minute load average above this, before anything starts, means other work
# shares the two CPUs and will inflate every latency measured.
BUSY_LOAD_AVERAGE = 1.0


class Progress:
    """One line per step, with the time since the run began."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def __call__(self, message: str) -> None:
        print(f"[{self.elapsed_s:6.1f} s] {message}", flush=True)


def run(profile: Profile, out: Path, progress: Progress) -> dict:
    wrk = load.check_wrk()
    chosen = cpus.choose()
    load_average = os.getloadavg()[0]
    if load_average > BUSY_LOAD_AVERAGE:
        progress(
            f"warning: the load average is {load_average:.1f} before the run starts; "
            "other work on this machine will distort the numbers"
        )
    # Before any thread starts, so the memory samplers inherit it too.
    cpus.pin_this_process(chosen.load)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "model"

    progress("training the sample model")
    workload.train(model_dir)
    model = workload.load(model_dir)
    progress(f"timing the raw predict_proba, {profile.raw_predict_calls} calls")
    raw = raw_predict.measure(model_dir, profile.raw_predict_calls, chosen.server)

    if profile.with_mlserver:
        progress("preparing our API's environment (api/requirements.txt, as the image has it)")
        api_python = venvs.ensure(out / "api-venv", systems.API_REQUIREMENTS, "the API") / "python"
    else:
        # The smoke run checks the harness, not the figures: the dev venv will do.
        api_python = Path(sys.executable)
    under_test = [systems.our_api(model_dir, model.classes, api_python)]
    if profile.with_mlserver:
        progress("preparing MLServer")
        executable = mlserver.ensure_environment(out / "mlserver-venv")
        under_test += [
            mlserver.system(key, out / "mlserver", executable, model)
            for key in mlserver.CONFIGURATIONS
        ]

    startups = {}
    for system in under_test:
        progress(f"start-up of {system.title}, {profile.startups} run(s)")
        startups[system.key] = servers.startup_times(
            system, profile.startups, chosen.server, out / "logs", raw["probabilities"]
        )
    rounds, memory, robust = measure_under_load(
        under_test, profile, chosen, out, raw["probabilities"], progress
    )

    document: dict = {
        "mode": profile.name,
        "profile": profile.as_dict(),
        "machine": {
            "server_cpu": chosen.server,
            "load_cpu": chosen.load,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "wrk": wrk,
            "load_average_before": load_average,
            "busy_load_average": BUSY_LOAD_AVERAGE,
        },
        "raw_predict_ms": raw["median_ms"],
        "raw_predict": raw,
    }
    if profile.with_mlserver:
        document["mlserver_settings"] = {
            "server": mlserver.SERVER_SETTINGS,
            "batching": mlserver.BATCHING,
        }
    for system in under_test:
        document[system.key] = results.system_results(
            system.title, rounds[system.key], startups[system.key], memory[system.key]
        )
    document["robustness"] = robust
    document["goals"] = goals.evaluate(document)
    document["failures"] = [
        f"{system.title}: {problem}"
        for system in under_test
        for problem in document[system.key]["problems"]
    ] + [f"robustness round: {problem}" for problem in robust["problems"]]
    return document


def measure_under_load(
    under_test: list[systems.System],
    profile: Profile,
    chosen: cpus.Cpus,
    out: Path,
    expected: list[float],
    progress: Progress,
) -> tuple[dict[str, list[dict]], dict[str, dict], dict]:
    """Every system's rounds and peak memory, and the robustness round on our API.

    All systems run side by side for the whole phase, idle but for their turn, so
    the rounds can rotate without restarting anything.
    """
    bodies = out / "bodies"
    bodies.mkdir(exist_ok=True)
    for system in under_test:
        (bodies / f"{system.key}.json").write_bytes(system.body)

    rounds: dict[str, list[dict]] = {system.key: [] for system in under_test}
    with contextlib.ExitStack() as running:
        progress("starting every system for the load rounds")
        started = {}
        for system in under_test:
            server = running.enter_context(
                servers.Server(system, chosen.server, out / "logs" / f"{system.key}.log")
            )
            server.wait_for_first_prediction(expected)
            servers.check_concurrent_answers(server, expected, profile.connections)
            started[system.key] = server
        samplers = {key: TreeMemory(server.pid) for key, server in started.items()}
        for sampler in samplers.values():
            sampler.start()

        for round_index in range(profile.rounds):
            # Each system goes first, middle and last once in three rounds, so none
            # always follows the same neighbour.
            shift = round_index % len(under_test)
            for position, system in enumerate(under_test[shift:] + under_test[:shift], 1):
                progress(f"round {round_index + 1}/{profile.rounds}: {system.title}")
                slot = load.measure_slot(
                    started[system.key].predict_url,
                    bodies / f"{system.key}.json",
                    warmup_s=profile.warmup_s,
                    measure_s=profile.measure_s,
                    connections=profile.connections,
                    cpu=chosen.load,
                    settle=started[system.key].wait_until_idle,
                )
                rounds[system.key].append({"round": round_index + 1, "position": position, **slot})
        # Read before the robustness round, whose megabyte bodies the MLServer
        # systems are never sent: peak memory is compared under the same load.
        memory = {key: sampler.stop() for key, sampler in samplers.items()}

        progress("robustness round on our API")
        robust = robustness.run(
            started["api"].predict_url,
            out / "robustness",
            seconds=profile.robustness_s,
            connections=profile.connections,
            cpu=chosen.load,
        )
        progress("stopping the servers")
    return rounds, memory, robust


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m template_tests.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny durations, our API and the raw floor only, one round, no MLServer",
    )
    parser.add_argument(
        "--out", type=Path, help="default: build/bench, or build/bench-smoke with --smoke"
    )
    args = parser.parse_args(argv)
    profile = SMOKE if args.smoke else FULL
    out = (args.out or DEFAULT_OUT[profile.name]).resolve()
    progress = Progress()

    try:
        document = run(profile, out, progress)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    document["elapsed_s"] = progress.elapsed_s
    results.write(document, out / "results.json")
    table = report.markdown(document)
    (out / "results.md").write_text(table, encoding="utf-8")
    report.chart(document, out / "latency.png")

    print()
    print(table)
    print(f"Wrote {out}/results.json, results.md and latency.png in {progress.elapsed_s:.0f} s.")
    if document["failures"]:
        print("The run FAILED: see the list above.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
