"""The gateway's OpenAPI spec: filled in for one deployment, and checked as Endpoints would.

`openapi/openapi.yaml` holds what every deployment shares. `render` adds what
only the auth pipeline knows (the gateway's host and the private API's URL)
and what follows from project.yaml (the caller service account). `validate`
applies the rules Service Management applies to `gcloud endpoints services
deploy`, so a broken spec fails in `make test` or in the build's first step, not
after an upload, and a half-rendered one is never deployed.

`esp_version` reads the ESPv2 version from auth/Dockerfile's FROM line, its one
definition, so the auth pipeline can name the gateway image after it.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import yaml

from cloudbuild.cli_common import PROG, add_config_argument, checked
from cloudbuild.config import ROOT, Config, ConfigError, load
from cloudbuild.experiment import ROUTE as VARIANT_ROUTE
from cloudbuild.names import check_branch, check_sha

SPEC_PATH = ROOT / "openapi" / "openapi.yaml"
DOCKERFILE = ROOT / "auth" / "Dockerfile"
ESP_IMAGE = "gcr.io/endpoints-release/endpoints-runtime-serverless"

# The securityDefinitions entry that render() points at the caller service account.
CALLER_SCHEME = "caller_sa"
# Google publishes every service account's public keys here, as X.509 certificates.
JWKS_URI = "https://www.googleapis.com/robot/v1/metadata/x509/{email}"
# ESPv2 cuts a backend call at 15 s by default. A scaled-to-zero API first has to
# start and load its model, then predict a whole batch; 60 s covers that and stays
# below Cloud Run's own request timeout (300 s by default) on both services.
BACKEND_DEADLINE_SECONDS = 60.0

PREDICT_PATH = "/predict"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
PATH_TRANSLATIONS = ("APPEND_PATH_TO_ADDRESS", "CONSTANT_ADDRESS")
BACKEND_PROTOCOLS = ("http/1.1", "h2")
# Issuers whose keys ESPv2 finds without x-google-jwks_uri.
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
# The only quota unit Endpoints accepts: requests per minute per consumer project.
QUOTA_UNIT = "1/min/{project}"
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Jinja and shell leftovers: a value someone meant to substitute and did not.
PLACEHOLDER = re.compile(r"\{\{|\{%|\$\{")
PATH_PARAMETER = re.compile(r"^\{[^{}]+\}$")
ESP_BASE = re.compile(
    rf"^(?i:FROM)\s+{re.escape(ESP_IMAGE)}:(?P<version>\d+\.\d+\.\d+)(@sha256:[0-9a-f]{{64}})?\s*$",
    re.MULTILINE,
)


class OpenApiError(ValueError):
    """A spec, host, URL or Dockerfile that render-openapi cannot use."""


def render(
    config: Config,
    spec: dict,
    gateway_host: str,
    backend_url: str,
    experiment: dict | None = None,
) -> dict:
    """A copy of `spec` completed for the gateway at `gateway_host` in front of `backend_url`.

    `gateway_host` is the gateway's Cloud Run host without `https://`; it is also
    the Endpoints service name. `backend_url` is the private API's Cloud Run URL.
    `experiment` is the running A/B experiment as `experiment resolve` wrote it:
    each variant gets a route to its branch's revision (see experiment.py).
    """
    problem = dns_name_problem(gateway_host)
    if problem:
        raise OpenApiError(f"gateway host {gateway_host!r}: {problem}")
    address = _backend_address(backend_url)
    definitions = spec.get("securityDefinitions")
    scheme = definitions.get(CALLER_SCHEME) if isinstance(definitions, dict) else None
    if not isinstance(scheme, dict) or scheme.get("type") != "oauth2":
        raise OpenApiError(
            f"securityDefinitions.{CALLER_SCHEME}: the spec must define it as an oauth2 scheme"
        )

    body = copy.deepcopy(spec)
    body.pop("host", None)
    body.pop("x-google-backend", None)
    caller = config.service_account("caller")
    body["securityDefinitions"][CALLER_SCHEME].update(
        {
            "x-google-issuer": caller,
            "x-google-jwks_uri": JWKS_URI.format(email=caller),
            # The URL the caller calls, which is also ESPv2's default audience. A
            # token minted for one gateway is then refused by every other one.
            "x-google-audiences": f"https://{gateway_host}",
        }
    )
    predict = body.get("paths", {}).get(PREDICT_PATH, {}).get("post")
    if experiment and not isinstance(predict, dict):
        raise OpenApiError(f"paths.{PREDICT_PATH}.post: variant routes are copies of it")
    for path, item in variant_paths(experiment, predict).items():
        if path in body["paths"]:
            raise OpenApiError(f"paths.{path}: the spec already has it; variant routes are ours")
        body["paths"][path] = item
    # Host and backend right after info, where a reader of the deployed file looks.
    front = {key: body.pop(key) for key in ("swagger", "info") if key in body}
    return {
        **front,
        "host": gateway_host,
        "x-google-backend": {
            "address": address,
            "jwt_audience": _run_audience(address),
            "path_translation": "APPEND_PATH_TO_ADDRESS",
            "deadline": BACKEND_DEADLINE_SECONDS,
        },
        **body,
    }


def variant_paths(experiment: dict | None, predict: dict) -> dict:
    """One OpenAPI path per variant: a copy of production's `predict` operation
    (same body, responses, quota and security), routed to the variant's revision.

    The route forwards to the revision's own predict route (CONSTANT_ADDRESS: the
    gateway path is not appended). ESPv2 mints its identity token for the
    address's host by default, and Cloud Run refuses a tag URL as an audience, so
    jwt_audience is the service's own URL.
    """
    paths = {}
    for variant in (experiment or {}).get("variants", []):
        address = variant["backend_url"].rstrip("/") + PREDICT_PATH
        operation = copy.deepcopy(predict)
        operation.update(
            operationId="predictVariant" + _camel(variant["name"]),
            summary=f"Classify instances with variant {variant['name']} of experiment "
            f"{experiment['experiment']} (branch {variant['branch']})",
        )
        operation["x-google-backend"] = {
            "address": address,
            "jwt_audience": _run_audience(address),
            "path_translation": "CONSTANT_ADDRESS",
            "deadline": BACKEND_DEADLINE_SECONDS,
        }
        paths[VARIANT_ROUTE.format(name=variant["name"])] = {"post": operation}
    return paths


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def _split_url(url: object) -> SplitResult | None:
    if not isinstance(url, str):
        return None
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _backend_address(url: str) -> str:
    parts = _split_url(url)
    # Cloud Run serves only HTTPS, and ESPv2 attaches an ID token to every call.
    if parts is None or parts.scheme != "https" or not parts.hostname:
        raise OpenApiError(f"backend URL {url!r}: expected https://HOST, the API's Cloud Run URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise OpenApiError(
            f"backend URL {url!r}: give the service's base URL alone; the gateway appends "
            "each request's path to it"
        )
    return f"https://{parts.netloc}"


def _run_audience(address: str) -> str:
    """The audience Cloud Run accepts for `address`: its scheme and host.

    A traffic-tag URL (`https://TAG---SERVICE-HASH-REGION.a.run.app`) is not
    accepted as an audience, so the tag is dropped to give the service's own URL.
    """
    host = urlsplit(address).hostname or ""
    if host.endswith(".run.app") and "---" in host:
        host = host.split("---", 1)[1]
    return f"https://{host}"


def dns_name_problem(host: object) -> str | None:
    """Why `host` cannot be a gateway host (and Endpoints service name), or None."""
    if not isinstance(host, str) or not host:
        return "missing; it is the gateway's host name, set by render-openapi"
    if "://" in host:
        return "give the host name alone, without a scheme such as https://"
    if "/" in host:
        return "a host name has no path"
    if ":" in host:
        return "a host name has no port"
    if len(host) > 253:
        return "longer than the 253 characters a DNS name may have"
    labels = host.split(".")
    if len(labels) < 2:
        return "not a fully qualified DNS name"
    for label in labels:
        if not DNS_LABEL.match(label):
            return (
                f"{label!r} is not a DNS label (lowercase a-z, 0-9 and '-', 1-63 characters, "
                "no '-' at either end)"
            )
    return None


def operations(spec: dict) -> list[tuple[str, str, dict]]:
    """(path, method, operation) for every operation in the spec."""
    found = []
    paths = spec.get("paths")
    for path, item in (paths if isinstance(paths, dict) else {}).items():
        for method in HTTP_METHODS:
            if isinstance(item, dict) and isinstance(item.get(method), dict):
                found.append((path, method, item[method]))
    return found


def validate(spec: object) -> list[str]:
    """Every reason Endpoints (or ESPv2 on Cloud Run) would refuse `spec`, each naming its field.

    An empty list means the spec can be deployed.
    """
    if not isinstance(spec, dict):
        return ["(document): expected a mapping at the top level"]
    problems: list[str] = []
    _check_document(spec, problems)
    kinds = _check_security_definitions(spec, problems)
    if "security" in spec:
        _check_security("security", spec["security"], kinds, problems)
    metrics = _check_management(spec, problems)
    _check_operations(spec, kinds, metrics, problems)
    _check_placeholders(spec, "", problems)
    return problems


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _check_document(spec: dict, problems: list[str]) -> None:
    if spec.get("swagger") != "2.0":
        problems.append(
            f'swagger: must be the string "2.0" (Endpoints\' OpenAPI version), '
            f"got {spec.get('swagger')!r}"
        )
    info = spec.get("info")
    for field in ("title", "version"):
        if not isinstance(info, dict) or not _text(info.get(field)):
            problems.append(f"info.{field}: missing or not a string")
    problem = dns_name_problem(spec.get("host"))
    if problem:
        problems.append(f"host: {problem}")
    if "x-google-backend" in spec:
        _check_backend("x-google-backend", spec["x-google-backend"], problems)
    elif any("x-google-backend" not in operation for _, _, operation in operations(spec)):
        problems.append(
            "x-google-backend: missing; ESPv2 on Cloud Run has no other way to reach the API "
            "(set by render-openapi)"
        )


def _check_backend(where: str, backend: object, problems: list[str]) -> None:
    if not isinstance(backend, dict):
        problems.append(f"{where}: must be a mapping")
        return
    address = backend.get("address")
    parts = _split_url(address)
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        problems.append(f"{where}.address: must be an https:// (or http://) URL, got {address!r}")
    if "deadline" in backend:
        deadline = backend["deadline"]
        if isinstance(deadline, bool) or not isinstance(deadline, int | float) or deadline <= 0:
            problems.append(f"{where}.deadline: must be a positive number of seconds")
    if "path_translation" in backend and backend["path_translation"] not in PATH_TRANSLATIONS:
        problems.append(
            f"{where}.path_translation: must be one of {', '.join(PATH_TRANSLATIONS)}, "
            f"got {backend['path_translation']!r}"
        )
    if "protocol" in backend and backend["protocol"] not in BACKEND_PROTOCOLS:
        problems.append(f"{where}.protocol: must be one of {', '.join(BACKEND_PROTOCOLS)}")
    if "jwt_audience" in backend and "disable_auth" in backend:
        problems.append(f"{where}: jwt_audience and disable_auth cannot both be set")
    if "jwt_audience" in backend and not _text(backend["jwt_audience"]):
        problems.append(f"{where}.jwt_audience: must be a non-empty string")
    if "disable_auth" in backend and not isinstance(backend["disable_auth"], bool):
        problems.append(f"{where}.disable_auth: must be true or false")


def _check_security_definitions(spec: dict, problems: list[str]) -> dict[str, object]:
    """Check each definition; return the type of each, by name."""
    definitions = spec.get("securityDefinitions", {})
    if not isinstance(definitions, dict):
        problems.append("securityDefinitions: must be a mapping")
        return {}
    kinds: dict[str, object] = {}
    for name, definition in definitions.items():
        where = f"securityDefinitions.{name}"
        if not isinstance(definition, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        kind = kinds[name] = definition.get("type")
        if kind == "apiKey":
            if definition.get("in") not in ("header", "query"):
                problems.append(
                    f"{where}.in: an API key is read from 'header' or 'query', "
                    f"got {definition.get('in')!r}"
                )
            if not _text(definition.get("name")):
                problems.append(f"{where}.name: missing (the header or query parameter)")
        elif kind == "oauth2":
            _check_jwt_issuer(where, definition, problems)
        else:
            problems.append(f"{where}.type: Endpoints supports 'apiKey' and 'oauth2', got {kind!r}")
    return kinds


def _check_jwt_issuer(where: str, definition: dict, problems: list[str]) -> None:
    issuer = definition.get("x-google-issuer")
    jwks_uri = definition.get("x-google-jwks_uri")
    if not _text(issuer):
        problems.append(f"{where}.x-google-issuer: missing; ESPv2 accepts JWTs only from it")
    elif jwks_uri is None and issuer not in GOOGLE_ISSUERS:
        problems.append(
            f"{where}.x-google-jwks_uri: missing; ESPv2 needs the issuer's public keys to "
            "check signatures"
        )
    if jwks_uri is not None and not (isinstance(jwks_uri, str) and jwks_uri.startswith("https://")):
        problems.append(f"{where}.x-google-jwks_uri: must be an https:// URL, got {jwks_uri!r}")
    audiences = definition.get("x-google-audiences")
    if audiences is not None and not _text(audiences):
        problems.append(f"{where}.x-google-audiences: must be a comma-separated string")


def _check_security(
    where: str, requirements: object, kinds: dict[str, object], problems: list[str]
) -> None:
    if not isinstance(requirements, list):
        problems.append(f"{where}: must be a list of requirement objects")
        return
    for index, requirement in enumerate(requirements):
        if not isinstance(requirement, dict):
            problems.append(f"{where}[{index}]: must be a mapping of scheme names to scopes")
            continue
        for name, scopes in requirement.items():
            at = f"{where}[{index}].{name}"
            if name not in kinds:
                # ESPv2 does not check this itself: it lets such requests through.
                problems.append(f"{at}: no securityDefinitions entry of that name")
            elif not isinstance(scopes, list):
                problems.append(f"{at}: must be a list of scopes")
            elif kinds[name] == "apiKey" and scopes:
                problems.append(f"{at}: an API key has no scopes; use []")
    named = {
        name
        for requirement in requirements
        if isinstance(requirement, dict)
        for name in requirement
    }
    if len(requirements) > 1 and any(kinds.get(name) == "apiKey" for name in named):
        problems.append(
            f"{where}: ESPv2 cannot offer alternatives (OR) when one uses an API key; "
            "put the schemes in one requirement object (AND)"
        )


def _check_management(spec: dict, problems: list[str]) -> set[str]:
    """Check the quota metrics and limits; return the names of the metrics defined."""
    management = spec.get("x-google-management", {})
    if not isinstance(management, dict):
        problems.append("x-google-management: must be a mapping")
        return set()
    metrics: set[str] = set()
    for index, metric in enumerate(_list(management, "metrics", "x-google-management", problems)):
        where = f"x-google-management.metrics[{index}]"
        if not isinstance(metric, dict) or not _text(metric.get("name")):
            problems.append(f"{where}.name: missing")
            continue
        metrics.add(metric["name"])
        if metric.get("valueType") != "INT64":
            problems.append(f"{where}.valueType: must be INT64")
        if metric.get("metricKind") != "DELTA":
            problems.append(f"{where}.metricKind: must be DELTA")
    quota = management.get("quota", {})
    if not isinstance(quota, dict):
        problems.append("x-google-management.quota: must be a mapping")
        return metrics
    for index, limit in enumerate(_list(quota, "limits", "x-google-management.quota", problems)):
        where = f"x-google-management.quota.limits[{index}]"
        if not isinstance(limit, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        if not _text(limit.get("name")):
            problems.append(f"{where}.name: missing")
        if limit.get("metric") not in metrics:
            problems.append(f"{where}.metric: {limit.get('metric')!r} is not a defined metric")
        if limit.get("unit") != QUOTA_UNIT:
            problems.append(f"{where}.unit: must be {QUOTA_UNIT!r}, the only unit Endpoints has")
        values = limit.get("values")
        standard = values.get("STANDARD") if isinstance(values, dict) else None
        if isinstance(standard, bool) or not isinstance(standard, int) or standard < 0:
            problems.append(f"{where}.values.STANDARD: must be a whole number of requests")
    return metrics


def _list(parent: dict, key: str, where: str, problems: list[str]) -> list:
    value = parent.get(key, [])
    if isinstance(value, list):
        return value
    problems.append(f"{where}.{key}: must be a list")
    return []


def _check_operations(
    spec: dict, kinds: dict[str, object], metrics: set[str], problems: list[str]
) -> None:
    paths = spec.get("paths")
    if not isinstance(paths, dict) or not paths:
        problems.append("paths: the API has no operations")
        return
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            problems.append(f"paths.{path}: a path must start with '/'")
            continue
        for segment in path.split("/"):
            if ("{" in segment or "}" in segment) and not PATH_PARAMETER.match(segment):
                problems.append(
                    f"paths.{path}: Endpoints accepts a path parameter only as a whole segment"
                )
    first_use: dict[str, str] = {}
    for path, method, operation in operations(spec):
        where = f"paths.{path}.{method}"
        operation_id = operation.get("operationId")
        if not _text(operation_id):
            problems.append(f"{where}.operationId: missing or not a string")
        elif operation_id in first_use:
            problems.append(
                f"{where}.operationId: {operation_id!r} is also used by {first_use[operation_id]}"
            )
        else:
            first_use[operation_id] = where
        if "security" in operation:
            _check_security(f"{where}.security", operation["security"], kinds, problems)
        if "x-google-backend" in operation:
            _check_backend(f"{where}.x-google-backend", operation["x-google-backend"], problems)
        quota = operation.get("x-google-quota", {})
        costs = quota.get("metricCosts", {}) if isinstance(quota, dict) else None
        if not isinstance(costs, dict):
            problems.append(f"{where}.x-google-quota.metricCosts: must be a mapping")
            continue
        for metric, cost in costs.items():
            at = f"{where}.x-google-quota.metricCosts.{metric}"
            if metric not in metrics:
                problems.append(f"{at}: not a metric in x-google-management.metrics")
            if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
                problems.append(f"{at}: the cost must be a whole number from 1")


def _check_placeholders(node: object, where: str, problems: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            at = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and PLACEHOLDER.search(key):
                problems.append(f"{at}: unrendered placeholder in a key")
            _check_placeholders(value, at, problems)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _check_placeholders(value, f"{where}[{index}]", problems)
    elif isinstance(node, str) and PLACEHOLDER.search(node):
        problems.append(f"{where}: unrendered placeholder in {node!r}")


def esp_version(dockerfile: Path = DOCKERFILE) -> str:
    """The ESPv2 version auth/Dockerfile builds on, e.g. '2.55.7'."""
    try:
        text = dockerfile.read_text()
    except OSError as error:
        raise OpenApiError(f"{dockerfile}: {error.strerror}") from None
    versions = [match["version"] for match in ESP_BASE.finditer(text)]
    if len(versions) != 1:
        raise OpenApiError(f"{dockerfile}: expected one line 'FROM {ESP_IMAGE}:X.Y.Z'")
    return versions[0]


def read_spec(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise OpenApiError(f"{path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise OpenApiError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise OpenApiError(f"{path}: expected a mapping at the top level")
    return data


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def render_main(argv: list[str] | None = None) -> int:
    """`python -m cloudbuild render-openapi`: write the spec for one gateway."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} render-openapi",
        description="Fill openapi/openapi.yaml in for one gateway and check the result.",
    )
    parser.add_argument(
        "--gateway-host", required=True, help="the gateway's Cloud Run host, without https://"
    )
    parser.add_argument(
        "--backend-url", required=True, help="the private API's Cloud Run URL (https://...)"
    )
    parser.add_argument("--spec", type=Path, default=SPEC_PATH, help="default: %(default)s")
    parser.add_argument("--out", type=Path, help="write here instead of standard output")
    parser.add_argument(
        "--experiment",
        type=Path,
        help="the A/B experiment as `experiment resolve` wrote it: one route per variant",
    )
    parser.add_argument("--branch", type=checked(check_branch), help="record the build's branch")
    parser.add_argument("--sha", type=checked(check_sha), help="record the build's commit")
    add_config_argument(parser)
    args = parser.parse_args(argv)
    try:
        experiment = json.loads(args.experiment.read_text()) if args.experiment else None
        rendered = render(
            load(args.config), read_spec(args.spec), args.gateway_host, args.backend_url, experiment
        )
    except (ConfigError, OpenApiError, OSError, ValueError) as error:
        return _fail(str(error))
    if args.branch and args.sha:
        # The published Endpoints config then says which commit it came from.
        rendered["info"]["description"] = (
            f"{rendered['info'].get('description', '').strip()}\n\n"
            f"Published from commit {args.sha} of branch {args.branch}."
        ).strip()
    problems = validate(rendered)
    if problems:
        return _fail("the rendered spec is not valid:\n  " + "\n  ".join(problems))
    text = (
        f"# Rendered from {args.spec.name} by `python -m cloudbuild render-openapi`.\n"
        + yaml.safe_dump(rendered, sort_keys=False, allow_unicode=True)
    )
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.write_text(text)
    except OSError as error:
        return _fail(f"{args.out}: {error.strerror}")
    return 0


def validate_main(argv: list[str] | None = None) -> int:
    """`python -m cloudbuild validate-openapi PATH`: exit 1 listing what Endpoints would refuse."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} validate-openapi",
        description="Check a rendered OpenAPI spec as Cloud Endpoints would.",
    )
    parser.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    try:
        spec = read_spec(args.path)
    except OpenApiError as error:
        return _fail(str(error))
    problems = validate(spec)
    for problem in problems:
        print(f"{args.path}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"{args.path}: valid")
    return 0
