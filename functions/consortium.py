"""The consortium tick: follow the other members, agree on the next version, adopt what verifies.

A short timer; only this member's coordinator (elected among its own deployments by the blob lease)
acts, so one deployment of a member writes its head at a time. The work is
``shared.services.consortium.Consortium.follow_closely``: a tick, and while a change is in flight and
moving, more ticks a fraction of a second apart (``CONSORTIUM_FAST_FOLLOW_*``) as long as this
deployment's term lasts; then (unless it found a fork) copying the other admitted members' verified
node infos where this member's nodes read them (``shared.services.node_infos.NodeInfoMirror.after_tick``:
after an adoption, else at most once a minute), and publishing its own nodes' node infos from its
private inbox, signed (``NodeInfoPublisher.after_tick``: the same pace, and never on a fork either).
This handler only runs them and logs what they did.

When a version adopted admits this member or takes it out, the service posts its own ``activate`` or
``retire`` step. Those go through this function's queue output bindings, so the host wakes those
queues' listeners as soon as the invocation returns (``shared/services/outbox.py``); the invocation
therefore stops following closely once it holds such a message and returns without the node-info
work, which the next occurrence does first (an admitted member's nodes start only once it is active).

``publish_now`` is for the steps that change what this member says (a decision, a proposal): on the
coordinator it publishes the head at once instead of at the next tick; elsewhere the coordinator's
next tick publishes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, List  # the worker's queue output converter takes typing.List[str], not list[str]

import azure.functions as func

from functions.coordination import as_coordinator
from shared.bootstrap import platform
from shared.services import onboarding as ob
from shared.services import outbox

bp = func.Blueprint()
log = logging.getLogger(__name__)
CONNECTION = "AzureWebJobsStorage"
ACTIVATE, RETIRE = ob.STEP_QUEUES["activate"], ob.STEP_QUEUES["retire"]


@bp.function_name("consortium_tick")
@bp.timer_trigger(arg_name="timer", schedule="%CONSORTIUM_POLL_SCHEDULE%", run_on_startup=False)
@bp.queue_output(arg_name="activate", queue_name=ACTIVATE, connection=CONNECTION)
@bp.queue_output(arg_name="retire", queue_name=RETIRE, connection=CONNECTION)
def consortium_tick(timer: func.TimerRequest, activate: func.Out[List[str]], retire: func.Out[List[str]]) -> None:
    with outbox.collecting() as box:
        outcome = as_coordinator(
            "consortium", lambda term: _follow(lambda: term.active() and not box, handing_on=lambda: bool(box))
        )
    bound: dict[str, list[str]] = {ACTIVATE: [], RETIRE: []}
    for queue, body in box:
        if queue in bound:
            bound[queue].append(body)
        else:
            platform().queues.send(queue, body)
    if bound[ACTIVATE]:
        activate.set(bound[ACTIVATE])
    if bound[RETIRE]:
        retire.set(bound[RETIRE])
    if outcome and isinstance(outcome, dict) and (outcome.get("adopted") is not None or outcome.get("fork")):
        log.info("consortium tick", extra={"fields": outcome})


def _follow(active: Callable[[], bool], handing_on: Callable[[], bool]) -> dict[str, Any]:
    """The ticks, then the node-info work; what they did, as the log line's fields."""
    outcome = platform().consortium.follow_closely(active)
    fields = outcome.fields()
    head = platform().consortium.head()
    if handing_on():  # an activation or retirement waits for this function to return: node infos next tick
        platform().node_infos.due()
        platform().node_info_publisher.due()
        return fields
    mirrored = platform().node_infos.after_tick(outcome, head)
    copied = sorted(m for m, what in mirrored.items() if what == "copied")
    if copied:
        fields["node_infos_copied"] = copied
    if platform().node_info_publisher.after_tick(outcome, head) == "published":
        fields["node_infos_published"] = True
    return fields


def publish_now() -> None:
    """Publish this member's head at once if this deployment coordinates (see the module docstring)."""
    as_coordinator("consortium head", lambda _term: platform().consortium.publish())
