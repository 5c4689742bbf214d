"""The coordinator role: every instance contends for ``leases/coordinator`` on a short timer.

The holder keeps the lease with a background renewer; a standby's tick takes the role over once the
holder's lease has expired. The capability timers (autoscale, key rotation, health) act only when
``platform().coordinator.ensure()`` returns a term. On a graceful stop the lease is released, so a
standby takes over within one tick instead of after the lease expires.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Callable

import azure.functions as func

from functions import telemetry
from shared.bootstrap import platform
from shared.errors import LeaseLostError, TransientError
from shared.services.leadership import Term

bp = func.Blueprint()
log = logging.getLogger(__name__)
_last_token: list[int | None] = [None]


@bp.function_name("coordinator_heartbeat")
@bp.timer_trigger(arg_name="timer", schedule="%COORDINATOR_SCHEDULE%", run_on_startup=True)
def coordinator_heartbeat(timer: func.TimerRequest) -> None:
    coordinator = platform().coordinator
    term = coordinator.ensure()
    token = term.fencing_token if term else None
    telemetry.set_gauge("consortium.coordinator", {telemetry.attrs(holder=coordinator.holder): 1.0 if term else 0.0})
    if token != _last_token[0]:
        if term is not None:
            log.info("became coordinator", extra={"fields": {"holder": term.holder, "fencing_token": token}})
            atexit.register(coordinator.stop)
        else:
            log.info("standing by: another instance is coordinator")
        _last_token[0] = token


def as_coordinator(what: str, work: Callable[[Term], object]) -> object | None:
    """Run a capability timer's work only on the coordinator, with its term; standbys skip the tick.

    A term lost mid-work (``LeaseLostError``) stops it where it stands: the new coordinator's next
    tick re-reads and re-decides. A transient failure waits for the next tick too, the timer's retry.
    """
    term = platform().coordinator.ensure()
    if term is None:
        log.debug("%s: standing by, another instance is coordinator", what)
        return None
    try:
        return work(term)
    except LeaseLostError as e:
        log.warning("%s stopped: %s", what, e)
    except TransientError as e:
        log.warning("%s failed for now, the next tick retries: %s", what, e)
    return None
