"""The whole A/B loop offline: experiment -> gateway routes -> client -> report.

Every part is the project's own and real except Google's control plane:

- the experiment is parsed and resolved by `cloudbuild.experiment` and the spec
  rendered by `cloudbuild.openapi`, then turned into an Endpoints service config by
  the double's converter, which the local ESPv2 stand-in routes by;
- two real API servers serve the control's and the treatment's models (each
  reports its own commit), reached through the variant routes;
- the site's reference client (`auth/abclient`) assigns users, calls the gateway,
  caches in a real redis-server and writes the exposure log;
- conversions are simulated per variant (the treatment converts better) and
  `python -m cloudbuild ab-report` analyses the logs.

`python -m tests.test_ab_end_to_end --users 6000 --out DIR` runs the same loop at
a larger size and leaves the report in DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from api.main import create_app
from api.settings import Settings
from auth.abclient import ExperimentClient, ExperimentConfig, hash_user
from cloudbuild import openapi
from cloudbuild.config import load
from cloudbuild.double.servicemanagement_api import convert
from cloudbuild.experiment import parse, published, resolve
from cloudbuild.names import slug
from cloudbuild.preflight.gateway import Gateway
from tests.api_model_fixture import (
    LINEAGE,
    VALID_INSTANCE,
    penguins_pipeline,
    serving,
    write_model_dir,
)
from tests.gcp_double_fixture import cli
from tests.redis_server import running_redis_server

CONFIG = load()
PRODUCTION = CONFIG.production_branch
TREATMENT = "feature/bigger-c"
COMMITS = {PRODUCTION: "a" * 40, TREATMENT: "b" * 40}
API_HOST = "penguins-api-112008801403.europe-west1.run.app"
GATEWAY_HOST = "penguins-gateway-112008801403.europe-west1.run.app"
TRUE_RATES = {"control": 0.10, "treatment": 0.13}
EXPERIMENT = {
    "experiment": "bigger-c",
    "salt": "bigger-c-2026-11",
    "variants": [
        {"name": "control", "branch": PRODUCTION, "weight": 50},
        {"name": "treatment", "branch": TREATMENT, "weight": 50},
    ],
}


@contextlib.contextmanager
def deployed(folder: Path) -> Iterator[dict]:
    """Both branches' APIs, and the gateway with the experiment's routes; the published
    config the auth pipeline would write for it."""
    pipeline = penguins_pipeline()
    with contextlib.ExitStack() as stack:
        local = {}
        for branch, commit in COMMITS.items():
            model = write_model_dir(
                folder / slug(branch),
                pipeline,
                lineage={**LINEAGE, "branch": branch, "commit": commit},
            )
            port = stack.enter_context(serving(create_app(Settings(model_dir=model))))
            local[f"https://{slug(branch)}---{API_HOST}"] = f"http://127.0.0.1:{port}"
        service = {
            "metadata": {"name": f"{CONFIG.project_name}-api"},
            "status": {"traffic": [{"tag": url.split("---")[0][8:], "url": url} for url in local]},
        }
        resolved = resolve(
            parse(EXPERIMENT, CONFIG),
            service,
            lambda tag: {
                "model_commit": COMMITS[next(b for b in COMMITS if slug(b) == tag)],
                "model_branch": next(b for b in COMMITS if slug(b) == tag),
            },
        )
        spec = openapi.render(
            CONFIG,
            openapi.read_spec(openapi.SPEC_PATH),
            GATEWAY_HOST,
            f"https://{slug(PRODUCTION)}---{API_HOST}",
            resolved,
        )
        assert openapi.validate(spec) == []
        service_config = convert(spec, "2026-11-23r0", CONFIG.gcp_project_id, {})
        gateway = Gateway(service_config, lambda origin: local[origin])
        gateway_url = gateway.start()
        stack.callback(gateway.stop)
        yield published(resolved, gateway_url, PRODUCTION, "c" * 40)


def run_experiment(users: int, out: Path, seed: int = 7) -> dict:
    """Serve `users` users through the loop; return what the client saw and the report's
    exit status and JSON."""
    chance = random.Random(seed)
    exposures, conversions = out / "exposures.jsonl", out / "conversions.jsonl"
    seen = {"requests": 0, "cached": 0, "by_variant": {}, "models": {}}
    with (
        deployed(out / "models") as document,
        running_redis_server(out / "redis") as redis_server,
    ):
        (out / "config.json").write_text(json.dumps(document, indent=2))
        config = ExperimentConfig.from_file(out / "config.json")
        with (
            ExperimentClient(
                config,
                api_key="site-key",
                token_for_audience=lambda audience: f"jwt-for-{audience}",
                redis=redis_server.url,
                cache_ttl_seconds=60,
                exposure_log=exposures,
            ) as client,
            conversions.open("w") as converted,
        ):
            for number in range(users):
                user = f"user-{number}"
                # Three kinds of penguin, so the cache sees repeats and misses.
                instance = {**VALID_INSTANCE, "body_mass_g": 4000 + 600 * (number % 3)}
                for _ in range(1 + (number % 4 == 0)):  # a quarter come back
                    answer = client.predict(user, [instance])
                    seen["requests"] += 1
                    seen["cached"] += answer.cached
                    seen["by_variant"][answer.variant] = (
                        seen["by_variant"].get(answer.variant, 0) + 1
                    )
                    seen["models"][answer.variant] = answer.body["model"]
                if chance.random() < TRUE_RATES[answer.variant]:
                    event = {
                        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1))
                        + ".000000Z",
                        "experiment": config.experiment,
                        "user": hash_user(config.salt, user),
                    }
                    converted.write(json.dumps(event) + "\n")
    status = cli(
        "ab-report", "--config", out / "config.json", "--exposures", exposures,
        "--conversions", conversions, "--out", out / "report",
    )  # fmt: skip
    return {
        **seen,
        "status": status,
        "report": json.loads((out / "report" / "report.json").read_text()),
    }


def test_an_experiment_runs_end_to_end_through_the_gateway_and_is_analysed(tmp_path):
    seen = run_experiment(users=400, out=tmp_path)
    # Each variant's route reached its own branch's model.
    assert seen["models"] == {
        "control": {"commit": COMMITS[PRODUCTION], "branch": PRODUCTION},
        "treatment": {"commit": COMMITS[TREATMENT], "branch": TREATMENT},
    }
    # Repeats of a kind of penguin on a variant came from Redis.
    assert seen["cached"] >= seen["requests"] - 2 * 3
    # Sticky: one exposure line per request, each user always on one variant.
    lines = [json.loads(line) for line in (tmp_path / "exposures.jsonl").read_text().splitlines()]
    assert len(lines) == seen["requests"]
    variants_of: dict[str, set] = {}
    for line in lines:
        variants_of.setdefault(line["user"], set()).add(line["variant"])
        assert not line["user"].startswith("user-")  # hashed, never the raw id
    assert len(variants_of) == 400 and all(len(v) == 1 for v in variants_of.values())
    # The report read the client's own logs, and the split passed its check.
    assert seen["status"] == 0
    report = seen["report"]
    assert report["experiment"] == "bigger-c"
    assert sum(v["users"] for v in report["variants"]) == 400
    assert (tmp_path / "report" / "report.md").is_file()
    assert (tmp_path / "report" / "chart.png").stat().st_size > 5_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=6000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="ab-loop-"))
    out.mkdir(parents=True, exist_ok=True)
    seen = run_experiment(args.users, out)
    print(json.dumps({k: v for k, v in seen.items() if k != "report"}, indent=2))
    print((out / "report" / "report.md").read_text())
    print(f"report, chart and logs in {out}")


if __name__ == "__main__":
    main()
