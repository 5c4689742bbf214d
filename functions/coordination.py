"""The coordinator role: every instance contends for ``leases/coordinator`` on a short timer.

The holder keeps the lease with a background renewer; a standby's tick takes the role over once the
holder's lease has expired. The capability timers (autoscale, key rotation, health) act only when
``platform().coordinator.ensure()`` returns a term. On a graceful stop the lease is released, so a
standby takes over within one tick instead of after the lease expires.
"""

from __future__ import annotations

import atexit
import logging

import azure.functions as func

from shared.bootstrap import platform

bp = func.Blueprint()
log = logging.getLogger(__name__)
_last_token: list[int | None] = [None]


@bp.function_name("coordinator_heartbeat")
@bp.timer_trigger(arg_name="timer", schedule="%COORDINATOR_SCHEDULE%", run_on_startup=True)
def coordinator_heartbeat(timer: func.TimerRequest) -> None:
    coordinator = platform().coordinator
    term = coordinator.ensure()
    token = term.fencing_token if term else None
    if token != _last_token[0]:
        if term is not None:
            log.info("became coordinator", extra={"fields": {"holder": term.holder, "fencing_token": token}})
            atexit.register(coordinator.stop)
        else:
            log.info("standing by: another instance is coordinator")
        _last_token[0] = token
