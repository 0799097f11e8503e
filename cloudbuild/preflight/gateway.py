"""A local stand-in for ESPv2, driven by the same Endpoints service config.

It reads the service config the auth pipeline bakes into the gateway image and
routes as ESPv2 does: an http rule picks the operation, the operation's backend
rule gives the address (APPEND_PATH_TO_ADDRESS appends the request path), its usage
rule says whether an API key is needed, its authentication rule whether a JWT is.

Offline there is no Service Control and no Google key server: a key or a token is
required where ESPv2 would require one, but neither is verified. That is the one
thing preflight cannot check; the routing, the backends and which routes are
protected are the deployed config's own.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cloudbuild.double.servicemanagement_api import http_pattern


class _Server:
    """A threaded loopback HTTP server whose handler calls `serve(handler)`."""

    def start(self) -> str:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                owner.serve(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: preflight reports the requests it sends."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if getattr(self, "_server", None) is not None:
            self._server.shutdown()
            self._server.server_close()

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def _message(text: str) -> bytes:
    return json.dumps({"message": text}).encode()


class Placeholder(_Server):
    """What the gateway's placeholder revision serves until the real gateway replaces it."""

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        self._reply(handler, 200, b'{"message": "placeholder"}')


class Route:
    def __init__(self, method: str, template: str, selector: str) -> None:
        self.method = method
        self.selector = selector
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        self.pattern = re.compile(pattern + "$")


class Gateway(_Server):
    def __init__(self, config: dict, resolve_backend: Callable[[str], str]) -> None:
        self.config = config
        self.resolve_backend = resolve_backend  # a backend's https URL -> its local URL
        self.routes = [
            Route(*http_pattern(rule), rule["selector"])
            for rule in config.get("http", {}).get("rules", [])
        ]
        self.backends = {r["selector"]: r for r in config.get("backend", {}).get("rules", [])}
        self.usage = {r["selector"]: r for r in config.get("usage", {}).get("rules", [])}
        self.auth = {r["selector"]: r for r in config.get("authentication", {}).get("rules", [])}
        self.key_headers = {
            p.get("httpHeader", "").lower()
            for rule in config.get("systemParameters", {}).get("rules", [])
            for p in rule.get("parameters", [])
            if p.get("name") == "api_key" and p.get("httpHeader")
        } or {"x-api-key"}

    def decide(self, method: str, path: str, headers: dict[str, str], query: str) -> tuple:
        """(status, message) for a refusal, or (None, upstream URL, deadline)."""
        route = next((r for r in self.routes if r.method == method and r.pattern.match(path)), None)
        if route is None:
            return 404, f"Method does not exist: {method} {path} is not in the API config"
        usage = self.usage.get(route.selector, {})
        if not usage.get("allowUnregisteredCalls", False):
            has_key = any(headers.get(h) for h in self.key_headers) or "key" in parse_qs(query)
            if not has_key:
                return 401, "Method doesn't allow unregistered callers (callers without an API key)"
        requirements = self.auth.get(route.selector, {}).get("requirements", [])
        if requirements and not headers.get("authorization", "").startswith("Bearer "):
            return 401, "Jwt is missing"
        backend = self.backends.get(route.selector) or {}
        address = backend.get("address")
        if not address:
            return 503, f"no backend for {route.selector}"
        parts = urlsplit(address)
        # A service is found by its origin; the address's path is the route on it.
        base = self.resolve_backend(f"{parts.scheme}://{parts.netloc}").rstrip("/")
        if backend.get("pathTranslation", "APPEND_PATH_TO_ADDRESS") == "APPEND_PATH_TO_ADDRESS":
            upstream = base + parts.path.rstrip("/") + path
        else:
            upstream = base + parts.path
        return None, upstream + (f"?{query}" if query else ""), float(backend.get("deadline", 15))

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        target = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        body = handler.rfile.read(int(headers.get("content-length") or 0))
        decision = self.decide(handler.command, target.path, headers, target.query)
        if decision[0] is not None:
            self._reply(handler, decision[0], _message(decision[1]))
            return
        _, upstream, deadline = decision
        forwarded = urllib.request.Request(upstream, data=body or None, method=handler.command)  # noqa: S310
        if "content-type" in headers:
            forwarded.add_header("Content-Type", headers["content-type"])
        try:
            with urllib.request.urlopen(forwarded, timeout=deadline) as answer:  # noqa: S310
                self._reply(handler, answer.status, answer.read())
        except urllib.error.HTTPError as error:
            self._reply(handler, error.code, error.read())
        except OSError as error:
            self._reply(handler, 502, _message(f"upstream failed: {error}"))
