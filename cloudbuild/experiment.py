"""The A/B experiment declared in `auth/experiment.yaml`: checked, resolved, published.

A website judges a model by what it does on the site, so it runs its own A/B
framework. What it needs from us is a stable gateway route per variant and a
document saying which route serves which model. This module is that contract:

- `parse` checks the file, every problem named by its field, before anything is
  deployed: a name and salt, variants with unique names and branches, integer
  weights summing to 100, and the production branch as the control.
- `resolve` matches each variant to what the api pipeline deployed: the branch's
  revision tag on the API service (its URL is the variant's backend) and the
  deployment record that says which model commit the revision serves. A branch
  that was never deployed is refused here, not discovered by the site as a 404.
- the gateway's route per variant, `/variants/<name>/predict`, is added to the
  OpenAPI spec by `cloudbuild.openapi.render` from what `resolve` returns.
- `published` is the JSON document the auth pipeline writes to the bucket at
  `experiments/current.json`, a path that never changes. Its format is
  documented in the generated README and read by `auth/abclient`.

`python -m cloudbuild experiment check|resolve|publish|refresh` are the build
steps; `check` is also what a person runs before pushing the file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cloudbuild.bucket import NotAnObject, read_object, storage_client, write_object
from cloudbuild.cli_common import PROG, add_config_argument, checked
from cloudbuild.config import ROOT, Config, ConfigError, load
from cloudbuild.names import BranchNameError, check_branch, check_sha, slug

EXPERIMENT_FILE = ROOT / "auth" / "experiment.yaml"
PUBLISHED_OBJECT = "experiments/current.json"
DEPLOYMENTS_FOLDER = "deployments"
SCHEMA_VERSION = 1
ROUTE = "/variants/{name}/predict"
# Names end up in URLs, OpenAPI operation ids and log lines: keep them plain.
EXPERIMENT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
VARIANT_NAME = re.compile(r"^[a-z][a-z0-9-]{0,28}[a-z0-9]$|^[a-z]$")
MIN_SALT, MAX_SALT = 8, 100
TOP_LEVEL_KEYS = ("experiment", "salt", "variants")
VARIANT_KEYS = ("name", "branch", "weight")


class ExperimentError(ValueError):
    """The experiment file, or what it names, cannot be served."""


@dataclass(frozen=True)
class Variant:
    name: str
    branch: str
    weight: int


@dataclass(frozen=True)
class Experiment:
    name: str
    salt: str
    variants: tuple[Variant, ...]
    control: str  # the name of the variant on the production branch


def parse(data: object, config: Config, where: str = "auth/experiment.yaml") -> Experiment | None:
    """The experiment `data` declares, or None when it declares none (no `variants`).

    Every problem is collected and raised together, so one push fixes them all.
    """
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ExperimentError(f"{where}: expected a mapping with experiment, salt and variants")
    problems = [
        f"{key}: unknown field (expected {', '.join(TOP_LEVEL_KEYS)})"
        for key in data
        if key not in TOP_LEVEL_KEYS
    ]
    raw_variants = data.get("variants")
    if raw_variants in (None, []) and not problems:
        return None  # no experiment running: every variant route goes
    name = data.get("experiment")
    if not isinstance(name, str) or not EXPERIMENT_NAME.match(name):
        problems.append(
            f"experiment: {name!r} is not a name of 2-40 lowercase letters, digits and '-', "
            "starting with a letter"
        )
    salt = data.get("salt")
    if not isinstance(salt, str) or not MIN_SALT <= len(salt.strip()) <= MAX_SALT:
        problems.append(
            f"salt: must be a string of {MIN_SALT}-{MAX_SALT} characters; use a new one per "
            "experiment, so users are shuffled afresh"
        )
    variants: list[Variant] = []
    if not isinstance(raw_variants, list):
        problems.append("variants: must be a list of {name, branch, weight}")
        raw_variants = []
    for index, raw in enumerate(raw_variants):
        variant = _variant(raw, f"variants[{index}]", problems)
        if variant is not None:
            variants.append(variant)
    _check_together(variants, config, problems)
    if problems:
        raise ExperimentError(f"{where} is not a valid experiment:\n  " + "\n  ".join(problems))
    [control] = [v.name for v in variants if v.branch == config.production_branch]
    return Experiment(name=name, salt=salt, variants=tuple(variants), control=control)


def _variant(raw: object, where: str, problems: list[str]) -> Variant | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping with name, branch and weight")
        return None
    before = len(problems)
    problems.extend(
        f"{where}.{key}: unknown field (expected {', '.join(VARIANT_KEYS)})"
        for key in raw
        if key not in VARIANT_KEYS
    )
    name, branch, weight = raw.get("name"), raw.get("branch"), raw.get("weight")
    if not isinstance(name, str) or not VARIANT_NAME.match(name):
        problems.append(
            f"{where}.name: {name!r} is not a name of 1-30 lowercase letters, digits and '-', "
            "starting with a letter"
        )
    if not isinstance(branch, str):
        problems.append(f"{where}.branch: missing; the git branch whose API serves this variant")
    else:
        try:
            check_branch(branch)
        except BranchNameError as error:
            problems.append(f"{where}.branch: {error}")
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        problems.append(f"{where}.weight: {weight!r} is not a whole percentage from 0 to 100")
    if len(problems) > before:
        return None
    return Variant(name=name, branch=branch, weight=weight)


def _check_together(variants: list[Variant], config: Config, problems: list[str]) -> None:
    if not variants:
        if not problems:
            problems.append("variants: an experiment needs at least a control and a treatment")
        return
    for field in ("name", "branch"):
        values = [getattr(v, field) for v in variants]
        for value in sorted({v for v in values if values.count(v) > 1}):
            problems.append(f"variants: {field} {value!r} appears more than once")
    total = sum(v.weight for v in variants)
    if total != 100:
        weights = " + ".join(str(v.weight) for v in variants)
        problems.append(f"variants: the weights must sum to 100, got {weights} = {total}")
    production = config.production_branch
    if not any(v.branch == production for v in variants):
        problems.append(
            f"variants: none is on the production branch {production!r}; the control must be"
        )
    if len(variants) < 2:
        problems.append("variants: an experiment needs at least a control and a treatment")


def load_file(path: Path, config: Config) -> Experiment | None:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ExperimentError(f"{path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ExperimentError(f"{path} is not valid YAML: {error}") from None
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return parse(data, config, where=str(where))


# ---- what is deployed ----------------------------------------------------------------


def tag_urls(service: dict[str, Any]) -> dict[str, str]:
    """Each traffic tag of a Cloud Run service (as `gcloud run services describe
    --format=json` prints it) and the URL that reaches its revision."""
    traffic = service.get("status", {}).get("traffic", [])
    return {t["tag"]: t["url"] for t in traffic if t.get("tag") and t.get("url")}


def resolve(
    experiment: Experiment,
    service: dict[str, Any],
    deployment_of: Callable[[str], dict[str, Any] | None],
) -> dict[str, Any]:
    """The experiment with each variant's backend URL and model, from what is deployed.

    `service` is the API service's description; `deployment_of(slug)` reads the
    record the api pipeline writes after deploying a branch (None when there is none).
    """
    urls = tag_urls(service)
    service_name = service.get("metadata", {}).get("name", "the API service")
    problems: list[str] = []
    resolved = []
    for variant in experiment.variants:
        tag = slug(variant.branch)
        where = f"variant {variant.name!r} (branch {variant.branch!r})"
        record = deployment_of(tag)
        if tag not in urls:
            problems.append(
                f"{where}: no revision tagged {tag!r} on {service_name}; push the branch so "
                "its api pipeline deploys it, then push the experiment"
            )
            continue
        if record is None:
            problems.append(
                f"{where}: no deployment record {DEPLOYMENTS_FOLDER}/{tag}.json; redeploy the "
                "branch (run its api trigger) so the record says which model it serves"
            )
            continue
        resolved.append(
            {
                "name": variant.name,
                "branch": variant.branch,
                "weight": variant.weight,
                "revision_tag": tag,
                "backend_url": urls[tag],
                "model_commit": record["model_commit"],
                "model_branch": record["model_branch"],
            }
        )
    if problems:
        raise ExperimentError(
            f"experiment {experiment.name!r} names branches that are not deployed:\n  "
            + "\n  ".join(problems)
        )
    return {
        "experiment": experiment.name,
        "salt": experiment.salt,
        "control": experiment.control,
        "variants": resolved,
    }


def published(
    resolved: dict[str, Any] | None, gateway_url: str, branch: str, sha: str, now: str | None = None
) -> dict[str, Any]:
    """The document the website reads; `variants` is empty when no experiment runs."""
    gateway_url = gateway_url.rstrip("/")
    resolved = resolved or {}
    variants = [
        {
            "name": v["name"],
            "branch": v["branch"],
            "weight": v["weight"],
            "route": ROUTE.format(name=v["name"]),
            "url": gateway_url + ROUTE.format(name=v["name"]),
            "revision_tag": v["revision_tag"],
            "model_commit": v["model_commit"],
            "model_branch": v["model_branch"],
        }
        for v in resolved.get("variants", [])
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment": resolved.get("experiment"),
        "salt": resolved.get("salt"),
        "control": resolved.get("control"),
        "gateway_url": gateway_url,
        "published_at": now or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "published_from": {"branch": branch, "commit": sha},
        "variants": variants,
    }


# ---- the bucket ------------------------------------------------------------------------


def deployment_uri(config: Config, branch_slug: str) -> str:
    return f"gs://{config.bucket}/{DEPLOYMENTS_FOLDER}/{branch_slug}.json"


def published_uri(config: Config) -> str:
    return f"gs://{config.bucket}/{PUBLISHED_OBJECT}"


def _read_json(uri: str) -> tuple[dict[str, Any] | None, int]:
    """The object's JSON and generation, or (None, 0) when it does not exist."""
    try:
        return read_object(storage_client(), uri)
    except NotAnObject as error:
        raise ExperimentError(str(error)) from None


