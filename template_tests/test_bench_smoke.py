"""The serving benchmark (`make bench`): its harness end to end, and its judgements.

The smoke run's numbers mean little (a second per phase, beside the other tests on
two CPUs); what it shows is that every phase runs against the API as it is now,
yields positive figures, and finds the API robust under mixed traffic.
"""

import json
import subprocess
import sys
from pathlib import Path

from template_tests.bench import goals, mlserver, robustness

REPO = Path(__file__).resolve().parents[1]
HEADLINE_FIGURES = ("p50_ms", "p99_ms", "rps", "startup_s", "rss_mb")


def test_smoke_run_measures_our_api_end_to_end(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "template_tests.bench", "--smoke", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["mode"] == "smoke"
    assert results["raw_predict_ms"] > 0
    for figure in HEADLINE_FIGURES:
        assert results["api"][figure] > 0, figure
    assert "mlserver" not in results, "the smoke run must not install or start MLServer"
    assert results["robustness"]["passed"], results["robustness"]["problems"]
    assert set(results["robustness"]["outcomes"]) == set(robustness.case_bodies())
    assert results["failures"] == []
    # The goals that need no MLServer are judged; the others cannot be.
    statuses = [goal["status"] for goal in results["goals"]]
    assert statuses[0] in ("PASS", "MISS") and statuses[-1] in ("PASS", "MISS")
    assert statuses[1:-1] == ["n/a"] * 4
    assert (tmp_path / "results.md").read_text().startswith("# Serving benchmark")
    assert (tmp_path / "latency.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "| our API |" in completed.stdout


def test_mlserver_lock_pins_the_dev_lock_versions_of_the_model_libraries():
    # Otherwise MLServer would unpickle the pipeline with other scikit-learn code.
    assert mlserver.shared_pin_mismatches() == []


def _robustness_report(outcomes, **overrides):
    report = {
        "outcomes": outcomes,
        "errors": {"connect": 0, "read": 0, "write": 0, "status": 3, "timeout": 0},
        "large_error_bodies": {},
        "echoed_inputs": {},
        "requests": sum(outcomes.values()),
        "duration_us": 1_000_000,
    }
    return report | overrides


CLEAN_OUTCOMES = {
    "valid 200": 10,
    "malformed_json 400": 10,
    "wrong_type 422": 10,
    "nan 422": 10,
    "oversized 413": 10,
}


def test_robustness_passes_only_the_expected_statuses():
    cases = list(robustness.case_bodies())
    assert robustness.judge(_robustness_report(CLEAN_OUTCOMES), cases)["passed"]

    failing = {
        "a valid request refused": {**CLEAN_OUTCOMES, "valid 422": 1},
        "a server error": {**CLEAN_OUTCOMES, "nan 500": 1},
        "an oversized body read and refused as invalid": {
            **CLEAN_OUTCOMES,
            "oversized 422": 1,
        },
        "a case never answered": {k: v for k, v in CLEAN_OUTCOMES.items() if "wrong" not in k},
    }
    for reason, outcomes in failing.items():
        verdict = robustness.judge(_robustness_report(outcomes), cases)
        assert not verdict["passed"], reason


def test_robustness_fails_on_socket_errors_large_or_echoing_error_bodies():
    cases = list(robustness.case_bodies())
    for overrides in (
        {"errors": {"connect": 0, "read": 2, "write": 0, "status": 0, "timeout": 0}},
        {"large_error_bodies": {"wrong_type": 1}},
        {"echoed_inputs": {"malformed_json": 1}},
    ):
        verdict = robustness.judge(_robustness_report(CLEAN_OUTCOMES, **overrides), cases)
        assert not verdict["passed"], overrides


def test_goals_compare_the_api_with_each_baseline():
    def system(p50_ms, rps, startup_s, rss_mb):
        return {"p50_ms": p50_ms, "rps": rps, "startup_s": startup_s, "rss_mb": rss_mb}

    results = {
        "raw_predict_ms": 5.0,
        "api": system(p50_ms=5.5, rps=300, startup_s=1.0, rss_mb=150),
        "mlserver": system(p50_ms=10.0, rps=100, startup_s=4.0, rss_mb=300),
        "mlserver_batching": system(p50_ms=12.0, rps=400, startup_s=4.0, rss_mb=300),
    }
    statuses = [goal["status"] for goal in goals.evaluate(results)]
    # Everything met but the throughput against batching (300 < 400 req/s).
    assert statuses == ["PASS", "PASS", "PASS", "MISS", "PASS", "PASS"]

    without_mlserver = {"raw_predict_ms": 5.0, "api": results["api"]}
    statuses = [goal["status"] for goal in goals.evaluate(without_mlserver)]
    assert statuses == ["PASS", "n/a", "n/a", "n/a", "n/a", "PASS"]
