"""Operational endpoints of the app itself: a liveness probe for load balancers and monitors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import azure.functions as func

bp = func.Blueprint()


@bp.function_name("healthz")
@bp.route(route="healthz", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def healthz(req: func.HttpRequest) -> func.HttpResponse:
    """Answers 200 while the worker can serve requests; carries no state and touches nothing."""
    body = {"status": "ok", "at": datetime.now(UTC).isoformat()}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")
