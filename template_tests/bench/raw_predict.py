"""The floor: the pipeline's own `predict_proba` on a prebuilt one-row frame.

No server can answer faster than this, so the API's latency is judged by how little
it adds on top. It runs in a process of its own, pinned to the servers' CPU: the same
core, and no harness threads or imports around it. `measure` starts that process;
`python -m template_tests.bench.raw_predict` is the process.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from template_tests.bench import cpus, workload
from template_tests.bench.errors import BenchError

# Calls before timing starts: the first ones pay for lazy imports and cold caches.
WARMUP_CALLS = 50


def measure(model_dir: Path, calls: int, cpu: int) -> dict:
    """Median and spread of `calls` timed predictions, and the probabilities they give."""
    command = [sys.executable, "-m", "template_tests.bench.raw_predict"]
    command += ["--model-dir", str(model_dir), "--calls", str(calls)]
    completed = subprocess.run(
        cpus.pinned(command, cpu),
        cwd=workload.REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if completed.returncode != 0:
        raise BenchError(f"the raw prediction run failed:\n{completed.stderr.strip()}")
    return json.loads(completed.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--calls", type=int, required=True)
    args = parser.parse_args(argv)

    model = workload.load(args.model_dir)
    frame = model.frame(workload.SAMPLE_ROW)
    predict_proba = model.pipeline.predict_proba
    for _ in range(WARMUP_CALLS):
        predict_proba(frame)
    durations_ns = []
    for _ in range(args.calls):
        start = time.perf_counter_ns()
        predict_proba(frame)
        durations_ns.append(time.perf_counter_ns() - start)

    durations_ms = sorted(ns / 1e6 for ns in durations_ns)
    print(
        json.dumps(
            {
                "median_ms": statistics.median(durations_ms),
                "p90_ms": durations_ms[int(0.9 * (len(durations_ms) - 1))],
                "min_ms": durations_ms[0],
                "calls": args.calls,
                "classes": model.classes,
                "probabilities": predict_proba(frame)[0].tolist(),
                "dtypes": {name: str(dtype) for name, dtype in frame.dtypes.items()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
