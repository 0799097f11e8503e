"""The goals our API is held to, and how one run's results measure up.

A missed goal is reported, not raised: the run still measured what it set out to.
A goal whose comparison system was not run (the smoke mode skips MLServer) is n/a.
"""

from collections.abc import Callable
from dataclasses import dataclass

# Fixed latency our API may add on top of the pipeline's own predict_proba.
OVERHEAD_BUDGET_MS = 0.6
MAX_RSS_MB = 200


@dataclass(frozen=True)
class Goal:
    description: str
    # The systems whose figures the goal compares.
    needs: tuple[str, ...]
    measure: Callable[[dict], float]
    met: Callable[[float], bool]
    target: str
    unit: str  # how the measured value is written: "+ms", "x" or "MB"


def _ratio(description: str, figure: str, baseline: str, comparison: str, bound: float) -> Goal:
    """A goal on our API's `figure` divided by `baseline`'s: at most (≤) or at least (≥) `bound`."""
    return Goal(
        description,
        ("api", baseline),
        lambda r: r["api"][figure] / r[baseline][figure],
        (lambda ratio: ratio <= bound) if comparison == "≤" else (lambda ratio: ratio >= bound),
        f"{comparison} {bound}×",
        "x",
    )


GOALS = (
    Goal(
        "API p50 at 1 connection, over the raw predict_proba",
        ("api",),
        lambda r: r["api"]["p50_ms"] - r["raw_predict_ms"],
        lambda value: value <= OVERHEAD_BUDGET_MS,
        f"≤ +{OVERHEAD_BUDGET_MS} ms",
        "+ms",
    ),
    _ratio("API p50 at 1 connection / MLServer tuned's", "p50_ms", "mlserver", "≤", 0.6),
    _ratio("API req/s at 16 connections / MLServer tuned's", "rps", "mlserver", "≥", 1.5),
    _ratio(
        "API req/s at 16 connections / MLServer batching's", "rps", "mlserver_batching", "≥", 1.0
    ),
    _ratio(
        "API start-up (spawn to first prediction) / MLServer tuned's",
        "startup_s",
        "mlserver",
        "≤",
        0.6,
    ),
    Goal(
        "API peak RSS of its process tree",
        ("api",),
        lambda r: r["api"]["rss_mb"],
        lambda mb: mb <= MAX_RSS_MB,
        f"≤ {MAX_RSS_MB} MB",
        "MB",
    ),
)


def evaluate(results: dict) -> list[dict]:
    """Each goal with its measured value and PASS, MISS or n/a."""
    evaluated = []
    for goal in GOALS:
        available = all(results.get(key) for key in goal.needs)
        try:
            value = goal.measure(results) if available else None
        except (TypeError, ZeroDivisionError):
            value = None  # a figure the run could not produce
        evaluated.append(
            {
                "goal": goal.description,
                "measured": _written(value, goal.unit),
                "value": value,
                "target": goal.target,
                "status": _status(goal, value),
            }
        )
    return evaluated


def _status(goal: Goal, value: float | None) -> str:
    if value is None:
        return "n/a"
    return "PASS" if goal.met(value) else "MISS"


def _written(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "+ms":
        return f"{value:+.2f} ms"
    if unit == "x":
        return f"{value:.2f}×"
    return f"{value:.0f} {unit}"
