"""Service Management (Cloud Endpoints): services, configs made from OpenAPI, rollouts.

`gcloud endpoints services deploy openapi.yaml` (gcloud 528) sends, in order:

1. `GET /v1/services/NAME` (NAME is the spec's `host`); 404 the first time, then
   `POST /v1/services` {serviceName, producerProjectId}, a long-running Operation.
2. `POST /v1/services/NAME/configs:submit`: the file as a ConfigFile (base64
   `fileContents`, `fileType: OPEN_API_YAML`), `validateOnly` with --validate-only.
   The Operation's `response` is a SubmitConfigSourceResponse; gcloud prints its
   `serviceConfig.id` with `--format='value(serviceConfig.id)'`.
3. Unless validating: `POST /v1/services/NAME/rollouts`, 100% to that config.
4. After creating the service: Service Usage enables NAME in the project (another
   double); last, `GET /v1/services/NAME` for the console link it prints.

gcloud waits on each Operation with `GET /v1/operations/ID`; every one here is done
at once. A spec Endpoints would refuse (`cloudbuild.openapi.validate`, and a `host`
other than the service's name) fails the submit with 400 "Cannot convert to service
config." and every problem, one a line, which gcloud shows.

A config is the OpenAPI spec converted as Service Management converts it, to what
ESPv2 reads: apis and their methods, http rules, backend rules from
`x-google-backend`, authentication providers and rules from oauth2
`securityDefinitions`, API-key parameters and usage rules, quota, and `sourceInfo`
with the file as submitted (`GET .../configs/ID?view=FULL` only, as in Google).
Config and rollout ids are `YYYY-MM-DDrN`, N counting from 0 per service per day.

`current_config(name)` and `routes(name)` give the config of the current rollout, the
one a gateway serves, and the routing rules ESPv2 applies, to the offline preflight.

State under the folder given (service names are DNS names, safe as folder names):

    services/<name>/service.json         the ManagedService
    services/<name>/configs/<id>.json    each config, sourceInfo included
    services/<name>/rollouts/<id>.json   each rollout
    operations/<name %-encoded>.json     each Operation
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import yaml

from cloudbuild import openapi
from cloudbuild.double import discovery
from cloudbuild.double.http import ApiError, Request, Response, match_route
from cloudbuild.double.state import now, read_json, write_json

DOCUMENT = "servicemanagement.v1"
TYPE_PREFIX = "type.googleapis.com/google.api.servicemanagement.v1."
OPENAPI_FILE_TYPES = ("OPEN_API_YAML", "OPEN_API_JSON")
# What a service config's http rule names each verb; others take a custom pattern.
HTTP_RULE_VERBS = ("get", "put", "post", "delete", "patch")
# Service Management's defaults for x-google-backend's path_translation.
DEFAULT_TRANSLATION = {"spec": "APPEND_PATH_TO_ADDRESS", "operation": "CONSTANT_ADDRESS"}
CONFIG_ID = re.compile(r"(?P<day>\d{4}-\d{2}-\d{2})r(?P<n>\d+)")
SERVICE_CONTROL = "servicecontrol.googleapis.com"
# The config format version Service Management writes today.
CONFIG_VERSION = 3

_SERVICE = r"/v1/services/(?P<name>[^/:]+)"
_ROUTES = {
    "services": re.compile(r"/v1/services"),
    "service": re.compile(_SERVICE),
    "submit": re.compile(_SERVICE + r"/configs:submit"),
    "configs": re.compile(_SERVICE + r"/configs"),
    "config": re.compile(_SERVICE + r"/configs/(?P<id>[^/:]+)"),
    "rollouts": re.compile(_SERVICE + r"/rollouts"),
    "rollout": re.compile(_SERVICE + r"/rollouts/(?P<id>[^/:]+)"),
    "operation": re.compile(r"/v1/operations/(?P<id>[^/]+)"),
}


class ServiceManagementApi:
    service = "servicemanagement"
    path_prefixes: tuple[str, ...] = ()  # reached by host only

    def __init__(self, folder: Path) -> None:
        self._services = folder / "services"
        self._operations = folder / "operations"
        self._services.mkdir(parents=True, exist_ok=True)
        self._operations.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    # ---- requests -------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        route, match = match_route(_ROUTES, request.path)
        method = request.method
        name = unquote(match["name"]) if match and "name" in match.groupdict() else ""
        if (route, method) == ("services", "POST"):
            return Response.json(self._create_service(request.json()))
        if (route, method) == ("service", "GET"):
            return Response.json(self._service(name))
        if (route, method) == ("submit", "POST"):
            return Response.json(self._submit(name, request.json()))
        if (route, method) == ("configs", "GET"):
            configs = [_view(c, full=False) for c in self.configs(name)]
            return Response.json({"serviceConfigs": configs} if configs else {})
        if (route, method) == ("config", "GET"):
            full = request.query.get("view") == "FULL"
            return Response.json(_view(self.config(name, match["id"]), full))
        if (route, method) == ("rollouts", "POST"):
            return Response.json(self._roll_out(name, request.json()))
        if (route, method) == ("rollouts", "GET"):
            rollouts = self.rollouts(name)
            return Response.json({"rollouts": rollouts} if rollouts else {})
        if (route, method) == ("rollout", "GET"):
            return Response.json(self._read(self._folder(name) / "rollouts", match["id"]))
        if (route, method) == ("operation", "GET"):
            return Response.json(self._operation(unquote(match["id"])))
        raise ApiError(404, f"Service Management has no {method} {request.path}")

    def _create_service(self, body: dict) -> dict[str, Any]:
        self._check("ManagedService", body)
        name = body.get("serviceName", "")
        if not body.get("producerProjectId"):
            raise ApiError(400, "producerProjectId: the project that will own the service")
        folder = self._folder(name)
        with self._lock:
            if (folder / "service.json").exists():
                raise ApiError(409, f"Service '{name}' already exists.")
            folder.mkdir(parents=True)
            service = {"serviceName": name, "producerProjectId": body["producerProjectId"]}
            write_json(folder / "service.json", service)
        operation = f"services.{name}:{uuid.uuid4()}"
        return self._done(operation, [f"services/{name}"], "ManagedService", service)

    def _submit(self, name: str, body: dict) -> dict[str, Any]:
        self._check("SubmitConfigSourceRequest", body)
        service = self._service(name)
        files = body.get("configSource", {}).get("files", [])
        if len(files) != 1 or files[0].get("fileType") not in OPENAPI_FILE_TYPES:
            raise ApiError(400, "The double converts one OpenAPI file (OPEN_API_YAML or JSON).")
        source = files[0]
        path = source.get("filePath", "openapi.yaml")
        spec = _decode(source.get("fileContents", ""), path)
        problems = openapi.validate(spec)
        if isinstance(spec, dict) and spec.get("host") and spec["host"] != name:
            problems.append(f"host: {spec.get('host')!r} is not the service it is submitted to")
        if problems:
            raise ApiError(
                400,
                "Cannot convert to service config.\n"
                + "\n".join(f"{path}: {problem}" for problem in problems),
            )
        with self._lock:
            config_id = _next_id(self._folder(name) / "configs")
            config = convert(spec, config_id, service["producerProjectId"], source)
            if not body.get("validateOnly"):
                write_json(self._folder(name) / "configs" / f"{config_id}.json", config)
        response = {"serviceConfig": _view(config, full=False)}
        resources = [f"services/{name}/configs/{config_id}"]
        operation = f"serviceConfigs.{name}:{uuid.uuid4()}"
        return self._done(operation, resources, "SubmitConfigSourceResponse", response)

    def _roll_out(self, name: str, body: dict) -> dict[str, Any]:
        self._check("Rollout", body)
        folder = self._folder(name)
        self._service(name)
        percentages = body.get("trafficPercentStrategy", {}).get("percentages")
        if not percentages or "deleteServiceStrategy" in body:
            raise ApiError(400, "A rollout here is a trafficPercentStrategy over configs.")
        for config_id in percentages:
            self.config(name, config_id)
        if abs(sum(float(p) for p in percentages.values()) - 100) > 1e-6:
            raise ApiError(400, "Traffic percentages of a rollout must add up to 100.")
        with self._lock:
            rollout = {
                "rolloutId": _next_id(folder / "rollouts"),
                "createTime": now(),
                "status": "SUCCESS",
                "trafficPercentStrategy": {
                    "percentages": {key: float(value) for key, value in percentages.items()}
                },
                "serviceName": name,
            }
            write_json(folder / "rollouts" / f"{rollout['rolloutId']}.json", rollout)
        operation = f"rollouts.{name}:{rollout['rolloutId']}"
        resources = [f"services/{name}/rollouts/{rollout['rolloutId']}"]
        return self._done(operation, resources, "Rollout", rollout)

    def _done(
        self, operation: str, resources: list[str], kind: str, response: dict
    ) -> dict[str, Any]:
        """A finished Operation, kept for gcloud's `GET /v1/operations/ID`."""
        document = {
            "name": f"operations/{operation}",
            "metadata": {
                "@type": TYPE_PREFIX + "OperationMetadata",
                "resourceNames": resources,
                "startTime": now(),
                "progressPercentage": 100,
            },
            "done": True,
            "response": {"@type": TYPE_PREFIX + kind, **response},
        }
        write_json(self._operations / f"{quote(operation, safe='')}.json", document)
        return document

    def _operation(self, operation: str) -> dict[str, Any]:
        path = self._operations / f"{quote(operation, safe='')}.json"
        return read_json(path, f"Operation operations/{operation} not found.")

    def _check(self, schema: str, body: Any) -> None:
        discovery.require(discovery.document(DOCUMENT), schema, body)

    # ---- state ----------------------------------------------------------------------

    def _folder(self, name: str) -> Path:
        # The name becomes a folder: only a DNS name may.
        if openapi.dns_name_problem(name):
            raise ApiError(404, f"Service '{name}' not found or permission denied.")
        return self._services / name

    def _service(self, name: str) -> dict[str, Any]:
        path = self._folder(name) / "service.json"
        return read_json(path, f"Service '{name}' not found or permission denied.")

    def _read(self, folder: Path, item_id: str) -> dict[str, Any]:
        path = folder / f"{item_id}.json"
        if not CONFIG_ID.fullmatch(item_id) or not path.exists():
            raise ApiError(404, f"{folder.name[:-1].title()} {item_id!r} not found.")
        return json.loads(path.read_text())

    def config(self, service_name: str, config_id: str) -> dict[str, Any]:
        """A config of the service, sourceInfo included; 404 when there is none."""
        return self._read(self._folder(service_name) / "configs", config_id)

    def configs(self, service_name: str) -> list[dict[str, Any]]:
        """The service's configs, newest first."""
        self._service(service_name)
        return _newest_first(self._folder(service_name) / "configs", "id")

    def rollouts(self, service_name: str) -> list[dict[str, Any]]:
        """The service's rollouts, newest first."""
        self._service(service_name)
        return _newest_first(self._folder(service_name) / "rollouts", "rolloutId")

    def current_config(self, service_name: str) -> dict[str, Any]:
        """The config the service's newest rollout sends most traffic to: what ESPv2 serves."""
        rollouts = [r for r in self.rollouts(service_name) if r["status"] == "SUCCESS"]
        if not rollouts:
            raise ApiError(404, f"Service '{service_name}' has no rollout.")
        percentages = rollouts[0]["trafficPercentStrategy"]["percentages"]
        return self.config(service_name, max(percentages, key=percentages.__getitem__))

    def routes(self, service_name: str) -> list[dict[str, Any]]:
        """The current config's routing rules, one per operation, as ESPv2 applies them.

        Each: `path` (a template, e.g. /items/{id}), `method` (GET, POST, ...),
        `operation_id` (as in the spec), `selector`, `backend_address`,
        `path_translation`, `jwt_audience` (None: no token is sent), `deadline`
        (seconds; None: ESPv2's 15 s), and `security`: `api_key` (where the key is read,
        {"in": "header"|"query", "name": ...}; None when not required) and `jwt`
        (the providers a token may come from, any one of them; empty: none needed).
        """
        config = self.current_config(service_name)
        backends = {rule["selector"]: rule for rule in config.get("backend", {}).get("rules", [])}
        providers = {p["id"]: p for p in config.get("authentication", {}).get("providers", [])}
        jwt_rules = {
            rule["selector"]: [providers[r["providerId"]] for r in rule.get("requirements", [])]
            for rule in config.get("authentication", {}).get("rules", [])
        }
        keyless = {
            rule["selector"]
            for rule in config.get("usage", {}).get("rules", [])
            if rule.get("allowUnregisteredCalls")
        }
        key_locations = {
            rule["selector"]: parameter
            for rule in config.get("systemParameters", {}).get("rules", [])
            for parameter in rule.get("parameters", [])
            if parameter["name"] == "api_key"
        }
        source = config["sourceInfo"]["sourceFiles"][0]
        spec = _decode(source["fileContents"], source["filePath"])
        operation_ids = {
            (path, verb.upper()): operation.get("operationId")
            for path, verb, operation in openapi.operations(spec)
        }
        found = []
        for rule in config.get("http", {}).get("rules", []):
            selector = rule["selector"]
            method, path = http_pattern(rule)
            backend = backends.get(selector, {})
            found.append(
                {
                    "path": path,
                    "method": method,
                    "operation_id": operation_ids.get((path, method)),
                    "selector": selector,
                    "backend_address": backend.get("address"),
                    "path_translation": backend.get("pathTranslation"),
                    "jwt_audience": backend.get("jwtAudience"),
                    "deadline": backend.get("deadline"),
                    "security": {
                        "api_key": (
                            None if selector in keyless else _key_location(key_locations, selector)
                        ),
                        "jwt": [
                            {
                                key: provider[key]
                                for key in ("id", "issuer", "jwksUri", "audiences")
                                if key in provider
                            }
                            for provider in jwt_rules.get(selector, [])
                        ],
                    },
                }
            )
        return found