def _write_json(uri: str, value: dict[str, Any], generation: int | None = None) -> None:
    """Write `value`; with `generation`, only if nobody wrote the object since it was read,
    so two builds never overwrite each other blindly."""
    from google.api_core.exceptions import PreconditionFailed

    try:
        write_object(storage_client(), uri, value, generation)
    except PreconditionFailed:
        raise ExperimentError(
            f"{uri} changed while this build updated it (another build wrote it); "
            "run this build again"
        ) from None


# ---- commands --------------------------------------------------------------------------


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _check(args: argparse.Namespace, config: Config) -> int:
    experiment = load_file(args.file, config)
    if experiment is None:
        print(f"{args.file}: no experiment declared; the gateway has no variant routes")
        return 0
    shares = ", ".join(f"{v.name}={v.weight}% ({v.branch})" for v in experiment.variants)
    print(f"{args.file}: experiment {experiment.name!r}, control {experiment.control!r}: {shares}")
    return 0


def _resolve(args: argparse.Namespace, config: Config) -> int:
    experiment = load_file(args.file, config)
    service = json.loads(args.service.read_text())

    def deployment_of(branch_slug: str) -> dict[str, Any] | None:
        return _read_json(deployment_uri(config, branch_slug))[0]

    resolved = None if experiment is None else resolve(experiment, service, deployment_of)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(resolved, indent=2) + "\n")
    if resolved is None:
        print("no experiment declared: no variant routes")
    for variant in (resolved or {}).get("variants", []):
        print(
            f"{variant['name']}: {variant['weight']}% -> {variant['backend_url']} "
            f"(model {variant['model_commit'][:12]} of {variant['model_branch']})"
        )
    return 0


