"""The emulator's HTTPS server: routes, the fault injector, and the admin API under ``/_admin/``.

Faults are injected per service (``compute``, ``metrics``, ``keyvault``) before a request reaches
its handler: throttling (429 with Retry-After) or server errors (5xx) for the next N requests, and
added latency. They are the failures the adapters must turn into transient errors.
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
from typing import Any
from urllib.parse import parse_qs, urlsplit

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


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


Handler = Callable[[Request], Response]


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = []

    def add(self, method: str, pattern: str, service: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$", re.IGNORECASE), service, handler))

    def match(self, method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
        allowed = False
        for m, pattern, service, handler in self.routes:
            found = pattern.match(path)
            if found:
                allowed = True
                if m == method:
                    return service, handler, found.groupdict()
        if allowed:
            return "", lambda r: error(405, "MethodNotAllowed", f"{method} is not allowed on {path}"), {}
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
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.state = State(state_dir)
        self.faults = Faults(self.state)
        self.router = Router()
        self.started = time.time()
        from . import admin, compute, keyvault, metrics  # registered here to keep imports one-way

        self.compute = compute.Compute(self.state)
        keyvault.register(self.router, keyvault.KeyVault(self.state))
        compute.register(self.router, self.compute)
        metrics.register(self.router, metrics.Metrics(self.state, self.compute))
        admin.register(self.router, self)

    def handle(self, request: Request) -> Response:
        found = self.router.match(request.method, request.path)
        if found is None:
            return error(404, "NotFound", f"the emulator serves no {request.method} {request.path}")
        service, handler, params = found
        request.params = params
        if service and service != "admin":
            injected = self.faults.take(service)
            if injected is not None:
                return injected
        try:
            return handler(request)
        except KeyError as e:
            return error(404, "NotFound", f"not found: {e}")
        except (ValueError, TypeError) as e:
            return error(400, "BadRequest", str(e))


def serve(emulator: Emulator, host: str, port: int) -> ThreadingHTTPServer:
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
            host_header = self.headers.get("Host", f"localhost:{port}")
            request = Request(self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body,
                              base_url=f"https://{host_header}")  # fmt: skip
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
