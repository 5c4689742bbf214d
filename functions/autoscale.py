"""The autoscale timer: on the coordinator only, one tick of ``shared.services.autoscale``.

The tick's schedule is ``AUTOSCALE_SCHEDULE`` (every minute in Azure, every 10 s locally); whatever
the schedule, the policy keeps each scale set within Compute's 4 capacity writes a minute.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions import telemetry
from functions.coordination import as_coordinator
from shared.bootstrap import platform
from shared.services.leadership import Term

bp = func.Blueprint()
log = logging.getLogger(__name__)


def _tick(term: Term) -> None:
    with telemetry.span("autoscale tick", **{"consortium.fencing_token": term.fencing_token}) as span:
        tick = platform().autoscaler.tick(term.fencing_token, term.check)
        span.set_attribute("consortium.scale_sets", len(tick.decisions))
        span.set_attribute("consortium.changes", len(tick.applied))
    available, tpm = {}, {}
    for name, decision in tick.decisions.items():
        member = name.removeprefix("vmss-")
        applied = name in tick.applied
        telemetry.SCALE_DECISIONS.add(1, {"reason": decision.reason.value, "applied": str(applied).lower()})
        inputs = decision.inputs
        capacity, warming = int(inputs.get("capacity") or 0), int(inputs.get("warming") or 0)
        available[telemetry.attrs(member_id=member)] = float(max(0, capacity - warming))
        if inputs.get("tpm") is not None:
            tpm[telemetry.attrs(member_id=member)] = float(inputs["tpm"] or 0)
    telemetry.set_gauge("consortium.nodes.available", available)
    telemetry.set_gauge("consortium.transactions_per_minute", tpm)
    telemetry.set_gauge("consortium.members", {(): float(len(tick.decisions))})
    log.info(
        "autoscale tick: %d scale set(s), %d change(s)",
        len(tick.decisions), len(tick.applied),
        extra={"fields": {"fencing_token": term.fencing_token, "metrics_calls": tick.metrics_calls,
                          "changes": tick.applied}},
    )  # fmt: skip


@bp.function_name("autoscale")
@bp.timer_trigger(arg_name="timer", schedule="%AUTOSCALE_SCHEDULE%", run_on_startup=False)
def autoscale(timer: func.TimerRequest) -> None:
    as_coordinator("autoscale", _tick)
