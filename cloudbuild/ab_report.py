"""`python -m cloudbuild ab-report`: the analysis of one A/B experiment from its event logs.

    python -m cloudbuild ab-report --config EXPERIMENT.json --exposures FILE [FILE ...]
        --conversions FILE [FILE ...] [--out DIR] [--alpha 0.05]

The inputs are the experiment's published config, the exposure events the reference
client writes (one JSON line per assignment) and the site's conversion events (JSON lines
with time, user and optionally experiment). The rules, which report.md repeats:

- a user belongs to the variant of their first (earliest) exposure; a user exposed to more
  than one variant is counted and left out, since their conversion cannot be credited to
  one model;
- a user converts when they have a conversion at or after that first exposure; conversions
  before it, of excluded users and of never-exposed users are counted, never used;
- events of other experiments are ignored; a variant the config does not name is an error.

Output in --out: report.md (also printed), report.json (the same figures, built from the
same dict, so the two cannot disagree) and chart.png. Exit status: 0 when the report is
written, 2 for unusable input (`error: ...`), 3 when the report is written but the
sample-ratio check failed: the verdict then refuses to name a winner, and a script that
only looks at the status must not read "report written" as "ship it".
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import chi2, norm

from cloudbuild.cli_common import PROG, CommandError, checked

REPORT_SCHEMA_VERSION = 1
# The version of experiment.published()'s document this parser was written for. Not
# imported from cloudbuild.experiment on purpose: when the publisher bumps its version,
# reading the new format must fail here until this parser is updated to follow it.
CONFIG_SCHEMA_VERSION = 1
DEFAULT_OUT = Path("build/ab-report")
# The usual threshold for a sample-ratio mismatch: stricter than any alpha used for the
# comparison itself, because the check runs on every report and a false alarm stops a
# decision, while a real mismatch is usually so gross that its p-value is tiny.
SRM_THRESHOLD = 0.001
# Below this many conversions (or non-conversions) in an arm, the normal approximations
# behind the Wald interval, the delta method and the z-test are unreliable; below this
# many expected users in a variant, so is the chi-square of the sample-ratio check.
SMALL_COUNT = 5
SRM_REASON = (
    "users are not split between the variants as configured, so the assignment or the "
    "logging of exposures is broken; the variants' users are then not comparable groups "
    "and any difference in conversion may come from who was counted rather than from the "
    "models. Find the cause (exposures lost for one variant, a redirect or crash dropping "
    "users, a bot filter applied to one arm, a changed weight) before reading the figures"
)


# --- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    weight: float
    branch: str
    model_commit: str


@dataclass(frozen=True)
class Experiment:
    name: str
    control: str
    variants: tuple[Variant, ...]

    @property
    def treatments(self) -> tuple[Variant, ...]:
        return tuple(v for v in self.variants if v.name != self.control)


def load_experiment(path: Path) -> Experiment:
    """The published experiment config, checked for what the analysis relies on."""
    try:
        document = json.loads(path.read_bytes())
    except OSError as error:
        raise CommandError(f"cannot read the experiment config {path}: {error.strerror}") from None
    except ValueError as error:
        raise CommandError(f"{path}: not JSON: {error}") from None

    def bad(message: str) -> CommandError:
        return CommandError(f"{path}: {message}")

    if not isinstance(document, dict):
        raise bad("the experiment config must be a JSON object")
    version = document.get("schema_version", CONFIG_SCHEMA_VERSION)
    if version != CONFIG_SCHEMA_VERSION:
        raise bad(
            f"schema_version {version!r} is not supported (this tool reads {CONFIG_SCHEMA_VERSION})"
        )
    name, control, variants = (document.get(k) for k in ("experiment", "control", "variants"))
    if name is None and variants == []:
        raise bad("the published document declares no experiment (it has no variants)")
    if not isinstance(name, str) or not name:
        raise bad('"experiment" must be a non-empty string')
    if not isinstance(variants, list) or len(variants) < 2:
        raise bad('"variants" must list at least two variants (the control and a treatment)')
    parsed = []
    for number, entry in enumerate(variants, start=1):
        if not isinstance(entry, dict):
            raise bad(f"variant {number} is not an object")
        variant_name, weight = entry.get("name"), entry.get("weight")
        if not isinstance(variant_name, str) or not variant_name:
            raise bad(f'variant {number}: "name" must be a non-empty string')
        # bool is an int in Python; a weight of `true` is a mistake, not 1.
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise bad(f'variant {variant_name!r}: "weight" must be a number >= 0')
        branch, commit = entry.get("branch", ""), entry.get("model_commit", "")
        if not isinstance(branch, str) or not isinstance(commit, str):
            raise bad(f'variant {variant_name!r}: "branch" and "model_commit" must be strings')
        parsed.append(Variant(variant_name, float(weight), branch, commit))
    names = [v.name for v in parsed]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise bad(f"variant names must be unique: {', '.join(duplicates)} repeated")
    if control not in names:
        raise bad(f'"control" must name one of the variants ({", ".join(names)}), not {control!r}')
    if sum(v.weight for v in parsed) <= 0:
        raise bad("the variants' weights must not all be 0")
    return Experiment(name, control, tuple(parsed))


def _events(paths: Sequence[Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    """("file:line", event) per non-blank line of each file, read as a stream, never all
    at once; a line that is no JSON object is an error naming its file and line."""
    for path in paths:
        try:
            stream = path.open("rb")
        except OSError as error:
            raise CommandError(f"cannot read {path}: {error.strerror}") from None
        with stream:
            for number, raw in enumerate(stream, start=1):
                if not raw.strip():
                    continue  # a trailing newline or a blank line is not an event
                where = f"{path}:{number}"
                try:
                    event = json.loads(raw)
                except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
                    raise CommandError(f"{where}: not valid JSON: {error}") from None
                if not isinstance(event, dict):
                    raise CommandError(f"{where}: not a JSON object")
                yield where, event


def _field(event: dict[str, Any], key: str, where: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise CommandError(f'{where}: "{key}" must be a non-empty string, not {value!r}')
    return value


def _time(event: dict[str, Any], where: str) -> datetime:
    text = _field(event, "time", where)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f'{where}: "time" {text!r} is not an ISO 8601 time') from None
    # A time without zone cannot be ordered against the client's UTC exposure times.
    if moment.tzinfo is None:
        raise CommandError(f'{where}: "time" {text!r} has no time zone (expected e.g. ...Z)')
    return moment


@dataclass
class Tally:
    """What reading the events leaves: per-user state and the data-quality counts."""

    # user -> [first exposure time, variant index of that exposure, seen in another variant]
    users: dict[str, list[Any]] = field(default_factory=dict)
    converted: set[str] = field(default_factory=set)
    quality: Counter[str] = field(default_factory=Counter)
    model_commits: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )


def read_exposures(experiment: Experiment, paths: Sequence[Path], tally: Tally) -> None:
    index = {v.name: i for i, v in enumerate(experiment.variants)}
    for where, event in _events(paths):
        if _field(event, "experiment", where) != experiment.name:
            tally.quality["exposure_events_other_experiments"] += 1
            continue
        variant = _field(event, "variant", where)
        if variant not in index:
            raise CommandError(
                f"{where}: variant {variant!r} is not in experiment {experiment.name!r} "
                f"(its variants: {', '.join(index)})"
            )
        position = index[variant]
        moment, user = _time(event, where), _field(event, "user", where)
        commit = event.get("model_commit", "")
        if not isinstance(commit, str):
            raise CommandError(f'{where}: "model_commit" must be a string')
        tally.quality["exposure_events"] += 1
        tally.model_commits[variant][commit] += 1
        configured = experiment.variants[position].model_commit
        if configured and commit != configured:
            tally.quality["exposures_with_other_model_commit"] += 1
        state = tally.users.get(user)
        if state is None:
            tally.users[user] = [moment, position, False]
            continue
        # Any variant differing from the one kept means the user saw two variants.
        if position != state[1]:
            state[2] = True
        if moment < state[0]:
            state[0], state[1] = moment, position


def read_conversions(experiment: Experiment, paths: Sequence[Path], tally: Tally) -> None:
    """Classify each conversion against the (complete) exposures; keep converting users."""
    for where, event in _events(paths):
        tagged = event.get("experiment")
        if tagged is not None and not isinstance(tagged, str):
            raise CommandError(f'{where}: "experiment" must be a string')
        if tagged is not None and tagged != experiment.name:
            tally.quality["conversion_events_other_experiments"] += 1
            continue
        moment, user = _time(event, where), _field(event, "user", where)
        tally.quality["conversion_events"] += 1
        state = tally.users.get(user)
        if state is None:
            tally.quality["conversions_of_never_exposed_users"] += 1
        elif state[2]:
            tally.quality["conversions_of_excluded_users"] += 1
        elif moment < state[0]:
            tally.quality["conversions_before_exposure"] += 1
        else:
            tally.quality["conversion_events_counted"] += 1
            tally.converted.add(user)


# --- statistics -----------------------------------------------------------------------


def z_critical(alpha: float) -> float:
    """The two-sided normal quantile for a (1 - alpha) interval: 1.959964 for alpha 0.05."""
    return float(norm.ppf(1 - alpha / 2))


def wilson_interval(conversions: int, users: int, z: float) -> list[float] | None:
    """Score interval of one rate: unlike Wald it stays inside [0, 1] and is not empty at 0%."""
    if users == 0:
        return None
    p, z2 = conversions / users, z * z
    centre = (p + z2 / (2 * users)) / (1 + z2 / users)
    half = z / (1 + z2 / users) * math.sqrt(p * (1 - p) / users + z2 / (4 * users * users))
    # At 0% (100%) the bound is exactly 0 (1), but centre - half rounds to about 1e-17
    # above it for many n: a rate outside its own interval, which the chart refuses.
    low = 0.0 if conversions == 0 else max(0.0, centre - half)
    high = 1.0 if conversions == users else min(1.0, centre + half)
    return [low, high]


def compare(control: tuple[int, int], treatment: tuple[int, int], z: float) -> dict[str, Any]:
    """Treatment against control, each (users, converted users).

    Absolute lift: pt - pc with the unpooled Wald interval, SE = sqrt(pt(1-pt)/nt +
    pc(1-pc)/nc). Relative lift: pt/pc - 1 with the delta-method interval on log(pt/pc),
    SE = sqrt(1/xt - 1/nt + 1/xc - 1/nc), exponentiated back (so it is asymmetric and never
    below -100%). p-value: the two-sided pooled two-proportion z-test. Every figure that
    the data cannot define is None, with a note saying why, rather than a NaN or a
    zero-width interval that would look like certainty.
    """
    (nc, xc), (nt, xt) = control, treatment
    result: dict[str, Any] = {
        "absolute_lift": None,
        "absolute_lift_ci": None,
        "relative_lift": None,
        "relative_lift_ci": None,
        "z": None,
        "p_value": None,
        "notes": [],
    }
    notes = result["notes"]
    if nc == 0 or nt == 0:
        arms = [name for name, n in (("the control", nc), ("the treatment", nt)) if n == 0]
        notes.append(f"no comparison: {' and '.join(arms)} has no users")
        return result

    pc, pt = xc / nc, xt / nt
    diff = pt - pc
    result["absolute_lift"] = diff
    se = math.sqrt(pc * (1 - pc) / nc + pt * (1 - pt) / nt)
    if se > 0:
        result["absolute_lift_ci"] = [diff - z * se, diff + z * se]
    else:
        notes.append(
            "absolute-lift CI undefined: both rates are 0% or 100%, so the Wald standard error is 0"
        )

    if xc == 0:
        notes.append("relative lift undefined: the control has no conversions")
    else:
        result["relative_lift"] = pt / pc - 1
        if xt == 0:
            notes.append("relative-lift CI undefined: the treatment has no conversions (log 0)")
        else:
            se_log = math.sqrt(1 / xt - 1 / nt + 1 / xc - 1 / nc)
            if se_log > 0:
                log_ratio = math.log(pt / pc)
                result["relative_lift_ci"] = [
                    math.exp(log_ratio - z * se_log) - 1,
                    math.exp(log_ratio + z * se_log) - 1,
                ]
            else:
                notes.append("relative-lift CI undefined: every user converted in both arms")

    pooled = (xc + xt) / (nc + nt)
    if 0 < pooled < 1:
        se0 = math.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / nt))
        result["z"] = diff / se0
        result["p_value"] = float(2 * norm.sf(abs(result["z"])))
    else:
        nobody = "nobody converted" if pooled == 0 else "every user converted"
        notes.append(f"no test possible: {nobody} in either arm")

    if min(xc, nc - xc, xt, nt - xt) < SMALL_COUNT:
        notes.append(
            f"fewer than {SMALL_COUNT} conversions or non-conversions in an arm: the normal "
            "approximations behind the intervals and the p-value are unreliable"
        )
    return result


def srm_check(observed: dict[str, int], weights: dict[str, float]) -> dict[str, Any]:
    """Chi-square goodness of fit of users per variant against the configured weights."""
    total, weight_total = sum(observed.values()), sum(weights.values())
    expected = {name: total * weights[name] / weight_total for name in observed}
    result: dict[str, Any] = {
        "observed": observed,
        "expected": expected,
        "chi_square": None,
        "df": None,
        "p_value": None,
        "threshold": SRM_THRESHOLD,
        "mismatch": False,
        "note": "",
    }
    unexpected = [name for name in observed if weights[name] == 0 and observed[name] > 0]
    if unexpected:
        # A weight-0 variant with users is a mismatch by definition; chi-square is infinite.
        result.update(mismatch=True, p_value=0.0)
        result["note"] = f"variant(s) {', '.join(unexpected)} have weight 0 but got users"
        return result
    cells = [(observed[name], expected[name]) for name in observed if weights[name] > 0]
    if total == 0 or len(cells) < 2:
        result["note"] = "not testable: no users" if total == 0 else "not testable: one variant"
        return result
    chi_square = sum((o - e) ** 2 / e for o, e in cells)
    result.update(chi_square=chi_square, df=len(cells) - 1)
    result["p_value"] = float(chi2.sf(chi_square, len(cells) - 1))
    result["mismatch"] = result["p_value"] < SRM_THRESHOLD
    if min(e for _, e in cells) < SMALL_COUNT:
        result["note"] = (
            f"expected counts below {SMALL_COUNT}: the chi-square approximation is rough"
        )
    return result


# --- the report -----------------------------------------------------------------------


def analyse(experiment: Experiment, tally: Tally, alpha: float) -> dict[str, Any]:
    """All the report's figures, as the dict report.json holds and report.md renders."""
    z = z_critical(alpha)
    users: Counter[int] = Counter()
    converted: Counter[int] = Counter()
    excluded = 0
    for user, (_, index, crossed) in tally.users.items():
        if crossed:
            excluded += 1
            continue
        users[index] += 1
        converted[index] += user in tally.converted

    variants = []
    for index, v in enumerate(experiment.variants):
        n, x = users[index], converted[index]
        notes = []
        if n == 0:
            notes.append("no users")
        elif x == 0:
            notes.append("no conversions")
        elif x == n:
            notes.append("every user converted")
        variants.append(
            {
                "name": v.name,
                "is_control": v.name == experiment.control,
                "branch": v.branch,
                "model_commit": v.model_commit,
                "weight": v.weight,
                "users": n,
                "conversions": x,
                "rate": x / n if n else None,
                "rate_ci": wilson_interval(x, n, z),
                "model_commits_seen": dict(tally.model_commits.get(v.name, {})),
                "notes": notes,
            }
        )
    by_name = {v["name"]: v for v in variants}
    control = by_name[experiment.control]
    treatments = experiment.treatments
    corrected_alpha = alpha / len(treatments)
    comparisons = []
    for t in treatments:
        treated = by_name[t.name]
        result = compare(
            (control["users"], control["conversions"]),
            (treated["users"], treated["conversions"]),
            z,
        )
        p = result["p_value"]
        result = {"treatment": t.name, "control": experiment.control, **result}
        result["significant"] = p is not None and p < corrected_alpha
        comparisons.append(result)

    srm = srm_check(
        {v["name"]: v["users"] for v in variants}, {v.name: v.weight for v in experiment.variants}
    )
    quality = {
        key: tally.quality[key]
        for key in (
            "exposure_events",
            "exposure_events_other_experiments",
            "exposures_with_other_model_commit",
            "conversion_events",
            "conversion_events_other_experiments",
            "conversion_events_counted",
            "conversions_before_exposure",
            "conversions_of_never_exposed_users",
            "conversions_of_excluded_users",
        )
    }
    quality["exposed_users"] = len(tally.users)
    quality["repeat_exposures"] = quality["exposure_events"] - len(tally.users)
    quality["users_in_several_variants"] = excluded
    quality["analysed_users"] = len(tally.users) - excluded
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "experiment": experiment.name,
        "control": experiment.control,
        "alpha": alpha,
        "confidence": 1 - alpha,
        "z_critical": z,
        "comparisons_count": len(treatments),
        "corrected_alpha": corrected_alpha,
        "correction": "bonferroni" if len(treatments) > 1 else "none",
        "variants": variants,
        "comparisons": comparisons,
        "srm": srm,
        "verdict": verdict(experiment, variants, comparisons, srm, corrected_alpha),
        "data_quality": quality,
    }