# ---- OpenAPI to service config ----------------------------------------------------------


def convert(spec: dict, config_id: str, producer_project: str, source: dict) -> dict[str, Any]:
    """The service config Service Management makes of a valid OpenAPI 2.0 `spec`."""
    host = spec["host"]
    info = spec["info"]
    # "1.0.0" and gw.example.com give the API "1.gw_example_com", as Google names it.
    api = f"{str(info['version']).split('.')[0]}.{re.sub(r'[.-]', '_', host)}"
    definitions = spec.get("securityDefinitions", {})
    methods, http, backends, auth_rules, usage, key_params, costs = [], [], [], [], [], [], []
    for path, verb, operation in openapi.operations(spec):
        operation_id = operation["operationId"]
        # Google capitalises the method's name: operationId "echo" is method "Echo".
        selector = f"{api}.{operation_id[0].upper()}{operation_id[1:]}"
        methods.append({"name": selector.rsplit(".", 1)[1]})
        http.append(_http_rule(selector, path, verb, operation))
        backends.append(_backend_rule(selector, spec, operation))
        requirements = operation.get("security", spec.get("security", []))
        named = [name for requirement in requirements for name in requirement]
        jwt = [name for name in dict.fromkeys(named) if definitions[name]["type"] == "oauth2"]
        keys = [name for name in dict.fromkeys(named) if definitions[name]["type"] == "apiKey"]
        if jwt:
            auth_rules.append(
                {"selector": selector, "requirements": [{"providerId": name} for name in jwt]}
            )
        if keys:
            key = definitions[keys[0]]
            where = "httpHeader" if key["in"] == "header" else "urlQueryParameter"
            key_params.append(
                {"selector": selector, "parameters": [{"name": "api_key", where: key["name"]}]}
            )
        else:
            usage.append({"selector": selector, "allowUnregisteredCalls": True})
        metric_costs = operation.get("x-google-quota", {}).get("metricCosts", {})
        if metric_costs:
            costs.append(
                {
                    "selector": selector,
                    "metricCosts": {name: str(cost) for name, cost in metric_costs.items()},
                }
            )
    config: dict[str, Any] = {
        "name": host,
        "title": info["title"],
        "producerProjectId": producer_project,
        "id": config_id,
        "configVersion": CONFIG_VERSION,
        "apis": [{"name": api, "version": str(info["version"]), "methods": methods}],
        "http": {"rules": http},
        "backend": {"rules": backends},
        "usage": {"rules": usage},
        "endpoints": [{"name": host}],
        "control": {"environment": SERVICE_CONTROL},
        "sourceInfo": {"sourceFiles": [{"@type": TYPE_PREFIX + "ConfigFile", **source}]},
    }
    providers = [
        _provider(name, definition)
        for name, definition in definitions.items()
        if definition["type"] == "oauth2"
    ]
    if providers:
        config["authentication"] = {"providers": providers, "rules": auth_rules}
    if key_params:
        config["systemParameters"] = {"rules": key_params}
    management = spec.get("x-google-management", {})
    if management.get("metrics"):
        config["metrics"] = [
            {
                key: metric[key]
                for key in ("name", "displayName", "valueType", "metricKind")
                if key in metric
            }
            for metric in management["metrics"]
        ]
    limits = management.get("quota", {}).get("limits", [])
    if limits:
        config["quota"] = {
            "limits": [
                {
                    "name": limit["name"],
                    "metric": limit["metric"],
                    "unit": limit["unit"],
                    "values": {tier: str(value) for tier, value in limit["values"].items()},
                }
                for limit in limits
            ],
            "metricRules": costs,
        }
    return config


