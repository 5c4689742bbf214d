"""Azure Monitor metrics: the batch endpoint (``metrics:getBatch``) over the scale sets' load model.

For each scale set: offered load in transactions per minute (set through the admin API, kept as a
history so past minutes keep their values), a per-node capacity, and the instances that serve (booted
and healthy). Served transactions are the offered load up to capacity; ``Percentage CPU`` is the load
over serving capacity, with seeded noise so a run can be replayed. A resource whose metrics were made
to go missing returns no time series, as the service does for a resource that emits nothing.

A scale set is found by its whole resource id, so members' scale sets in their own subscriptions
never answer for one another. The caller needs Monitoring Reader on the subscription of the URL
(checked before the handler) and on every resource it asks for (checked here): a resource in a
subscription it has no role on refuses the whole call with ARM's ``AuthorizationFailed``.
"""

from __future__ import annotations

import hashlib
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from . import identity
from .compute import Compute
from .server import Request, Response, Router, error
from .state import State

MAX_RESOURCES = 50
CPU = "Percentage CPU"
TPM = "TransactionsPerMinute"


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class Metrics:
    def __init__(self, state: State, compute: Compute):
        self.state, self.compute = state, compute

    def offered(self, name: str, at: float) -> float:
        history = self.state.section("load").get("loads", {}).get(name.lower(), [])
        value = 0.0
        for t, tpm in history:
            if t <= at:
                value = float(tpm)
        return value

    def serving_at(self, vmss: dict[str, Any], at: float) -> int:
        boot = self.compute.config("boot_delay_seconds")
        return sum(1 for i in vmss["instances"] if i["created"] + boot <= at and not i.get("fault"))

    def point(self, name: str, vmss: dict[str, Any], minute: datetime) -> tuple[float, float]:
        # The minute still under way is measured as of now: it must not see nodes that are still booting.
        at = min(minute.timestamp() + 59, time.time())
        offered = self.offered(name, at)
        serving = self.serving_at(vmss, at)
        capacity = serving * self.compute.config("node_capacity_tpm")
        served = min(offered, capacity)
        seed = int.from_bytes(hashlib.sha256(f"{name}|{int(minute.timestamp())}".encode()).digest()[:8], "big")
        noise = random.Random(seed).gauss(0, 2.0)  # noqa: S311 - seeded simulation noise  # nosec B311
        cpu = (
            100.0 if capacity == 0 and offered > 0 else min(100.0, 5.0 + 95.0 * offered / capacity if capacity else 5.0)
        )
        return max(0.0, min(100.0, cpu + noise)), served

    def batch(self, r: Request) -> Response:
        ids = list((r.body or {}).get("resourceids") or [])
        if not ids:
            return error(400, "BadRequest", "resourceids is required")
        if len(ids) > MAX_RESOURCES:
            return error(400, "BadRequest", f"at most {MAX_RESOURCES} resource ids per batch call, got {len(ids)}")
        names = [n.strip() for n in r.query.get("metricnames", "").split(",") if n.strip()]
        if not names:
            return error(400, "BadRequest", "metricnames is required")
        for rid in ids:
            if r.caller is not None and not r.caller.may(identity.METRICS_READ, rid):
                return Response(403, identity.arm_forbidden(r.caller, identity.METRICS_READ, rid))
        end = _parse_time(r.query["endtime"]) if "endtime" in r.query else datetime.now(UTC)
        start = _parse_time(r.query["starttime"]) if "starttime" in r.query else end - timedelta(hours=1)
        first = start.replace(second=0, microsecond=0)
        minutes: list[datetime] = []
        t = first
        while t < end and len(minutes) < 1440:
            minutes.append(t)
            t += timedelta(minutes=1)
        aggregation = (r.query.get("aggregation") or "average").split(",")[0].lower()
        missing = self.state.section("load").get("missing", {})
        values = []
        for rid in ids:
            name = rid.rstrip("/").rsplit("/", 1)[-1]
            vmss = self.compute.find_id(rid)
            series: list[dict[str, Any]] = []
            if vmss is not None and not missing.get(name.lower()):
                points = [self.point(name, vmss, m) for m in minutes]
                for metric in names:
                    index = 0 if metric == CPU else 1
                    data = [{"timeStamp": m.isoformat().replace("+00:00", "Z"), aggregation: round(p[index], 3)}
                            for m, p in zip(minutes, points, strict=True)]  # fmt: skip
                    series.append(self._metric(rid, metric, data))
            else:
                series = [self._metric(rid, metric, None) for metric in names]
            values.append({"starttime": start.isoformat().replace("+00:00", "Z"), "endtime": end.isoformat().replace("+00:00", "Z"),
                           "interval": r.query.get("interval", "PT1M"), "namespace": r.query.get("metricnamespace"),
                           "resourceregion": vmss["location"] if vmss else "", "resourceid": rid, "value": series})  # fmt: skip
        return Response(200, {"values": values})

    @staticmethod
    def _metric(rid: str, metric: str, data: list[dict[str, Any]] | None) -> dict[str, Any]:
        return {"id": f"{rid}/providers/Microsoft.Insights/metrics/{metric}", "type": "Microsoft.Insights/metrics",
                "name": {"value": metric, "localizedValue": metric}, "unit": "Percent" if metric == CPU else "Count",
                "timeseries": [] if data is None else [{"metadatavalues": [], "data": data}], "errorCode": "Success"}  # fmt: skip


def register(router: Router, metrics: Metrics) -> None:
    router.add("POST", r"/subscriptions/(?P<sub>[^/]+)/metrics:getBatch", "metrics", metrics.batch)
