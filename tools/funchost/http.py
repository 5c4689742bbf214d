"""HTTP triggers on a local port, routed as the host routes them: ``/api/<route>`` with ``{params}``.

The server is the standard library's threaded HTTP/1.1 server (keep-alive), with Werkzeug's
``DechunkedInput`` reading chunked request bodies to their end, so the next request on the connection
starts where it should. Werkzeug's own server was not used: it closes every connection ("Always close
the connection. This disables HTTP/1.1 keep-alive connections", ``werkzeug/serving.py``); waitress was
tried and answers 10 of the chaos suite's 31 malformed requests differently from the host (TRACE,
lower-case methods, HTTP/9.9, 200 headers, a relative path, a short body, chunked garbage, ...).

Also serves the host's own ``GET /admin/host/status`` (``{"state": "Running", ...}``), which the stack
and the tests use as the readiness check. Malformed requests get the answers the host's Kestrel gives
(the chaos suite's ``HTTP_CASES`` hold the list): a request line that does not parse 400, a version
other than 1.x 505, an unknown method 501, a request line over 64 KB 414, a header line over 64 KB,
more than 100 headers or headers over Kestrel's 32 KB in all 431, a ``Content-Length`` that is not a
number of bytes 400, a body over the host's 100 MB limit 413 (before it is read when the length is
declared, as soon as it is passed when chunked), a broken chunked body 400; routing (404, 405) is
decided before any body is read.

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
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from azure.functions import meta
from werkzeug.serving import DechunkedInput

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


@dataclass(frozen=True)
class Match:
    """A request's function and its route parameters."""

    spec: FunctionSpec
    route_params: dict[str, str]


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

    def route(self, method: str, path: str) -> Answer | Match:
        """What a request is for, decided before its body is read: an answer, or a function to invoke."""
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
            return Match(spec, {k: v for k, v in match.groupdict().items() if v is not None})
        return 404, {}, b""

    def handle(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Answer:
        found = self.route(method, path)
        if not isinstance(found, Match):
            return found
        return self.invoke(found, method, path, query, headers, body)

    def invoke(self, found: Match, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Answer:
        host = headers.get("Host") or headers.get("host") or "localhost"
        url = f"http://{host}{path}{'?' + query if query else ''}"
        trigger = http_trigger(method, url, query, headers, body, found.route_params)
        return self._invoke(found.spec, method, path, trigger)

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


class BodyError(Exception):
    """A request body the host refuses: the status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def declared_length(headers: Any) -> int | None:
    """The body's length from the headers, checked before routing (400, 413); None when chunked."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        return None
    declared = (headers.get("Content-Length") or "0").strip()
    length = int(declared) if declared.isascii() and declared.isdigit() else -1
    if length < 0:
        raise BodyError(400, f"Content-Length {declared[:40]!r} is not a number of bytes")
    if length > MAX_BODY_BYTES:
        raise BodyError(413, f"Content-Length {length} exceeds the {MAX_BODY_BYTES}-byte request limit")
    return length


def read_body(length: int | None, rfile: Any) -> bytes:
    """``length`` bytes, or (``None``) a chunked body read to its last chunk; a bad chunk is a 400."""
    if length is None:
        try:
            data = DechunkedInput(rfile).read(MAX_BODY_BYTES + 1)
        except OSError as e:
            raise BodyError(400, f"chunked body: {e}") from None
        if len(data) > MAX_BODY_BYTES:
            raise BodyError(413, f"the chunked body exceeds the {MAX_BODY_BYTES}-byte request limit")
        return bytes(data)
    return bytes(rfile.read(length)) if length else b""


def serve(routes: HttpRoutes, port: int) -> tuple[ThreadingHTTPServer, threading.Thread]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # A request line too malformed to name its version is still answered with a status line (400, 505),
        # as the real host does, not HTTP/0.9-style with a bare body.
        default_request_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm on, a keep-alive client's delayed
        # ACK holds the second one back some 40 ms a request (88 requests/s instead of ~1500 here).
        disable_nagle_algorithm = True

        def _do(self) -> None:
            parts = urlsplit(self.path)
            if sum(len(k) + len(v) + 4 for k, v in self.headers.items()) > MAX_HEADER_BYTES:
                self.send_error(431, f"request headers exceed {MAX_HEADER_BYTES} bytes")
                return
            try:
                length = declared_length(self.headers)
            except BodyError as e:
                self.send_error(e.status, str(e))  # closes the connection: the body is never read
                return
            found = routes.route(self.command, parts.path)
            unread = length != 0
            if isinstance(found, Match):
                try:
                    body = read_body(length, self.rfile)
                except BodyError as e:
                    self.send_error(e.status, str(e))  # closes the connection: the rest of the body is unread
                    return
                unread = False
                answer = routes.invoke(found, self.command, parts.path, parts.query, dict(self.headers.items()), body)
            else:
                answer = found  # routed (404, 405) without reading the body, which then ends the connection
            status, headers, payload = answer
            self.send_response(status)
            cookies = headers.pop("Set-Cookie", "")
            for key, value in headers.items():
                if key.lower() != "content-length":
                    self.send_header(key, value)
            for cookie in filter(None, cookies.split("\n")):
                self.send_header("Set-Cookie", cookie)
            self.send_header("Content-Length", str(len(payload)))
            if unread:
                self.send_header("Connection", "close")
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
