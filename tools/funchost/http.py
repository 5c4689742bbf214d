"""HTTP triggers on a local port, routed as the host routes them: ``/api/<route>`` with ``{params}``.

The server is waitress (HTTP/1.1 keep-alive, chunked request bodies, a thread pool); Werkzeug's
``Request`` reads the body. Werkzeug's own server was not used: it closes every connection ("Always
close the connection. This disables HTTP/1.1 keep-alive connections", ``werkzeug/serving.py``). Also
serves the host's own ``GET /admin/host/status`` (``{"state": "Running", ...}``), which the stack and
the tests use as the readiness check. Malformed requests get the answers the host's Kestrel gives: a
request line that does not parse 400, a ``Content-Length`` that is not a number of bytes 400, headers
over Kestrel's 32 KB 431, a body over the host's 100 MB limit 413 (before it is read when the length is
declared, as soon as it is passed when chunked), each closing the connection. One difference remains:
waitress serves a request line naming HTTP/2.0 (or 0.9) as HTTP/1.0, where Kestrel answers 505.

The response is the function's ``http`` output, ``$return`` or the ``Out`` named by ``binding_arg_name``,
as the worker encoded it (``HttpResponseConverter``): an ``HttpResponse`` gives its status, headers,
cookies and body, a ``str`` a 200 with that text (``HttpBinding.CreateResult``); no response at all gives
an empty 200 (``FunctionInvocationMiddleware``: ``new OkResult()``), and a failed invocation a 500. The
invocation's queue and blob outputs are delivered before the response is sent, and only on success.
Authorization levels are not enforced locally (the real host skips them under Core Tools too); in
Azure, FUNCTION-level routes need a function key.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from azure.functions import meta
from waitress.server import create_server
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.wrappers import Request

from . import logs
from .bindings import json_properties
from .indexing import FunctionSpec
from .invoke import Result, RetryContext, Trigger, call
from .outputs import Outputs

#: The Functions host's default limit on an HTTP request body (100 MB).
MAX_BODY_BYTES = 100 * 1024 * 1024
#: Kestrel's ``MaxRequestHeadersTotalSize`` (32 KB): past it, 431.
MAX_HEADER_BYTES = 32 * 1024

Answer = tuple[int, dict[str, str], bytes]


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


def http_trigger(method: str, url: str, query: str, headers: Mapping[str, str], body: bytes,
                 route_params: Mapping[str, str]) -> Trigger:  # fmt: skip
    """The request as the host sends it to the worker (an ``http`` datum ``HttpRequestConverter`` reads),
    with route parameters, ``Query``, ``Headers`` and a JSON body's properties as binding data."""
    params = dict(parse_qsl(query, keep_blank_values=True))

    def strings(values: Mapping[str, str]) -> dict[str, meta.Datum]:
        return {k: meta.Datum(type="string", value=v) for k, v in values.items()}

    datum = meta.Datum(
        type="http",
        value={
            "method": meta.Datum(type="string", value=method),
            "url": meta.Datum(type="string", value=url),
            "headers": strings(headers),
            "query": strings(params),
            "params": strings(route_params),
            "body": meta.Datum(type="bytes", value=body),
        },
    )
    data = {**json_properties(body), "Query": params, "Headers": dict(headers), **route_params}
    return Trigger(datum, {}, data)


def http_answer(result: Result) -> Answer:
    """The HTTP response from the function's encoded ``http`` output, or an empty 200 without one."""
    outputs = result.of_type("http")
    if not outputs:
        return 200, {}, b""
    datum = outputs[0].datum
    if datum.type == "string":
        return 200, {"Content-Type": "text/plain; charset=utf-8"}, str(datum.value).encode("utf-8")
    if datum.type == "bytes":
        return 200, {"Content-Type": "application/octet-stream"}, bytes(datum.value)
    if datum.type != "http":
        raise TypeError(f"http output {outputs[0].param.name}: the host cannot answer with a {datum.type!r} value")
    value = datum.value
    # Header names are case-insensitive; the converter writes "content-type": send them canonical.
    headers = {"-".join(p.capitalize() for p in name.split("-")): str(h.value) for name, h in value["headers"].items()}
    cookies = [c.output(header="").strip() for c in value.get("cookies") or []]
    if cookies:
        headers["Set-Cookie"] = "\n".join(cookies)  # split back into one header a cookie by the server
    body = value["body"].value
    return int(value["status_code"].value), headers, body if isinstance(body, bytes) else str(body).encode()


