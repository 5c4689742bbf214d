"""HTTP triggers on a local port, routed as the host routes them: ``/api/<route>`` with ``{params}``.

Also serves the host's own ``GET /admin/host/status`` (``{"state": "Running", ...}``), which the
stack and the tests use as the readiness check. A ``Content-Length`` that is not a number of bytes is
answered 400, one over the host's 100 MB request limit 413, before any body is read; a malformed
request line gets a status line too (400, 505). Authorization levels are not enforced locally (the
real host skips them under Core Tools too); in Azure, FUNCTION-level routes need a function key.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from . import logs
from .indexing import FunctionSpec
from .invoke import RetryContext, call

#: The Functions host's default limit on an HTTP request body (100 MB).
MAX_BODY_BYTES = 100 * 1024 * 1024


def compile_route(route: str) -> re.Pattern[str]:
    """``members/{member_id}`` → a regex with named groups; ``{x?}`` optional, ``{*rest}`` catch-all."""
    pattern = ""
    for part in route.strip("/").split("/"):
        match = re.fullmatch(r"\{(\*?)(\w+)(?::\w+)?(\??)\}", part)
        if match:
            star, name, optional = match.groups()
            group = f"(?P<{name}>.+)" if star else f"(?P<{name}>[^/]+)"
            pattern += f"(?:/{group})?" if optional else f"/{group}"
        else:
            pattern += "/" + re.escape(part)
    return re.compile(f"^{pattern or '/'}/?$", re.IGNORECASE)


class HttpRoutes:
    def __init__(self, specs: list[FunctionSpec], app_dir: str, status: Callable[[], dict[str, Any]]):
        self.app_dir, self.status = app_dir, status
        self.routes = []
        for spec in specs:
            if spec.trigger_type == "httpTrigger":
                route = spec.trigger.get("route") or spec.name
                methods = [m.upper() for m in spec.trigger.get("methods") or []]
                self.routes.append((compile_route(route), methods, spec))

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if path.rstrip("/") == "/admin/host/status":
            return 200, {"Content-Type": "application/json"}, json.dumps(self.status()).encode()
        if not path.startswith("/api/") and path != "/api":
            return 404, {}, b""
        sub = path[len("/api") :] or "/"
        for pattern, methods, spec in self.routes:
            match = pattern.match(sub)
            if not match:
                continue
            if methods and method not in methods:
                return 405, {"Allow": ", ".join(methods)}, b""
            return self._invoke(
                spec,
                method,
                path,
                query,
                headers,
                body,
                {k: v for k, v in match.groupdict().items() if v is not None},
            )
        return 404, {}, b""

    def _invoke(self, spec: FunctionSpec, method: str, path: str, query: str, headers: dict[str, str],
                body: bytes, route_params: dict[str, str]) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        invocation_id = str(uuid.uuid4())
        fields = {
            "function": spec.name,
            "invocation_id": invocation_id,
            "trigger": "httpTrigger",
            "method": method,
            "path": path,
        }
        request = func.HttpRequest(method, f"http://localhost{path}{'?' + query if query else ''}", headers=headers,
                                   params=dict(parse_qsl(query)), route_params=route_params, body=body)  # fmt: skip
        token = logs.current_invocation.set(fields)
        started = time.monotonic()
        try:
            result = call(spec, request, invocation_id=invocation_id, app_dir=self.app_dir, retry=RetryContext(0, 0))
            response = result.outputs.get("$return")
            if not isinstance(response, func.HttpResponse):
                response = func.HttpResponse(str(response) if response is not None else "", status_code=200)
            outcome = "Succeeded"
        except Exception as e:
            logs.log.exception("function failed", extra={"fields": fields})
            response = func.HttpResponse("internal server error", status_code=500)
            outcome, fields["error"] = "Failed", f"{type(e).__name__}: {e}"
        finally:
            logs.current_invocation.reset(token)
        logs.invocation(
            outcome,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            status=response.status_code,
            **fields,
        )
        out_headers = dict(response.headers)
        if response.mimetype and "Content-Type" not in out_headers:
            out_headers["Content-Type"] = f"{response.mimetype}; charset={response.charset or 'utf-8'}"
        return response.status_code, out_headers, response.get_body() or b""


def serve(routes: HttpRoutes, port: int) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # A request line too malformed to name its version is still answered with a status line (400, 505),
        # as the real host does, not HTTP/0.9-style with a bare body.
        default_request_version = "HTTP/1.1"

        def _do(self) -> None:
            parts = urlsplit(self.path)
            declared = (self.headers.get("Content-Length") or "0").strip()
            length = int(declared) if declared.isascii() and declared.isdigit() else -1
            if length < 0:
                self.send_error(400, f"Content-Length {declared[:40]!r} is not a number of bytes")
                return
            if length > MAX_BODY_BYTES:
                self.send_error(413, f"Content-Length {length} exceeds the {MAX_BODY_BYTES}-byte request limit")
                return
            body = self.rfile.read(length) if length else b""
            status, headers, payload = routes.handle(
                self.command, parts.path, parts.query, dict(self.headers.items()), body
            )
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _do

        def log_message(self, format: str, *args: Any) -> None:  # invocations are logged as JSON already
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="http")
    thread.start()
    return server, thread
