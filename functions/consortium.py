"""The consortium tick: follow the other members, agree on the next version, adopt what verifies.

A short timer; only this member's coordinator (elected among its own deployments by the blob lease)
acts, so one deployment of a member writes its head at a time. The work is
``shared.services.consortium.Consortium.follow_closely``: a tick, and while a change is in flight and
moving, more ticks a fraction of a second apart (``CONSORTIUM_FAST_FOLLOW_*``) as long as this
deployment's term lasts; this handler only runs it and logs what it did.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions.coordination import as_coordinator
from shared.bootstrap import platform

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("consortium_tick")
@bp.timer_trigger(arg_name="timer", schedule="%CONSORTIUM_POLL_SCHEDULE%", run_on_startup=False)
def consortium_tick(timer: func.TimerRequest) -> None:
    outcome = as_coordinator("consortium", lambda term: platform().consortium.follow_closely(term.active))
    if outcome and isinstance(outcome, dict) and (outcome.get("adopted") is not None or outcome.get("fork")):
        log.info("consortium tick", extra={"fields": outcome})
