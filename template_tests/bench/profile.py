"""How long each phase of a run lasts: the real benchmark, and the smoke check."""

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    # wrk takes whole seconds.
    warmup_s: int
    measure_s: int
    robustness_s: int
    rounds: int
    startups: int
    raw_predict_calls: int
    with_mlserver: bool
    # The concurrency of the throughput phase, and of the robustness round.
    connections: int = 16

    def as_dict(self) -> dict:
        return asdict(self)


# About four minutes on two cores once MLServer's environment is installed: each
# system's slot in a round is 12 s of load, three systems, three rounds, plus the
# start-up runs.
FULL = Profile(
    name="full",
    warmup_s=2,
    measure_s=5,
    robustness_s=3,
    rounds=3,
    startups=5,
    raw_predict_calls=1000,
    with_mlserver=True,
)

# Exercises every step on our API alone, for the template's tests: the numbers mean
# little, that they come out at all is what is checked.
SMOKE = Profile(
    name="smoke",
    warmup_s=1,
    measure_s=1,
    robustness_s=1,
    rounds=1,
    startups=1,
    raw_predict_calls=200,
    with_mlserver=False,
)