class HttpRoutes:
    def __init__(self, specs: list[FunctionSpec], app_dir: str, status: Callable[[], dict[str, Any]],
                 outputs: Outputs | None = None):  # fmt: skip
        self.app_dir, self.status, self.outputs = app_dir, status, outputs
        self.routes = []
        for spec in specs:
            if spec.trigger_type == "httpTrigger":
                route = spec.trigger.get("route") or spec.name
                methods = [m.upper() for m in spec.trigger.get("methods") or []]
                self.routes.append((compile_route(route), methods, spec))

    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Answer:
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
            route_params = {k: v for k, v in match.groupdict().items() if v is not None}
            host = headers.get("Host") or headers.get("host") or "localhost"
            url = f"http://{host}{path}{'?' + query if query else ''}"
            return self._invoke(spec, method, path, http_trigger(method, url, query, headers, body, route_params))
        return 404, {}, b""

    def _invoke(self, spec: FunctionSpec, method: str, path: str, trigger: Trigger) -> Answer:
        invocation_id = str(uuid.uuid4())
        fields = {"function": spec.name, "invocation_id": invocation_id, "trigger": "httpTrigger",
                  "method": method, "path": path}  # fmt: skip
        token = logs.current_invocation.set(fields)
        started = time.monotonic()
        try:
            result = call(spec, trigger, invocation_id=invocation_id, app_dir=self.app_dir,
                          retry=RetryContext(0, 0), blobs=self.outputs)  # fmt: skip
            answer = http_answer(result)
            if self.outputs is not None:
                self.outputs.deliver(result)
            elif any(o.param.binding["type"] != "http" for o in result.outputs):
                raise RuntimeError("this route table was built without an output deliverer")
            outcome = "Succeeded"
        except Exception as e:
            logs.log.exception("function failed", extra={"fields": fields})
            answer = 500, {}, b""
            outcome, fields["error"] = "Failed", f"{type(e).__name__}: {e}"
        finally:
            logs.current_invocation.reset(token)
        logs.invocation(outcome, duration_ms=round((time.monotonic() - started) * 1000, 1), status=answer[0], **fields)
        return answer


def wsgi(routes: HttpRoutes) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        declared = environ.get("CONTENT_LENGTH")
        close = [("Connection", "close")]
        if declared and not (declared.isascii() and declared.strip().isdigit()):
            start_response("400 Bad Request", [("Content-Length", "0"), *close])
            return []
        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:
            start_response("413 Request Entity Too Large", [("Content-Length", "0"), *close])
            return []
        except ClientDisconnected:
            start_response("400 Bad Request", [("Content-Length", "0"), *close])
            return []
        status, headers, payload = routes.handle(
            request.method, request.path, request.query_string.decode("latin-1"), dict(request.headers.items()), body
        )
        cookies = headers.pop("Set-Cookie", "")
        items = [(k, v) for k, v in headers.items() if k.lower() != "content-length"]
        items += [("Set-Cookie", c) for c in cookies.split("\n") if c]
        items.append(("Content-Length", str(len(payload))))
        start_response(f"{status} {_reason(status)}", items)
        return [] if request.method == "HEAD" else [payload]

    return app


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class Server:
    """Waitress serving the routes on a thread of its own, until ``shutdown``."""

    def __init__(self, routes: HttpRoutes, port: int, threads: int = 32):
        self._server = create_server(
            wsgi(routes),
            host="127.0.0.1",
            port=port,
            threads=threads,
            max_request_body_size=MAX_BODY_BYTES,
            max_request_header_size=MAX_HEADER_BYTES,
            ident="funchost",
            expose_tracebacks=False,
        )
        self.port = int(self._server.effective_port)
        self.thread = threading.Thread(target=self._server.run, daemon=True, name="http")

    def start(self) -> Server:
        self.thread.start()
        return self

    def shutdown(self) -> None:
        self._server.close()
        self.thread.join(timeout=5)


def serve(routes: HttpRoutes, port: int) -> tuple[Server, threading.Thread]:
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "task queue depth" is not news here
    server = Server(routes, port).start()
    return server, server.thread
