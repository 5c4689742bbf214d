"""The node health timer: on the coordinator only, one check of ``shared.services.health``.

The schedule is ``HEALTH_SCHEDULE`` (every minute in Azure, every 10 s locally). A check reads ARM's
health and probes every node's Corda ports; repairs (restart, then reimage) stay within the budget
whatever the schedule: one node per member at a time, a fifth of the fleet per check.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions.coordination import as_coordinator
from shared.bootstrap import platform
from shared.services.leadership import Term

bp = func.Blueprint()
log = logging.getLogger(__name__)


def _check(term: Term) -> None:
    check = platform().health.tick(term.fencing_token, term.check)
    log.info(
        "health check: %d node(s) of %d member(s), %d repair(s)",
        len(check.decisions), len(check.members), len(check.repairs),
        extra={"fields": {"fencing_token": term.fencing_token, "arm_reads": check.arm_reads, "probes": check.probes,
                          "repairs": [f"{r['scale_set']}/{r['instance']} {r['action']}" for r in check.repairs]}},
    )  # fmt: skip


@bp.function_name("node_health")
@bp.timer_trigger(arg_name="timer", schedule="%HEALTH_SCHEDULE%", run_on_startup=False)
def node_health(timer: func.TimerRequest) -> None:
    as_coordinator("node health", _check)
