"""What a person reads: results.md (the table and the goals) and latency.png."""

import math
from pathlib import Path

import matplotlib

# No display: the chart only goes to a file.
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)
from matplotlib import ticker  # noqa: E402

SYSTEMS = ("api", "mlserver", "mlserver_batching")
# Column title -> (figure key, decimals).
COLUMNS = {
    "p50 1 conn (ms)": ("p50_ms", 2),
    "p90 1 conn (ms)": ("p90_ms", 2),
    "p99 1 conn (ms)": ("p99_ms", 2),
    "req/s 16 conns": ("rps", 0),
    "p99 16 conns (ms)": ("p99_16c_ms", 1),
    "start-up (s)": ("startup_s", 2),
    "peak RSS (MB)": ("rss_mb", 0),
}


def markdown(results: dict) -> str:
    profile = results["profile"]
    machine = results["machine"]
    lines = [
        f"# Serving benchmark ({profile['name']} run)",
        "",
        f"Servers on CPU {machine['server_cpu']}, {machine['wrk']} on CPU "
        f"{machine['load_cpu']}, loopback. {profile['rounds']} round(s) in rotated order, "
        f"each a {profile['warmup_s']} s warm-up, then {profile['measure_s']} s at 1 "
        f"connection and {profile['measure_s']} s at {profile['connections']}; start-up "
        f"over {profile['startups']} run(s). Medians, with min–max when there are several.",
        "",
        "| system | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
        f"| raw predict_proba (floor) | {results['raw_predict_ms']:.2f} |"
        + " |" * (len(COLUMNS) - 1),
    ]
    for key in SYSTEMS:
        system = results.get(key)
        if system:
            cells = [_cell(system, figure, decimals) for figure, decimals in COLUMNS.values()]
            lines.append(f"| {system['title']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Peak RSS: the sum of VmHWM over a server's process tree after the load rounds, "
        "in MB of 10^6 bytes.",
    ]
    lines += [
        "",
        "The floor is the scikit-learn pipeline's own predict_proba on a prebuilt one-row "
        "DataFrame. Our API can go below it: it scores with a NumPy copy of the fitted "
        "preprocessing (api/fast_path.py), used only when it equals the pipeline on probe "
        "rows, and scores concurrent requests in one call (api/batcher.py).",
    ]
    settings = results.get("mlserver_settings")
    if settings:
        server = ", ".join(f"{name} {value}" for name, value in settings["server"].items())
        batching = ", ".join(f"{name} {value}" for name, value in settings["batching"].items())
        lines += ["", f"MLServer settings: {server}; batching adds {batching} (seconds)."]
    if machine["load_average_before"] > machine["busy_load_average"]:
        lines += [
            "",
            f"**Load average {machine['load_average_before']:.1f} before the run: other work "
            "shared the CPUs, so these numbers are inflated and noisy.**",
        ]
    lines += [
        "",
        "| goal | measured | target | result |",
        "|---|---:|---:|:---:|",
    ]
    for goal in results["goals"]:
        lines.append(
            f"| {goal['goal']} | {goal['measured']} | {goal['target']} | {goal['status']} |"
        )
    robustness = results.get("robustness")
    if robustness:
        verdict = "PASS" if robustness["passed"] else "FAIL"
        lines += ["", f"Robustness round (our API): {verdict}, {_outcomes(robustness)}."]
    if results["failures"]:
        lines += ["", "**The run failed:**", ""]
        lines += [f"- {failure}" for failure in results["failures"]]
    return "\n".join(lines) + "\n"


def _cell(system: dict, figure: str, decimals: int) -> str:
    value = system.get(figure)
    if value is None:
        return "—"
    text = f"{value:,.{decimals}f}"
    low, high = system["ranges"].get(figure, (value, value))
    if low != high:
        text += f" ({low:,.{decimals}f}–{high:,.{decimals}f})"
    return text


def _outcomes(robustness: dict) -> str:
    parts = []
    for case, statuses in robustness["outcomes"].items():
        counts = ", ".join(f"{count}× {status}" for status, count in sorted(statuses.items()))
        parts.append(f"{case}: {counts or 'none'}")
    return "; ".join(parts)


def chart(results: dict, path: Path) -> None:
    """Latency percentiles 50 to 99.9 of every system, at 1 and at 16 connections."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    panels = (("one_connection", "1 connection"), ("many_connections", "16 connections"))
    for axis, (phase, title) in zip(axes, panels, strict=True):
        for key in SYSTEMS:
            system = results.get(key)
            if not system:
                continue
            percentiles = system["latency_percentiles_ms"][phase]
            points = sorted((float(p), ms) for p, ms in percentiles.items())
            axis.plot(
                [_nines(p) for p, _ in points],
                [ms for _, ms in points],
                marker="o",
                markersize=3,
                label=system["title"],
            )
        if phase == "one_connection":
            axis.axhline(
                results["raw_predict_ms"], color="grey", linestyle="--", label="raw predict_proba"
            )
        ticks = (50, 75, 90, 95, 99, 99.5, 99.9)
        axis.set_xticks([_nines(p) for p in ticks], [f"p{p:g}" for p in ticks])
        # Logarithmic, so the gaps near the floor stay visible beside the tails.
        axis.set_yscale("log")
        plain = ticker.FuncFormatter(lambda ms, _: f"{ms:g}")
        axis.yaxis.set_major_formatter(plain)
        axis.yaxis.set_minor_formatter(plain)
        axis.set_title(title)
        axis.set_xlabel("percentile")
        axis.set_ylabel("latency (ms)")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("Serving latency of the sample model (wrk, loopback, one server CPU)")
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _nines(percentile: float) -> float:
    """Spreads the tail out: p90 is 1, p99 is 2, p99.9 is 3."""
    return -math.log10(1 - percentile / 100)