def _http_rule(selector: str, path: str, verb: str, operation: dict) -> dict[str, Any]:
    rule: dict[str, Any] = {"selector": selector}
    if verb in HTTP_RULE_VERBS:
        rule[verb] = path
    else:
        rule["custom"] = {"kind": verb.upper(), "path": path}
    bodies = [p for p in operation.get("parameters", []) if p.get("in") == "body"]
    if bodies:
        rule["body"] = bodies[0]["name"]
    return rule


def _backend_rule(selector: str, spec: dict, operation: dict) -> dict[str, Any]:
    level = "operation" if "x-google-backend" in operation else "spec"
    backend = operation.get("x-google-backend", spec.get("x-google-backend"))
    rule: dict[str, Any] = {
        "selector": selector,
        "address": backend["address"],
        "pathTranslation": backend.get("path_translation", DEFAULT_TRANSLATION[level]),
    }
    for field, key in (
        ("jwt_audience", "jwtAudience"),
        ("disable_auth", "disableAuth"),
        ("protocol", "protocol"),
    ):
        if field in backend:
            rule[key] = backend[field]
    if "deadline" in backend:
        rule["deadline"] = float(backend["deadline"])
    return rule


def _provider(name: str, definition: dict) -> dict[str, Any]:
    provider = {"id": name, "issuer": definition["x-google-issuer"]}
    for field, key in (("x-google-jwks_uri", "jwksUri"), ("x-google-audiences", "audiences")):
        if field in definition:
            provider[key] = definition[field]
    if definition.get("authorizationUrl"):
        provider["authorizationUrl"] = definition["authorizationUrl"]
    return provider


