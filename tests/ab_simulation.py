"""A deterministic simulation of an A/B experiment's logs, to test `ab-report` against a truth.

    python -m tests.ab_simulation --out DIR [--users N] [--seed S] [--skew X]
        [--control-rate P] [--relative-lift L]

writes DIR/config.json (a published experiment), DIR/exposures.jsonl (what the reference
client writes) and DIR/conversions.jsonl (what the site writes). Every draw comes from one
seeded numpy Generator, so a seed always gives the same files.

Users are assigned by a draw with the configured weights, not by the reference client's
salted hash: the report must not depend on how assignment was done, only on its result.
Real logs are not clean, so the simulation adds the noise the report must cope with
(repeat exposures, users who see a second variant, conversions before exposure, conversions
of never-exposed users, events of another experiment), and `simulate` returns exactly how
much of each it wrote, so a test can hold the report's counts against them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from cloudbuild.cli_common import checked

START = datetime(2026, 11, 23, tzinfo=UTC)
WINDOW_US = 7 * 24 * 3600 * 10**6  # users arrive over one week
HOUR_US = 3600 * 10**6
OTHER_EXPERIMENT = "other-experiment"


@dataclass(frozen=True)
class Noise:
    """How dirty the logs are; every share is of the experiment's users."""

    repeat_exposures: float = 0.5  # mean extra exposures per user, same variant (Poisson)
    cross_variant: float = 0.003  # users later exposed to a second variant too
    early_conversions: float = 0.01  # users with a conversion before their first exposure
    unexposed_conversions: float = 0.01  # conversions of users never exposed
    repeat_conversions: float = 0.2  # converting users who convert a second time
    other_experiment: float = 0.05  # exposures (and some conversions) of another experiment


DEFAULT_NOISE = Noise()
CLEAN = Noise(0, 0, 0, 0, 0, 0)


@dataclass
class Truth:
    """What was written: users and converting users per variant among the users a correct
    analysis keeps, and the number of each kind of noise."""

    users: dict[str, int] = field(default_factory=dict)
    converters: dict[str, int] = field(default_factory=dict)
    exposure_events: int = 0
    cross_variant_users: int = 0
    early_conversions: int = 0
    unexposed_conversions: int = 0
    excluded_user_conversions: int = 0
    counted_conversions: int = 0
    other_experiment_exposures: int = 0
    other_experiment_conversions: int = 0


def default_config(experiment: str = "bigger-c") -> dict[str, Any]:
    """A two-variant published experiment, 50/50, in the reference client's format."""
    return {
        "schema_version": 1,
        "experiment": experiment,
        "salt": f"{experiment}-salt",
        "control": "control",
        "variants": [
            {"name": "control", "branch": "main", "weight": 50, "model_commit": _commit("main")},
            {
                "name": "treatment",
                "branch": f"feature/{experiment}",
                "weight": 50,
                "model_commit": _commit(f"feature/{experiment}"),
            },
        ],
    }


def _commit(branch: str) -> str:
    return hashlib.sha1(branch.encode(), usedforsecurity=False).hexdigest()


def _user_id(namespace: str, number: int) -> str:
    return hashlib.sha256(f"{namespace}:{number}".encode()).hexdigest()


