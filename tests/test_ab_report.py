"""`python -m cloudbuild ab-report`: the figures, the exposure rules, the verdict, the files.

The statistics are held against a worked example computed by hand (below, step by step);
the rules against a handful of hand-written events; the whole command against simulated
logs whose truth the simulator returns, so every count in the report can be checked.
"""

import json
import math
import re
import struct
from pathlib import Path

import pytest
from matplotlib.image import imread

from cloudbuild.ab_report import SRM_THRESHOLD, compare, srm_check, wilson_interval, z_critical
from cloudbuild.cli_common import Command
from cloudbuild.cli_common import main as cli_main
from tests.ab_simulation import CLEAN, DEFAULT_NOISE, default_config, simulate

COMMANDS = {"ab-report": Command("cloudbuild.ab_report:main", "analyse an A/B experiment")}
EXPERIMENT = "bigger-c"
NOON = "2026-11-23T12:00:00.000000Z"


def run(tmp_path: Path, config: dict, exposures: list, conversions: list, *extra: str) -> int:
    """Write the inputs as the client and the site would, run the command as registered."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    _write_lines(tmp_path / "exposures.jsonl", exposures)
    _write_lines(tmp_path / "conversions.jsonl", conversions)
    return run_files(tmp_path, *extra)


def run_files(folder: Path, *extra: str) -> int:
    return cli_main(
        COMMANDS,
        [
            "ab-report",
            "--config",
            str(folder / "config.json"),
            "--exposures",
            str(folder / "exposures.jsonl"),
            "--conversions",
            str(folder / "conversions.jsonl"),
            "--out",
            str(folder / "out"),
            *extra,
        ],
    )


def _write_lines(path: Path, events: list) -> None:
    path.write_text("".join(e if isinstance(e, str) else json.dumps(e) + "\n" for e in events))


def report_json(folder: Path) -> dict:
    return json.loads((folder / "out" / "report.json").read_text())


def exposure(user: str, variant: str, time: str = NOON, experiment: str = EXPERIMENT) -> dict:
    return {
        "time": time,
        "experiment": experiment,
        "variant": variant,
        "model_commit": "0" * 40,
        "user": user,
    }


def conversion(user: str, time: str, experiment: str | None = EXPERIMENT) -> dict:
    event = {"time": time, "user": user, "value": 12.5}
    if experiment is not None:
        event["experiment"] = experiment
    return event


def config_with(*variants: tuple[str, float]) -> dict:
    """A published config whose first variant is the control."""
    return {
        "schema_version": 1,
        "experiment": EXPERIMENT,
        "salt": "s",
        "control": variants[0][0],
        "variants": [
            {"name": name, "branch": f"b/{name}", "weight": weight, "model_commit": "0" * 40}
            for name, weight in variants
        ],
    }


def cohorts(counts: dict[str, tuple[int, int]]) -> tuple[list, list]:
    """One exposure per user at noon; the first `converted` users of a variant convert at 1 pm."""
    exposures, conversions = [], []
    for variant, (users, converted) in counts.items():
        for number in range(users):
            user = f"{variant}-{number:05d}"
            exposures.append(exposure(user, variant))
            if number < converted:
                conversions.append(conversion(user, "2026-11-23T13:00:00Z"))
    return exposures, conversions


# --- the statistics, against a worked example ------------------------------------------

# Control 1000 users / 100 conversions, treatment 1000 / 130, alpha 0.05, z = 1.959964:
#   lift = 0.13 - 0.10 = 0.03
#   Wald SE = sqrt(0.1*0.9/1000 + 0.13*0.87/1000) = sqrt(0.0002031) = 0.0142513
#   CI = 0.03 -/+ 1.959964 * 0.0142513 = 0.03 -/+ 0.0279321 = [0.0020679, 0.0579321]
#   pooled p = 230/2000 = 0.115; SE0 = sqrt(0.115*0.885*(2/1000)) = 0.0142671
#   z = 0.03 / 0.0142671 = 2.10274; p = 2 * (1 - Phi(2.10274)) = 0.035488
#   relative lift = 0.13/0.10 - 1 = 0.3; ln(1.3) = 0.262364
#   SE(ln ratio) = sqrt(1/130 - 1/1000 + 1/100 - 1/1000) = sqrt(0.0156923) = 0.125269
#   ln CI = 0.262364 -/+ 0.245525 = [0.016839, 0.507889]; exp - 1 = [0.016982, 0.661776]
HAND = {"control": (1000, 100), "treatment": (1000, 130)}


def test_the_worked_example():
    z = z_critical(0.05)
    assert z == pytest.approx(1.959964, abs=1e-6)
    result = compare(HAND["control"], HAND["treatment"], z)
    assert result["absolute_lift"] == pytest.approx(0.03, abs=1e-12)
    low, high = result["absolute_lift_ci"]
    assert (high - low) / 2 / z == pytest.approx(0.0142513, abs=1e-7)  # the Wald SE
    assert low == pytest.approx(0.0020679, abs=1e-6)
    assert high == pytest.approx(0.0579321, abs=1e-6)
    assert result["z"] == pytest.approx(2.10274, abs=1e-4)
    assert result["p_value"] == pytest.approx(0.035488, abs=1e-5)
    assert result["relative_lift"] == pytest.approx(0.3, abs=1e-12)
    assert result["relative_lift_ci"] == pytest.approx([0.016982, 0.661776], abs=1e-5)
    assert result["notes"] == []


def test_the_worked_example_end_to_end_names_the_treatment(tmp_path, capsys):
    code = run(tmp_path, config_with(("control", 50), ("treatment", 50)), *cohorts(HAND))
    assert code == 0
    report = report_json(tmp_path)
    control, treatment = report["variants"]
    assert (control["users"], control["conversions"], control["rate"]) == (1000, 100, 0.1)
    assert (treatment["users"], treatment["conversions"], treatment["rate"]) == (1000, 130, 0.13)
    (comparison,) = report["comparisons"]
    assert comparison["p_value"] == pytest.approx(0.035488, abs=1e-5)
    assert comparison["absolute_lift_ci"] == pytest.approx([0.0020679, 0.0579321], abs=1e-6)
    assert report["srm"]["chi_square"] == 0 and not report["srm"]["mismatch"]
    assert report["verdict"]["kind"] == "winner"
    assert report["verdict"]["winner"] == "treatment"

    markdown = (tmp_path / "out" / "report.md").read_text()
    assert capsys.readouterr().out == markdown  # what is printed is the report itself
    row = next(line for line in markdown.splitlines() if line.startswith("| treatment |"))
    for shown in ("13.00%", "+3.00 pp [+0.21, +5.79]", "+30.0% [+1.7%, +66.2%]", "0.0355"):
        assert shown in row
    assert "Winner: treatment" in markdown
    assert "Bonferroni" not in markdown


def test_bonferroni_with_two_treatments_withholds_a_p_of_0_035(tmp_path):
    counts = {**HAND, "other": (1000, 100)}
    config = config_with(("control", 1), ("treatment", 1), ("other", 1))
    assert run(tmp_path, config, *cohorts(counts)) == 0
    report = report_json(tmp_path)
    assert report["corrected_alpha"] == pytest.approx(0.025)
    assert report["correction"] == "bonferroni"
    assert report["comparisons"][0]["p_value"] < 0.05  # significant alone, not after correction
    assert not report["comparisons"][0]["significant"]
    assert report["verdict"]["kind"] == "no_significant_difference"
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "Bonferroni-corrected α = 0.05/2 = 0.025" in markdown


def test_a_worse_treatment_makes_the_control_better(tmp_path):
    counts = {"control": (1000, 130), "treatment": (1000, 100)}
    assert run(tmp_path, config_with(("control", 50), ("treatment", 50)), *cohorts(counts)) == 0
    verdict = report_json(tmp_path)["verdict"]
    assert (verdict["kind"], verdict["winner"]) == ("control_better", None)


def test_the_sample_ratio_check_by_hand():
    # 1000 v 1100 at 50/50: expected 1050 each, chi2 = 2 * 50^2/1050 = 4.7619 (1 df), p 0.0291
    passed = srm_check({"a": 1000, "b": 1100}, {"a": 50, "b": 50})
    assert passed["chi_square"] == pytest.approx(4.7619, abs=1e-4)
    assert passed["p_value"] == pytest.approx(0.0291, abs=1e-4)
    assert not passed["mismatch"]
    # 1000 v 1200: chi2 = 2 * 100^2/1100 = 18.1818, p 2.0e-5 < 0.001
    failed = srm_check({"a": 1000, "b": 1200}, {"a": 50, "b": 50})
    assert failed["chi_square"] == pytest.approx(18.1818, abs=1e-4)
    assert failed["p_value"] < SRM_THRESHOLD and failed["mismatch"]
    # Weights, not equality: 700 v 300 is exactly 70/30.
    assert srm_check({"a": 700, "b": 300}, {"a": 70, "b": 30})["chi_square"] == 0
    # A weight-0 variant with users is a mismatch whatever the numbers.
    assert srm_check({"a": 500, "b": 1}, {"a": 1, "b": 0})["mismatch"]


@pytest.mark.parametrize(
    ("control", "treatment", "expected"),
    [
        # Nobody converted: no variance, no test, no interval, no ratio.
        ((20, 0), (20, 0), {"absolute_lift": 0.0, "absolute_lift_ci": None, "p_value": None}),
        # Everyone converted: a ratio of 1, but no interval and no test.
        ((20, 20), (20, 20), {"relative_lift": 0.0, "relative_lift_ci": None, "p_value": None}),
        # 0% v 100%: the Wald SE is 0 and the ratio has no denominator; the z-test still runs.
        ((20, 0), (20, 20), {"absolute_lift_ci": None, "relative_lift": None}),
        # A treatment with no conversions: -100%, but log(0) has no interval.
        ((20, 5), (20, 0), {"relative_lift": -1.0, "relative_lift_ci": None}),
        # A variant with no users: nothing to compare.
        ((20, 5), (0, 0), {"absolute_lift": None, "relative_lift": None, "p_value": None}),
    ],
)
def test_degenerate_counts_give_explicit_gaps_not_crashes(control, treatment, expected):
    result = compare(control, treatment, z_critical(0.05))
    for key, value in expected.items():
        assert result[key] == value, key
    assert result["notes"]  # every gap is explained
    if result["p_value"] is not None:
        assert 0 <= result["p_value"] <= 1


# --- the exposure and conversion rules ------------------------------------------------


def test_first_exposure_and_conversion_timing_rules(tmp_path):
    exposures = [
        # u1: the file order is not the time order; the first exposure is at 10:00.
        exposure("u1", "control", "2026-11-23T12:00:00Z"),
        exposure("u1", "control", "2026-11-23T10:00:00Z"),
        exposure("u2", "treatment", "2026-11-23T12:00:00Z"),
        exposure("u3", "treatment", "2026-11-23T12:00:00.000001Z"),
        exposure("u6", "control"),
        exposure("u7", "control"),
        exposure("u8", "treatment", "2026-11-23T12:00:00Z"),
        # Another experiment's variants are not this config's, and need not be.
        exposure("x1", "whatever", experiment="another"),
    ]
    conversions = [
        conversion("u1", "2026-11-23T11:00:00Z"),  # after the first exposure: counts
        conversion("u2", "2026-11-23T11:59:59.999999Z"),  # before its exposure: not used
        conversion("u3", "2026-11-23T12:00:00.000001Z", experiment=None),  # at exposure: counts
        conversion("u5", "2026-11-23T13:00:00Z"),  # never exposed: not used
        conversion("u6", "2026-11-23T13:00:00Z", experiment="another"),  # ignored
        conversion("u7", "2026-11-23T13:00:00Z"),  # two conversions, one converting user
        conversion("u7", "2026-11-23T14:00:00Z"),
        conversion("u8", "2026-11-23T13:30:00+02:00"),  # 11:30 UTC: before exposure
    ]
    assert run(tmp_path, config_with(("control", 1), ("treatment", 1)), exposures, conversions) == 0
    report = report_json(tmp_path)
    control, treatment = report["variants"]
    assert (control["users"], control["conversions"]) == (3, 2)  # u1, u6, u7; u1 and u7
    assert (treatment["users"], treatment["conversions"]) == (3, 1)  # u2, u3, u8; u3
    quality = report["data_quality"]
    assert quality["exposure_events"] == 7
    assert quality["exposure_events_other_experiments"] == 1
    assert quality["repeat_exposures"] == 1
    assert quality["conversion_events"] == 7
    assert quality["conversion_events_counted"] == 4
    assert quality["conversions_before_exposure"] == 2
    assert quality["conversions_of_never_exposed_users"] == 1
    assert quality["conversion_events_other_experiments"] == 1
    assert quality["users_in_several_variants"] == 0


def test_users_in_two_variants_are_excluded_wherever_they_started(tmp_path):
    exposures, conversions = cohorts({"control": (10, 5), "treatment": (10, 5)})
    exposures += [
        exposure("both-1", "control", "2026-11-23T10:00:00Z"),
        exposure("both-1", "treatment", "2026-11-23T11:00:00Z"),
        exposure("both-2", "treatment", "2026-11-23T11:00:00Z"),
        exposure("both-2", "treatment", "2026-11-23T12:00:00Z"),
        exposure("both-2", "control", "2026-11-23T10:00:00Z"),
    ]
    conversions += [conversion("both-1", "2026-11-23T13:00:00Z")]
    assert run(tmp_path, config_with(("control", 1), ("treatment", 1)), exposures, conversions) == 0
    report = report_json(tmp_path)
    assert [(v["users"], v["conversions"]) for v in report["variants"]] == [(10, 5), (10, 5)]
    quality = report["data_quality"]
    assert quality["users_in_several_variants"] == 2
    assert quality["conversions_of_excluded_users"] == 1
    assert quality["analysed_users"] == 20
    assert "more than one variant (excluded): 2" in (tmp_path / "out" / "report.md").read_text()


# --- simulated experiments --------------------------------------------------------------


def simulated(folder: Path, rates: dict, *, seed: int, skew: float = 0.0, noise=DEFAULT_NOISE):
    return simulate(default_config(), 10000, rates, folder, seed=seed, skew=skew, noise=noise)


def test_a_real_effect_names_the_treatment_and_every_count_matches_the_truth(tmp_path):
    truth = simulated(tmp_path, {"control": 0.10, "treatment": 0.14}, seed=1)
    assert run_files(tmp_path) == 0
    report = report_json(tmp_path)
    assert report["verdict"]["winner"] == "treatment"
    for variant in report["variants"]:
        assert variant["users"] == truth.users[variant["name"]]
        assert variant["conversions"] == truth.converters[variant["name"]]
    quality = report["data_quality"]
    assert quality["exposure_events"] == truth.exposure_events
    assert quality["users_in_several_variants"] == truth.cross_variant_users > 0
    assert quality["conversions_before_exposure"] == truth.early_conversions > 0
    assert quality["conversions_of_never_exposed_users"] == truth.unexposed_conversions > 0
    assert quality["conversions_of_excluded_users"] == truth.excluded_user_conversions
    assert quality["conversion_events_counted"] == truth.counted_conversions
    assert quality["exposure_events_other_experiments"] == truth.other_experiment_exposures
    assert quality["conversion_events_other_experiments"] == truth.other_experiment_conversions
    assert quality["repeat_exposures"] > 0
    assert quality["exposures_with_other_model_commit"] == 0


def test_no_effect_names_no_winner(tmp_path):
    simulated(tmp_path, {"control": 0.10, "treatment": 0.10}, seed=2)
    assert run_files(tmp_path) == 0
    report = report_json(tmp_path)
    assert report["comparisons"][0]["p_value"] > 0.05
    assert report["verdict"]["kind"] == "no_significant_difference"
    assert report["verdict"]["winner"] is None


def test_a_skewed_split_is_flagged_and_no_winner_is_called(tmp_path, capsys):
    simulated(tmp_path, {"control": 0.10, "treatment": 0.14}, seed=3, skew=0.1)
    assert run_files(tmp_path) == 3
    report = report_json(tmp_path)
    assert report["srm"]["mismatch"] and report["srm"]["p_value"] < SRM_THRESHOLD
    # The effect is real and significant; the broken split is the only reason for no winner.
    assert report["comparisons"][0]["significant"]
    assert report["verdict"]["kind"] == "sample_ratio_mismatch"
    assert report["verdict"]["winner"] is None
    markdown = capsys.readouterr().out
    assert "**MISMATCH**" in markdown
    assert "No winner is called: sample ratio mismatch" in markdown
    assert "not comparable" in markdown
    assert "Winner:" not in markdown
    assert (tmp_path / "out" / "chart.png").stat().st_size > 0


def test_a_clean_balanced_simulation_passes_the_sample_ratio_check(tmp_path):
    simulated(tmp_path, {"control": 0.10, "treatment": 0.10}, seed=4, noise=CLEAN)
    assert run_files(tmp_path) == 0
    report = report_json(tmp_path)
    assert not report["srm"]["mismatch"]
    assert (
        sum(
            report["data_quality"][k]
            for k in (
                "repeat_exposures",
                "users_in_several_variants",
                "conversions_before_exposure",
            )
        )
        == 0
    )


# --- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"time": "2026-11-23T12:00:00Z", "experiment": \n', "not valid JSON"),
        ("[1, 2]\n", "not a JSON object"),
        (json.dumps(exposure("", "control")) + "\n", '"user" must be a non-empty string'),
        (json.dumps(exposure("u", "control", "yesterday")) + "\n", "is not an ISO 8601 time"),
        (json.dumps(exposure("u", "control", "2026-11-23T12:00:00")) + "\n", "no time zone"),
        (json.dumps(exposure("u", "mystery")) + "\n", "variant 'mystery' is not in experiment"),
    ],
)
def test_a_bad_exposure_line_is_an_error_naming_file_and_line(tmp_path, capsys, bad_line, message):
    exposures = [exposure("u1", "control"), "\n", exposure("u2", "treatment"), bad_line]
    code = run(tmp_path, config_with(("control", 1), ("treatment", 1)), exposures, [])
    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ")
    assert f"{tmp_path / 'exposures.jsonl'}:4: " in error  # blank lines still count
    assert message in error
    assert not (tmp_path / "out").exists()


def test_a_bad_conversion_line_is_an_error_naming_file_and_line(tmp_path, capsys):
    conversions = [conversion("u1", NOON), "not json\n"]
    code = run(tmp_path, config_with(("c", 1), ("t", 1)), [exposure("u1", "c")], conversions)
    assert code == 2
    assert f"{tmp_path / 'conversions.jsonl'}:2: not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"control": "nobody"}, '"control" must name one of the variants'),
        ({"experiment": None, "variants": []}, "declares no experiment"),
        ({"schema_version": 2}, "schema_version 2 is not supported"),
        ({"variants": [{"name": "c", "weight": 1}]}, "at least two variants"),
        ({"variants": [{"name": "c", "weight": 1}, {"name": "c", "weight": 1}]}, "unique"),
        ({"variants": [{"name": "c", "weight": True}, {"name": "t", "weight": 1}]}, "weight"),
    ],
)
def test_a_bad_config_is_an_error(tmp_path, capsys, change, message):
    config = config_with(("c", 1), ("t", 1)) | change
    assert run(tmp_path, config, [exposure("u1", "c")], []) == 2
    assert message in capsys.readouterr().err


def test_alpha_must_be_a_probability(tmp_path):
    with pytest.raises(SystemExit) as stopped:
        run(tmp_path, config_with(("c", 1), ("t", 1)), [], [], "--alpha", "5")
    assert stopped.value.code == 2


# --- guard rails ----------------------------------------------------------------------


def test_a_variant_with_no_users_is_reported_not_crashed_on(tmp_path):
    # Expected 6.67 users each: chi2 = 2 * 3.33^2/6.67 + 6.67 = 10.0 (2 df), p 0.0067: no SRM.
    counts = {"control": (10, 2), "treatment": (10, 3)}
    config = config_with(("control", 1), ("treatment", 1), ("empty", 1))
    assert run(tmp_path, config, *cohorts(counts)) == 0
    report = report_json(tmp_path)
    assert report["srm"]["chi_square"] == pytest.approx(10.0)
    empty = report["variants"][2]
    assert (empty["users"], empty["rate"], empty["rate_ci"]) == (0, None, None)
    assert report["comparisons"][1]["p_value"] is None
    assert report["verdict"]["kind"] == "no_significant_difference"  # the tested pair decides
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "empty: no users" in markdown
    assert "the treatment has no users" in markdown
    assert "| empty | `b/empty` @ `0000000` | 1 | 0 | 0 | n/a | n/a | n/a | n/a |" in markdown


@pytest.mark.parametrize(
    "counts",
    [
        {"control": (0, 0), "treatment": (3, 1)},  # no control: nothing can be compared
        {"control": (20, 0), "treatment": (20, 0)},  # nobody converted: nothing to test
    ],
)
def test_no_testable_comparison_gives_no_verdict(tmp_path, counts):
    assert run(tmp_path, config_with(("control", 1), ("treatment", 1)), *cohorts(counts)) == 0
    report = report_json(tmp_path)
    assert report["verdict"]["kind"] == "insufficient_data"
    assert report["verdict"]["winner"] is None
    assert (tmp_path / "out" / "chart.png").exists()


def test_rates_of_0_and_100_percent_lie_inside_their_intervals(tmp_path):
    # Rounding put the Wilson bound about 1e-17 above 0 (below 1) for many sizes, 7 and 10
    # among them: a 0% (100%) rate fell outside its own interval and the chart crashed.
    z = z_critical(0.05)
    for users in range(1, 200):
        assert wilson_interval(0, users, z)[0] == 0.0
        assert wilson_interval(users, users, z)[1] == 1.0
    counts = {"control": (7, 0), "treatment": (10, 10)}
    assert run(tmp_path, config_with(("control", 1), ("treatment", 1)), *cohorts(counts)) == 0
    assert (tmp_path / "out" / "chart.png").stat().st_size > 0


# --- the files ------------------------------------------------------------------------


def test_the_chart_is_a_real_png(tmp_path):
    simulated(tmp_path, {"control": 0.10, "treatment": 0.12}, seed=5)
    run_files(tmp_path)
    png = (tmp_path / "out" / "chart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk comes first
    assert 800 <= width <= 3000 and 400 <= height <= 2000
    assert 10_000 < len(png) < 2_000_000
    pixels = imread(tmp_path / "out" / "chart.png")
    assert pixels.shape[:2] == (height, width)
    assert pixels.std() > 0.05  # something was drawn, not a blank canvas


def _number(text: str) -> float:
    return float(text.replace("%", "").replace("pp", "").strip())


def test_report_json_and_report_md_show_the_same_figures(tmp_path):
    simulated(tmp_path, {"control": 0.10, "treatment": 0.125}, seed=6)
    run_files(tmp_path)
    report = report_json(tmp_path)
    markdown = (tmp_path / "out" / "report.md").read_text()
    by_treatment = {c["treatment"]: c for c in report["comparisons"]}
    for variant in report["variants"]:
        label = f"{variant['name']} (control)" if variant["is_control"] else variant["name"]
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {label} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert int(cells[3]) == variant["users"]
        assert int(cells[4]) == variant["conversions"]
        rate, low, high = re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cells[5]).groups()
        assert _number(rate) == pytest.approx(variant["rate"] * 100, abs=0.005)
        assert [_number(low), _number(high)] == pytest.approx(
            [b * 100 for b in variant["rate_ci"]], abs=0.005
        )
        comparison = by_treatment.get(variant["name"])
        if comparison is None:
            assert cells[6:] == ["—", "—", "—"]
            continue
        lift, low, high = re.fullmatch(r"(\S+) pp \[(\S+), (\S+)\]", cells[6]).groups()
        assert _number(lift) == pytest.approx(comparison["absolute_lift"] * 100, abs=0.005)
        assert [_number(low), _number(high)] == pytest.approx(
            [b * 100 for b in comparison["absolute_lift_ci"]], abs=0.005
        )
        lift, low, high = re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", cells[7]).groups()
        assert _number(lift) == pytest.approx(comparison["relative_lift"] * 100, abs=0.05)
        assert [_number(low), _number(high)] == pytest.approx(
            [b * 100 for b in comparison["relative_lift_ci"]], abs=0.05
        )
        p_value = comparison["p_value"]
        assert cells[8] == ("<0.0001" if p_value < 1e-4 else f"{p_value:.4f}")
    srm = report["srm"]
    assert f"χ² = {srm['chi_square']:.2f} ({srm['df']} df)" in markdown
    assert report["verdict"]["text"] in markdown
    quality = report["data_quality"]
    assert f"Conversions before exposure (not used): {quality['conversions_before_exposure']}." in (
        markdown
    )
    assert math.isclose(report["confidence"], 0.95)