def verdict(
    experiment: Experiment,
    variants: list[dict[str, Any]],
    comparisons: list[dict[str, Any]],
    srm: dict[str, Any],
    corrected_alpha: float,
) -> dict[str, Any]:
    """One decision: a winner only with a sound split, a significant p and a positive lift."""
    if srm["mismatch"]:
        split = ", ".join(f"{name} {n}" for name, n in srm["observed"].items())
        return {
            "kind": "sample_ratio_mismatch",
            "winner": None,
            "text": f"No winner is called: sample ratio mismatch (users: {split}; "
            f"{_p_is(srm['p_value'])}, below {SRM_THRESHOLD}). The {SRM_REASON}.",
        }
    tested = [c for c in comparisons if c["p_value"] is not None]
    if not tested:
        reasons = "; ".join(note for c in comparisons for note in c["notes"][:1])
        return {
            "kind": "insufficient_data",
            "winner": None,
            "text": f"No verdict: no treatment could be tested against the control ({reasons}).",
        }
    rate = {v["name"]: v["rate"] for v in variants}
    better = [c for c in tested if c["significant"] and c["absolute_lift"] > 0]
    worse = [c for c in tested if c["significant"] and c["absolute_lift"] < 0]
    threshold = f"α = {_num(corrected_alpha)}"
    if better:
        best = max(better, key=lambda c: rate[c["treatment"]])
        text = (
            f"Winner: {best['treatment']}: {_pct(rate[best['treatment']])} converted against "
            f"{_pct(rate[experiment.control])} for {experiment.control} (the control), lift "
            f"{_lift(best)}, {_p_is(best['p_value'])}, below {threshold}."
        )
        others = [c["treatment"] for c in better if c is not best]
        if others:
            text += (
                f" {', '.join(others)} also beat(s) the control significantly, with a lower "
                "observed rate (the treatments were not tested against each other)."
            )
        return {"kind": "winner", "winner": best["treatment"], "text": text}
    if worse:
        names = ", ".join(c["treatment"] for c in worse)
        return {
            "kind": "control_better",
            "winner": None,
            "text": f"Control better: no treatment beats {experiment.control}, and {names} "
            f"converts significantly worse (p < {threshold}). Keep the control.",
        }
    return {
        "kind": "no_significant_difference",
        "winner": None,
        "text": f"No significant difference: no treatment's p-value is below {threshold}. "
        "This is not proof that the variants are equal: the lift intervals show which "
        "effects the data still allow; a smaller effect needs more users.",
    }


