"""The consortium tick: follow the other members, agree on the next version, adopt what verifies.

A short timer; only this member's coordinator (elected among its own deployments by the blob lease)
acts, so one deployment of a member writes its head at a time. The work is
``shared.services.consortium.Consortium.tick``, then (unless it found a fork) copying the other admitted
members' verified node infos where this member's nodes read them
(``shared.services.node_infos.NodeInfoMirror``); this handler only runs them and logs what they did.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from functions.coordination import as_coordinator
from shared.bootstrap import platform

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("consortium_tick")
@bp.timer_trigger(arg_name="timer", schedule="%CONSORTIUM_POLL_SCHEDULE%", run_on_startup=False)
def consortium_tick(timer: func.TimerRequest) -> None:
    outcome = as_coordinator("consortium", lambda _term: _tick())
    if outcome and isinstance(outcome, dict) and (outcome.get("adopted") is not None or outcome.get("fork")):
        log.info("consortium tick", extra={"fields": outcome})


def _tick() -> dict[str, Any]:
    outcome = platform().consortium.tick()
    head = platform().consortium.head()
    if head is not None and not outcome.get("fork"):
        mirrored = platform().node_infos.mirror(head)
        copied = sorted(m for m, what in mirrored.items() if what == "copied")
        if copied:
            outcome["node_infos_copied"] = copied
    return outcome