def _time(microseconds: int) -> str:
    return (START + timedelta(microseconds=microseconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_skew(skew: float) -> float:
    if not 0 <= skew < 1:
        raise ValueError(f"skew must be in [0, 1), not {skew}")
    return skew


def assignment_probabilities(config: Mapping[str, Any], skew: float) -> np.ndarray:
    """The weights as probabilities, with the control's share cut by `skew` (0.1: by 10%)
    and the cut spread over the treatments in proportion to their weights: a broken split."""
    check_skew(skew)
    weights = np.array([float(v["weight"]) for v in config["variants"]])
    probabilities = weights / weights.sum()
    is_control = np.array([v["name"] == config["control"] for v in config["variants"]])
    moved = probabilities[is_control].sum() * skew
    probabilities[is_control] *= 1 - skew
    treatments = probabilities[~is_control].sum()
    if treatments > 0:
        probabilities[~is_control] += moved * probabilities[~is_control] / treatments
    return probabilities / probabilities.sum()


def simulate(
    config: Mapping[str, Any],
    users: int,
    rates: Mapping[str, float],
    out: Path,
    *,
    seed: int = 0,
    skew: float = 0.0,
    noise: Noise = DEFAULT_NOISE,
) -> Truth:
    """Write config.json, exposures.jsonl and conversions.jsonl into `out`; return the truth.

    `rates` is each variant's true conversion probability after exposure.
    """
    rng = np.random.default_rng(seed)
    variants = [v["name"] for v in config["variants"]]
    commits = {v["name"]: v.get("model_commit") or _commit(v["branch"]) for v in config["variants"]}
    experiment = config["experiment"]
    truth = Truth(users=dict.fromkeys(variants, 0), converters=dict.fromkeys(variants, 0))
    exposures: list[tuple[int, dict[str, Any]]] = []
    conversions: list[tuple[int, dict[str, Any]]] = []

    def expose(when: int, user: str, variant: str, name: str = experiment) -> None:
        commit = commits.get(variant, _commit(variant))
        exposures.append(
            (
                when,
                {
                    "time": _time(when),
                    "experiment": name,
                    "variant": variant,
                    "model_commit": commit,
                    "user": user,
                },
            )
        )

    def convert(when: int, user: str, tag: str | None = None) -> None:
        event: dict[str, Any] = {"time": _time(when), "user": user}
        if tag is not None:
            event["experiment"] = tag
        event["value"] = round(float(rng.gamma(2.0, 20.0)), 2)
        conversions.append((when, event))

    assigned = rng.choice(len(variants), size=users, p=assignment_probabilities(config, skew))
    arrival = rng.integers(0, WINDOW_US, size=users)
    repeats = rng.poisson(noise.repeat_exposures, size=users)
    crossed = rng.random(users) < noise.cross_variant
    early = rng.random(users) < noise.early_conversions
    draw = rng.random(users)
    true_rate = np.array([rates[name] for name in variants])
    converts = draw < true_rate[assigned]
    again = rng.random(users) < noise.repeat_conversions

    for number in range(users):
        user, variant = _user_id(config.get("salt", experiment), number), variants[assigned[number]]
        first = int(arrival[number])
        expose(first, user, variant)
        for _ in range(repeats[number]):
            expose(first + 1 + int(rng.exponential(24 * HOUR_US)), user, variant)
        conversion_events = 0
        if early[number]:
            # Strictly before the first exposure, by whole microseconds, as the logs print.
            convert(first - 1 - int(rng.exponential(12 * HOUR_US)), user, experiment)
        if converts[number]:
            delay = int(rng.exponential(12 * HOUR_US))
            convert(first + delay, user, experiment if rng.random() < 0.5 else None)
            conversion_events += 1
            if again[number]:
                convert(first + delay + 1 + int(rng.exponential(48 * HOUR_US)), user)
                conversion_events += 1
        if crossed[number]:
            others = [name for name in variants if name != variant]
            second = others[int(rng.integers(len(others)))]
            expose(first + 1 + int(rng.exponential(24 * HOUR_US)), user, second)
            truth.cross_variant_users += 1
            truth.excluded_user_conversions += conversion_events + int(early[number])
            continue
        truth.users[variant] += 1
        truth.converters[variant] += int(converts[number])
        truth.early_conversions += int(early[number])
        truth.counted_conversions += conversion_events

    for number in range(round(users * noise.unexposed_conversions)):
        convert(int(rng.integers(0, WINDOW_US)), _user_id("never-exposed", number))
        truth.unexposed_conversions += 1
    for number in range(round(users * noise.other_experiment)):
        user, when = _user_id(OTHER_EXPERIMENT, number), int(rng.integers(0, WINDOW_US))
        expose(when, user, "a" if number % 2 else "b", OTHER_EXPERIMENT)
        truth.other_experiment_exposures += 1
        if number % 4 == 0:
            convert(when + HOUR_US, user, OTHER_EXPERIMENT)
            truth.other_experiment_conversions += 1
    truth.exposure_events = len(exposures) - truth.other_experiment_exposures

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name, events in (("exposures.jsonl", exposures), ("conversions.jsonl", conversions)):
        events.sort(key=lambda pair: pair[0])  # the logs are appended in time order
        with (out / name).open("w") as stream:
            stream.writelines(json.dumps(event) + "\n" for _, event in events)
    return truth


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.ab_simulation",
        description="Write a simulated experiment: config.json, exposures.jsonl, "
        "conversions.jsonl.",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.add_argument("--users", type=int, default=20000, help="(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument(
        "--skew",
        type=checked(lambda text: check_skew(float(text))),
        default=0.0,
        help="cut the control's share of users by this fraction, e.g. 0.05 (default: 0)",
    )
    parser.add_argument("--control-rate", type=float, default=0.10, help="(default: %(default)s)")
    parser.add_argument(
        "--relative-lift",
        type=float,
        default=0.15,
        help="the treatment's true rate is control-rate * (1 + this) (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    treatment_rate = args.control_rate * (1 + args.relative_lift)
    if not (0 <= args.control_rate <= 1 and 0 <= treatment_rate <= 1):
        parser.error("the control's and the treatment's rates must lie in [0, 1]")

    config = default_config()
    rates = {"control": args.control_rate, "treatment": treatment_rate}
    truth = simulate(config, args.users, rates, args.out, seed=args.seed, skew=args.skew)
    print(f"wrote {args.out}/config.json, exposures.jsonl, conversions.jsonl")
    print(json.dumps(truth.__dict__, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
