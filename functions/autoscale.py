"""The autoscale timer: on the coordinator only, one tick of ``shared.services.autoscale``.

The tick's schedule is ``AUTOSCALE_SCHEDULE`` (every minute in Azure, every 10 s locally); whatever
the schedule, the policy keeps each scale set within Compute's 4 capacity writes a minute.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions.coordination import as_coordinator
from shared.bootstrap import platform
from shared.services.leadership import Term

bp = func.Blueprint()
log = logging.getLogger(__name__)


def _tick(term: Term) -> None:
    tick = platform().autoscaler.tick(term.fencing_token, term.check)
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
