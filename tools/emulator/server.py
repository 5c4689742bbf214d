"""The emulator's HTTPS server: routes, the fault injector, and the admin API under ``/_admin/``.

Faults are injected per service (``compute``, ``metrics``, ``keyvault``) before a request reaches
its handler: throttling (429 with Retry-After) or server errors (5xx) for the next N requests, and
added latency. They are the failures the adapters must turn into transient errors.

Before a request reaches its service (and before any injected fault), the caller is authenticated
and authorized (``identity.py``): ARM, metrics and Key Vault calls by a principal without a role on
the scope are refused with 403 as Azure refuses them. The admin API is the operator's and tests', and
asks for no token.

Where a vault is served: the root URL serves version 1's vault (``identity.DEFAULT_VAULT``) beside
ARM, metrics and the admin API; every other vault has a listener of its own on its own port, which
serves Key Vault and nothing else, so each vault has a URL of its own (``https://localhost:{port}``)
as each has its own host name in Azure. A path prefix (``https://localhost:8443/vaults/bank-a``)
cannot stand for a vault: the SDK's ``parse_key_vault_id`` (azure-keyvault-keys 4.11,
``_shared/__init__.py``) takes a key id's vault URL as scheme, host and port only and accepts no path
before ``/keys/{name}/{version}``, so a ``CryptographyClient`` built from such a key id would sign in
another vault, or refuse the id.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from . import identity
from .state import State
from .tls import server_certificate


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    params: dict[str, str] = field(default_factory=dict)
    base_url: str = ""
    #: The vault the listener that took the request serves (the root URL serves version 1's).
    vault: str = identity.DEFAULT_VAULT
    #: Who called, once authenticated.
    caller: identity.Principal | None = None


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    service: str
    handler: Handler
    params: dict[str, str]
    #: The Key Vault data action a route performs (``keys/sign/action``); ARM's are read off the path.
    action: str | None = None


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], str, Handler, str | None]] = []

    def add(self, method: str, pattern: str, service: str, handler: Handler, action: str | None = None) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$", re.IGNORECASE), service, handler, action))

    def match(self, method: str, path: str) -> Route | None:
        allowed = False
        for m, pattern, service, handler, action in self.routes:
            found = pattern.match(path)
            if found:
                allowed = True
                if m == method:
                    return Route(service, handler, found.groupdict(), action)
        if allowed:
            return Route("", lambda r: error(405, "MethodNotAllowed", f"{method} is not allowed on {path}"), {})
        return None


class Faults:
    """Injected failures, kept in the state so they survive a restart until used up or cleared."""

    def __init__(self, state: State):
        self.state = state

    def set(self, service: str, spec: dict[str, Any]) -> None:
        with self.state.lock:
            self.state.section("faults")[service] = spec
            self.state.save("faults")

    def clear(self) -> None:
        with self.state.lock:
            self.state.section("faults").clear()
            self.state.save("faults")

    def take(self, service: str) -> Response | None:
        with self.state.lock:
            spec = self.state.section("faults").get(service)
            if not spec:
                return None
            latency = float(spec.get("latency_ms", 0)) / 1000
            status = spec.get("status")
            remaining = int(spec.get("count", 0))
            if status and remaining > 0:
                spec["count"] = remaining - 1
                if spec["count"] == 0 and not latency:
                    del self.state.section("faults")[service]
                self.state.save("faults")
                response = error(int(status), "TooManyRequests" if status == 429 else "InternalServerError",
                                 f"injected fault for {service}")  # fmt: skip
                if status == 429:
                    response.headers["Retry-After"] = str(spec.get("retry_after", 1))
            else:
                response = None
        if latency:
            time.sleep(latency)
        return response


class Emulator:
    def __init__(self, state_dir: Path, host: str = "127.0.0.1"):
        self.state_dir = state_dir
        self.host = host
        self.state = State(state_dir)
        self.faults = Faults(self.state)
        self.router = Router()
        self.started = time.time()
        #: The listeners of the vaults that have a port of their own, by vault name.
        self.vault_listeners: dict[str, ThreadingHTTPServer] = {}
        from . import admin, compute, imds, keyvault, metrics  # registered here to keep imports one-way

        self.compute = compute.Compute(self.state)
        keyvault.register(self.router, keyvault.KeyVault(self.state))
        compute.register(self.router, self.compute)
        metrics.register(self.router, metrics.Metrics(self.state, self.compute))
        admin.register(self.router, self)
        imds.register(self.router, self)

    # -- identities and vaults --------------------------------------------------------------------
    @property
    def principals(self) -> dict[str, Any]:
        return self.state.section("principals")

    def vault_subscription(self, vault: str) -> str:
        for record in self.principals.values():
            if record["vault"] == vault:
                return str(record["subscription_id"])
        return identity.DEFAULT_SUBSCRIPTION

    def open_vault(self, vault: str, port: int) -> int:
        """Serve ``vault`` on ``port`` (0: any free port) unless it is served already; the port it is on."""
        with self.state.lock:
            listener = self.vault_listeners.get(vault)
            if listener is None:
                listener = serve(self, self.host, port, vault=vault)
                threading.Thread(target=listener.serve_forever, daemon=True).start()
                self.vault_listeners[vault] = listener
            return int(listener.server_address[1])

    def open_vaults(self) -> None:
        """Serve every registered principal's vault again, on the port it had (after a restart)."""
        for record in list(self.principals.values()):
            if record.get("vault_port"):
                try:
                    self.open_vault(record["vault"], int(record["vault_port"]))
                except OSError as e:
                    raise OSError(
                        e.errno,
                        f"cannot serve vault {record['vault']} on port {record['vault_port']} again: {e.strerror}",
                    ) from e

    def close(self) -> None:
        for listener in self.vault_listeners.values():
            listener.shutdown()
            listener.server_close()
        self.vault_listeners.clear()

    def authorize(self, route: Route, request: Request) -> Response | None:
        """None when the caller may make this request; else Azure's 401 or 403."""
        authorization = request.headers.get("authorization", "")
        who = request.caller = identity.caller(self.principals, authorization)
        if route.service == "keyvault":
            from .keyvault import CHALLENGE

            if who is None:
                return Response(401, identity.keyvault_unauthenticated(authorization), {"WWW-Authenticate": CHALLENGE})
            vault_id = identity.vault_resource_id(self.vault_subscription(request.vault), request.vault)
            resource = f"{vault_id}/keys/{route.params['name']}" if route.params.get("name") else vault_id
            action = f"Microsoft.KeyVault/vaults/{route.action}"
            if not who.may(action, resource, data=True):
                return Response(403, identity.keyvault_forbidden(who, action, resource, request.vault))
            return None
        if who is None:
            body, headers = identity.arm_unauthenticated(authorization)
            return Response(401, body, headers)
        if route.service == "metrics":
            action, scope = identity.METRICS_READ, f"/subscriptions/{route.params['sub']}"
        else:
            action, scope = identity.arm_operation(request.method, request.path)
        if not who.may(action, scope):
            return Response(403, identity.arm_forbidden(who, action, scope))
        return None

    def handle(self, request: Request) -> Response:
        route = self.router.match(request.method, request.path)
        if route is not None and request.vault != identity.DEFAULT_VAULT and route.service != "keyvault":
            route = None  # a vault's own listener serves that vault and nothing else
        if route is None:
            return error(404, "NotFound", f"the emulator serves no {request.method} {request.path}")
        request.params = route.params
        if route.service and route.service != "admin":
            # IMDS asks for a header, not a token (imds.py); every other service for a caller with a role
            refused = None if route.service == "imds" else self.authorize(route, request)
            if refused is not None:
                return refused
            injected = self.faults.take(route.service)
            if injected is not None:
                return injected
        try:
            return route.handler(request)
        except KeyError as e:
            return error(404, "NotFound", f"not found: {e}")
        except (ValueError, TypeError) as e:
            return error(400, "BadRequest", str(e))


def serve(emulator: Emulator, host: str, port: int, *, vault: str = identity.DEFAULT_VAULT) -> ThreadingHTTPServer:
    """A listener: the root one (ARM, metrics, admin and version 1's vault), or one vault's own."""

    class HTTPHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _do(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                self._send(error(400, "BadRequest", "the body is not JSON"))
                return
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            host_header = self.headers.get("Host", f"localhost:{cast(ThreadingHTTPServer, self.server).server_port}")
            request = Request(self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body,
                              base_url=f"https://{host_header}", vault=vault)  # fmt: skip
            self._send(emulator.handle(request))

        def _send(self, response: Response) -> None:
            payload = b"" if response.body is None else json.dumps(response.body).encode()
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            if payload:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-ms-request-id", f"emulator-{time.monotonic_ns()}")
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _do

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), HTTPHandler)
    server.daemon_threads = True
    cert, key = server_certificate(emulator.state_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def run_forever(server: ThreadingHTTPServer, stop: threading.Event) -> None:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stop.wait()
    server.shutdown()