# ---- helpers ------------------------------------------------------------------------------


def _decode(contents: str, path: str) -> Any:
    """A submitted file's spec: proto3 JSON bytes are base64, standard or URL-safe."""
    try:
        text = base64.b64decode(contents.replace("-", "+").replace("_", "/"), validate=True)
        return yaml.safe_load(text)
    except (binascii.Error, ValueError, yaml.YAMLError) as error:
        raise ApiError(400, f"Cannot convert to service config.\n{path}: {error}") from None


def _view(config: dict[str, Any], full: bool) -> dict[str, Any]:
    """The BASIC view leaves out sourceInfo; FULL (`?view=FULL`) keeps it."""
    if full:
        return config
    return {key: value for key, value in config.items() if key != "sourceInfo"}


def _next_id(folder: Path) -> str:
    """Today's next id in `folder`: YYYY-MM-DDr0, r1, ... (Google's form for both)."""
    today = datetime.now(UTC).date().isoformat()
    taken = [CONFIG_ID.fullmatch(p.stem) for p in folder.glob(f"{today}r*.json")]
    return f"{today}r{max((int(m['n']) + 1 for m in taken if m), default=0)}"


def _newest_first(folder: Path, key: str) -> list[dict[str, Any]]:
    # By day and number: "r10" sorts before "r9" as text (G14).
    documents = [json.loads(p.read_text()) for p in folder.glob("*.json")]

    def order(document: dict) -> tuple[str, int]:
        match = CONFIG_ID.fullmatch(document[key])
        return (match["day"], int(match["n"])) if match else ("", 0)

    return sorted(documents, key=order, reverse=True)


def http_pattern(rule: dict[str, Any]) -> tuple[str, str]:
    """The HTTP method and path template a config's http rule matches."""
    for verb in HTTP_RULE_VERBS:
        if verb in rule:
            return verb.upper(), rule[verb]
    return rule["custom"]["kind"], rule["custom"]["path"]


def _key_location(locations: dict[str, dict], selector: str) -> dict[str, str]:
    # Without a system parameter, ESPv2 reads the key from ?key= (or ?api_key=).
    parameter = locations.get(selector, {"urlQueryParameter": "key"})
    if "httpHeader" in parameter:
        return {"in": "header", "name": parameter["httpHeader"]}
    return {"in": "query", "name": parameter["urlQueryParameter"]}
