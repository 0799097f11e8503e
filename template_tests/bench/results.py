"""The results document: each system's rounds, start-ups and memory reduced to figures.

A headline figure is the median over rounds (over runs, for start-up), with the
minimum and maximum beside it under `ranges`, so one noisy round can neither make
nor break a goal and the spread stays visible. The per-round detail is kept too.
"""

import json
import statistics
from pathlib import Path

# Headline figure -> (phase of a round, figure of that phase's summary).
LOAD_FIGURES = {
    "p50_ms": ("one_connection", "p50_ms"),
    "p90_ms": ("one_connection", "p90_ms"),
    "p99_ms": ("one_connection", "p99_ms"),
    "rps": ("many_connections", "rps"),
    "p99_16c_ms": ("many_connections", "p99_ms"),
}
PHASES = ("one_connection", "many_connections")


def system_results(
    title: str, rounds: list[dict], startups_s: list[float], memory: dict | None
) -> dict:
    figures = {
        name: [round_[phase][figure] for round_ in rounds]
        for name, (phase, figure) in LOAD_FIGURES.items()
    }
    figures["startup_s"] = startups_s
    result: dict = {"title": title}
    for name, values in figures.items():
        result[name] = statistics.median(values) if values else None
    result["rss_mb"] = memory["vmhwm_mb"] if memory else None
    result["ranges"] = {
        name: [min(values), max(values)] for name, values in figures.items() if values
    }
    result["latency_percentiles_ms"] = {
        phase: _median_percentiles([round_[phase]["percentiles_ms"] for round_ in rounds])
        for phase in PHASES
    }
    result["startup_runs_s"] = startups_s
    result["memory"] = memory
    result["rounds"] = rounds
    result["problems"] = [
        f"round {round_['round']}, {phase}: {problem}"
        for round_ in rounds
        for phase in ("warmup", *PHASES)
        for problem in round_[phase]["problems"]
    ]
    return result


def _median_percentiles(per_round: list[dict[str, float]]) -> dict[str, float]:
    if not per_round:
        return {}
    return {
        percentile: statistics.median(values[percentile] for values in per_round)
        for percentile in per_round[0]
    }


def write(document: dict, path: Path) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