def _num(value: float) -> str:
    return f"{value:.4g}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "<0.0001" if value < 0.0001 else f"{value:.4f}"


def _p_is(value: float | None) -> str:
    """ "p = 0.0355", or "p < 0.0001" where "p = <0.0001" would read oddly."""
    text = _p(value)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def _estimate(
    value: float | None,
    ci: list[float] | None,
    digits: int,
    unit: str,
    *,
    sign: str = "+",
    ci_unit: str | None = None,
) -> str:
    """A fraction in percent with its interval, "+30.0% [+1.7%, +66.2%]"; "n/a" if undefined.

    sign "+" signs every figure (a lift), "" only negative ones (a rate); the bounds
    carry `ci_unit`, by default `unit` (a lift in " pp" says its unit once).
    """
    if value is None:
        return "n/a"
    shown = f"{value * 100:{sign}.{digits}f}{unit}"
    if ci is None:
        return f"{shown} (CI undefined)"
    bound_unit = unit if ci_unit is None else ci_unit
    low, high = (f"{bound * 100:{sign}.{digits}f}{bound_unit}" for bound in ci)
    return f"{shown} [{low}, {high}]"


def _lift(comparison: dict[str, Any]) -> str:
    return _estimate(
        comparison["absolute_lift"], comparison["absolute_lift_ci"], 2, " pp", ci_unit=""
    )