def _publish(args: argparse.Namespace, config: Config) -> int:
    resolved = json.loads(args.resolved.read_text())
    document = published(resolved, args.gateway_url, args.branch, args.sha)
    _write_json(published_uri(config), document)
    print(f"published {published_uri(config)}: experiment {document['experiment']!r}")
    return 0


def _record(args: argparse.Namespace, config: Config) -> int:
    """After a deploy: which model the branch's revision serves; then keep a running
    experiment's document in step, so a site's cache never mixes two models."""
    branch_slug = slug(args.branch)
    record = {
        "branch": args.branch,
        "revision_tag": branch_slug,
        "commit": args.sha,
        "image": args.image,
        "model_uri": args.model_uri,
        "model_commit": args.model_commit,
        "model_branch": args.model_branch,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_json(deployment_uri(config, branch_slug), record)
    print(f"recorded {deployment_uri(config, branch_slug)}")
    document, generation = _read_json(published_uri(config))
    changed = [
        v
        for v in (document or {}).get("variants", [])
        if v["branch"] == args.branch and v["model_commit"] != record["model_commit"]
    ]
    if not changed:
        return 0
    for variant in changed:
        variant.update(model_commit=record["model_commit"], model_branch=record["model_branch"])
    _write_json(published_uri(config), document, generation=generation)
    names = ", ".join(v["name"] for v in changed)
    print(f"experiment {document['experiment']!r}: variant {names} now serves {args.sha[:12]}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} experiment", description="Check, resolve and publish the A/B experiment."
    )
    add_config_argument(parser)
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="check auth/experiment.yaml on its own")
    check.add_argument("--file", type=Path, default=EXPERIMENT_FILE)
    check.set_defaults(run=_check)

    resolve_ = commands.add_parser("resolve", help="match the variants to deployed revisions")
    resolve_.add_argument("--file", type=Path, default=EXPERIMENT_FILE)
    resolve_.add_argument(
        "--service", type=Path, required=True, help="`gcloud run services describe --format=json`"
    )
    resolve_.add_argument("--out", type=Path, required=True)
    resolve_.set_defaults(run=_resolve)

    publish = commands.add_parser("publish", help="write the document the website reads")
    publish.add_argument("--resolved", type=Path, required=True, help="what `resolve` wrote")
    publish.add_argument("--gateway-url", required=True)
    publish.add_argument("--branch", required=True, type=checked(check_branch))
    publish.add_argument("--sha", required=True, type=checked(check_sha))
    publish.set_defaults(run=_publish)

    record = commands.add_parser("record", help="after a deploy: which model a branch serves")
    record.add_argument("--branch", required=True, type=checked(check_branch))
    record.add_argument("--sha", required=True, type=checked(check_sha))
    record.add_argument("--image", required=True)
    # What resolve-model chose for this build (build/model.env).
    record.add_argument("--model-uri", required=True)
    record.add_argument("--model-commit", required=True)
    record.add_argument("--model-branch", required=True)
    record.set_defaults(run=_record)

    args = parser.parse_args(argv)
    try:
        return args.run(args, load(args.config))
    except (ConfigError, ExperimentError) as error:
        return _fail(str(error))
