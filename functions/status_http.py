"""This member's status over HTTP, and the dashboard page that polls it.

- ``GET /api/status``: the object ``consortium --member M status --json`` prints for this deployment's
  member (``Platform.status()``: its own status, scale set, keys and coordinator, and the consortium
  as it verified it: chain, members, proposals with who signed, a fork, the others' heads).
- ``GET /api/status/autoscale``: each scale set's last decision with its inputs and the recorded
  changes (``shared.services.dashboard``), which the page charts as capacity and load over time.
- ``GET /api/dashboard``: one self-contained HTML page (its CSS and script are inlined from
  ``functions/static`` when first served) that polls the two above every few seconds.

All three are FUNCTION level: in Azure a caller needs a function key (``?code=`` or the
``x-functions-key`` header; the page forwards the ``code`` it was opened with). Locally neither Core
Tools nor ``tools/funchost`` checks keys. The page's Content-Security-Policy allows nothing but its
own inline script and style (by hash) and requests to its own origin, so a browser refuses anything
from outside the app even if the page ever asked for it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import azure.functions as func

from shared.bootstrap import platform
from shared.errors import ControlPlaneError, TransientError
from shared.services.dashboard import scaling_view

bp = func.Blueprint()
log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
NO_STORE = {"Cache-Control": "no-store"}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body), status_code=status, mimetype="application/json", headers={**NO_STORE, **(headers or {})}
    )


def _unavailable(what: str, error: ControlPlaneError) -> func.HttpResponse:
    """The state could not be read: 503 with the reason, so the page shows it in its banner."""
    log.warning("%s unavailable: %s", what, error)
    retry = error.retry_after if isinstance(error, TransientError) else None
    headers = {"Retry-After": str(max(1, round(retry)))} if retry else {}
    return _json({"error": f"{what} unavailable: {error}"}, 503, headers)


@bp.function_name("status")
@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def status(req: func.HttpRequest) -> func.HttpResponse:
    try:
        model = platform().status()
    except ControlPlaneError as e:
        return _unavailable("status", e)
    return _json(model)


@bp.function_name("status_autoscale")
@bp.route(route="status/autoscale", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def status_autoscale(req: func.HttpRequest) -> func.HttpResponse:
    try:
        view = scaling_view(platform().state)
    except ControlPlaneError as e:
        return _unavailable("autoscale history", e)
    return _json(view)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@lru_cache(maxsize=1)
def page() -> tuple[bytes, str]:
    """The dashboard with its CSS and script inlined, and the Content-Security-Policy that fits it.

    Read on first use, never at import: indexing the app stays free of file reads.
    """
    html = (STATIC / "dashboard.html").read_text(encoding="utf-8")
    css = (STATIC / "dashboard.css").read_text(encoding="utf-8")
    script = (STATIC / "dashboard.js").read_text(encoding="utf-8")
    if "</script" in script.lower() or "</style" in css.lower():
        raise ValueError("an inlined asset must not close its own element")
    style_block, script_block = f"\n{css}", f"\n{script}"
    body = html.replace("/*{{style}}*/", style_block).replace("/*{{script}}*/", script_block)
    csp = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_csp_hash(script_block)}",
            f"style-src {_csp_hash(style_block)}",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return body.encode("utf-8"), csp


@bp.function_name("dashboard")
@bp.route(route="dashboard", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def dashboard(req: func.HttpRequest) -> func.HttpResponse:
    body, csp = page()
    headers = {
        **NO_STORE,
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return func.HttpResponse(body, mimetype="text/html", charset="utf-8", headers=headers)