def _level(report: dict[str, Any]) -> str:
    return f"{round(report['confidence'] * 100, 4):g}%"


def render_markdown(report: dict[str, Any]) -> str:
    level, alpha = _level(report), report["alpha"]
    by_treatment = {c["treatment"]: c for c in report["comparisons"]}
    lines = [
        f"# A/B experiment report: {report['experiment']}",
        "",
        f"Control: **{report['control']}**. Intervals are {level} (1 − α, α = {_num(alpha)}).",
        "",
        "## Results",
        "",
        f"| Variant | Branch | Weight | Users | Conversions | Rate [{level} CI] "
        f"| Lift vs control [{level} CI] | Relative lift [{level} CI] | p-value |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in report["variants"]:
        label = f"{v['name']} (control)" if v["is_control"] else v["name"]
        branch = f"`{v['branch']}`" if v["branch"] else "—"
        if v["model_commit"]:
            branch += f" @ `{v['model_commit'][:7]}`"
        rate = _estimate(v["rate"], v["rate_ci"], 2, "%", sign="")
        c = by_treatment.get(v["name"])
        if c is None:
            cells = ["—", "—", "—"]
        else:
            relative = _estimate(c["relative_lift"], c["relative_lift_ci"], 1, "%")
            cells = [_lift(c), relative, _p(c["p_value"])]
        lines.append(
            f"| {label} | {branch} | {_num(v['weight'])} | {v['users']} | {v['conversions']} "
            f"| {rate} | {' | '.join(cells)} |"
        )

    srm = report["srm"]
    lines += ["", "## Sample ratio", ""]
    weights = "/".join(_num(v["weight"]) for v in report["variants"])
    if srm["chi_square"] is not None:
        figures = f"χ² = {srm['chi_square']:.2f} ({srm['df']} df), {_p_is(srm['p_value'])}"
    else:
        figures = f"χ² n/a, {_p_is(srm['p_value'])}"
    state = "**MISMATCH**" if srm["mismatch"] else "users split as configured"
    if srm["p_value"] is None:
        state = "not checked"
    line = f"SRM check: {figures}: {state} (weights {weights}; flagged when p < {SRM_THRESHOLD})"
    lines.append(line + (f"; {srm['note']}." if srm["note"] else "."))

    lines += ["", "## Verdict", "", f"**{report['verdict']['text']}**", ""]
    lines += ["## Method", ""]
    lines += [
        "- A user belongs to the variant of their first exposure; users exposed to more "
        "than one variant are excluded. A user converts with a conversion at or after "
        "their first exposure; earlier conversions and those of never-exposed users are "
        "not used.",
        "- Rate interval: Wilson score. Lift: difference of rates with the unpooled Wald "
        "interval. Relative lift: rate ratio − 1, interval by the delta method on the log "
        "of the ratio (SE = √(1/x_t − 1/n_t + 1/x_c − 1/n_c)), exponentiated back.",
        "- p-value: two-sided pooled two-proportion z-test of each treatment against the "
        "control. The sample-ratio check is a chi-square goodness of fit of the analysed "
        "users per variant against the configured weights.",
    ]
    if report["correction"] == "bonferroni":
        lines.append(
            f"- {report['comparisons_count']} treatments are compared with the control, so "
            f"p-values are compared with a Bonferroni-corrected α = {_num(alpha)}/"
            f"{report['comparisons_count']} = {_num(report['corrected_alpha'])}; the "
            f"intervals stay at {level} each."
        )
    else:
        lines.append(f"- One treatment: p-values are compared with α = {_num(alpha)}.")

    notes = [f"{v['name']}: {note}" for v in report["variants"] for note in v["notes"]]
    notes += [
        f"{c['treatment']} vs control: {n}" for c in report["comparisons"] for n in c["notes"]
    ]
    if notes:
        lines += ["", "## Caveats", ""] + [f"- {note}" for note in notes]

    q = report["data_quality"]
    lines += [
        "",
        "## Data quality",
        "",
        f"- Exposure events: {q['exposure_events']} for {q['exposed_users']} users "
        f"({q['repeat_exposures']} beyond each user's first); "
        f"{q['exposure_events_other_experiments']} of other experiments ignored.",
        f"- Users exposed to more than one variant (excluded): {q['users_in_several_variants']};"
        f" users analysed: {q['analysed_users']}.",
        f"- Exposures served by another model commit than the config's: "
        f"{q['exposures_with_other_model_commit']}.",
        f"- Conversion events: {q['conversion_events']}; counted (at or after exposure): "
        f"{q['conversion_events_counted']}; {q['conversion_events_other_experiments']} of "
        "other experiments ignored.",
        f"- Conversions before exposure (not used): {q['conversions_before_exposure']}.",
        f"- Conversions of never-exposed users (not used): "
        f"{q['conversions_of_never_exposed_users']}.",
        f"- Conversions of excluded users (not used): {q['conversions_of_excluded_users']}.",
        "",
    ]
    return "\n".join(lines)


def draw_chart(report: dict[str, Any], path: Path) -> None:
    """Rates with their intervals, and each treatment's lift against the control."""
    fig = Figure(figsize=(11, 4.8), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: no display, no pyplot global state
    rates_ax, lift_ax = fig.subplots(1, 2, width_ratios=[1, 1.2])
    level = _level(report)
    variants = report["variants"]
    tops = [1.0]
    for i, v in enumerate(variants):
        if v["rate"] is None:
            rates_ax.text(i, 0, "no users", ha="center", va="bottom", color="dimgrey")
            continue
        rate, (low, high) = v["rate"] * 100, (b * 100 for b in v["rate_ci"])
        colour = "tab:grey" if v["is_control"] else "tab:blue"
        rates_ax.bar(i, rate, color=colour, alpha=0.8, width=0.6)
        rates_ax.errorbar(i, rate, yerr=[[rate - low], [high - rate]], color="black", capsize=8)
        rates_ax.text(i, high, f"{rate:.2f}%\nn={v['users']}", ha="center", va="bottom")
        tops.append(high)
    labels = [f"{v['name']}\n(control)" if v["is_control"] else v["name"] for v in variants]
    rates_ax.set_xticks(range(len(variants)), labels)
    rates_ax.set_ylim(0, max(tops) * 1.3)
    rates_ax.set_ylabel("conversion rate (%)")
    rates_ax.set_title(f"Conversion rate per variant, {level} CI (Wilson)")

    comparisons = report["comparisons"]
    for j, c in enumerate(comparisons):
        if c["absolute_lift"] is None:
            lift_ax.text(
                0,
                j,
                "no comparison",
                ha="center",
                va="center",
                color="dimgrey",
                backgroundcolor="white",
            )
            continue
        lift, ci = c["absolute_lift"] * 100, c["absolute_lift_ci"]
        colour = "tab:grey"
        # Under a sample-ratio mismatch nothing is significant in a way to act on.
        if c["significant"] and not report["srm"]["mismatch"]:
            colour = "tab:green" if lift > 0 else "tab:red"
        xerr = None if ci is None else [[lift - ci[0] * 100], [ci[1] * 100 - lift]]
        lift_ax.errorbar(lift, j, xerr=xerr, fmt="o", color=colour, capsize=8, markersize=8)
        lift_ax.annotate(
            f"{lift:+.2f} pp, {_p_is(c['p_value'])}",
            (lift, j),
            textcoords="offset points",
            xytext=(0, 10),
            ha="center",
        )
    lift_ax.axvline(0, color="black", linestyle="--", linewidth=1)
    lift_ax.set_yticks(range(len(comparisons)), [c["treatment"] for c in comparisons])
    lift_ax.set_ylim(len(comparisons) - 0.4, -0.6)  # top to bottom, in the table's order
    lift_ax.set_xlabel(f"lift vs {report['control']} (percentage points)")
    lift_ax.set_title(f"Lift vs control, {level} CI (Wald)")

    srm, decision = report["srm"]["mismatch"], report["verdict"]
    headline = decision["kind"].replace("_", " ")
    if srm:
        headline = "SAMPLE RATIO MISMATCH, no winner called"
    elif decision["winner"]:
        headline = f"winner {decision['winner']}"
    fig.suptitle(
        f"A/B experiment {report['experiment']}: {headline}",
        color="tab:red" if srm else "black",
        fontsize=13,
    )
    fig.savefig(path, format="png")


def write_report(report: dict[str, Any], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(report)
    (out / "report.md").write_text(markdown, encoding="utf-8")
    (out / "report.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    draw_chart(report, out / "chart.png")
    return markdown


def _alpha(text: str) -> float:
    try:
        alpha = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {text}")
    return alpha


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} ab-report",
        description="Analyse an A/B experiment's exposure and conversion logs.",
        epilog="Exit status 3: report written, but the sample-ratio check failed.",
    )
    parser.add_argument(
        "--config", required=True, type=Path, metavar="PATH", help="the published experiment"
    )
    parser.add_argument(
        "--exposures", required=True, nargs="+", type=Path, metavar="PATH", help="JSON lines"
    )
    parser.add_argument(
        "--conversions", required=True, nargs="+", type=Path, metavar="PATH", help="JSON lines"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, metavar="DIR", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--alpha",
        type=checked(_alpha),
        default=0.05,
        help="significance level; intervals are 1 - alpha (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    experiment = load_experiment(args.config)
    tally = Tally()
    read_exposures(experiment, args.exposures, tally)  # all of them: first exposure is final
    read_conversions(experiment, args.conversions, tally)
    report = analyse(experiment, tally, args.alpha)
    report["inputs"] = {
        "config": str(args.config),
        "exposures": [str(p) for p in args.exposures],
        "conversions": [str(p) for p in args.conversions],
    }
    markdown = write_report(report, args.out)
    print(markdown, end="")
    print(f"wrote {args.out}/report.md, report.json and chart.png", file=sys.stderr)
    return 3 if report["srm"]["mismatch"] else 0
