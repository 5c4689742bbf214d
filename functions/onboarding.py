"""Onboarding and offboarding triggers: one queue-triggered function per step, and the poison sweep.

Handlers only hand the message to ``shared.services.onboarding`` and log what it did. Bad input is
recorded there and the message completes; a transient error is noted on the member and re-raised,
so the host makes the message visible again and, after ``maxDequeueCount``, moves it to
``<queue>-poison``, where the sweep records it and marks the member failed.

Each step posts the next one through a queue output binding (``next_step``), so the host wakes the
next queue's listener at once instead of leaving the message for its next poll (see
``shared/services/outbox.py``); a delayed re-post, and a message for any other queue, goes by the SDK.
A decision, a proposal or a leave changes what this member says to the others: on the coordinator,
its head is published as soon as the step is done (``functions.consortium.publish_now``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import List  # the worker's queue output converter takes typing.List[str], not list[str]

import azure.functions as func

from functions import consortium, telemetry
from shared.bootstrap import platform
from shared.errors import TransientError
from shared.messages import readable_ids
from shared.services import onboarding as ob
from shared.services import outbox
from shared.services.poison import sweep
from shared.services.status import WATCHED_QUEUES

bp = func.Blueprint()
log = logging.getLogger(__name__)
CONNECTION = "AzureWebJobsStorage"


def _handle(
    msg: func.QueueMessage,
    queue: str,
    work: Callable[[bytes], ob.Outcome],
    next_step: func.Out[List[str]] | None = None,
    next_queue: str | None = None,
) -> None:
    with outbox.collecting() as box:
        _run(msg, queue, work)
    bound = []
    for q, body in box:
        if next_step is not None and q == next_queue:
            bound.append(body)
        else:
            platform().queues.send(q, body)
    if bound and next_step is not None:
        next_step.set(bound)


def _run(msg: func.QueueMessage, queue: str, work: Callable[[bytes], ob.Outcome]) -> None:
    body = msg.get_body()
    member_id, request_id = readable_ids(body)
    with telemetry.onboarding_span(
        queue, request_id, **{"consortium.member_id": member_id, "messaging.destination.name": queue,
                              "messaging.message.id": msg.id, "consortium.dequeue_count": msg.dequeue_count},
    ) as span:  # fmt: skip
        outcome = _work(msg, queue, body, work)
        span.set_attribute("consortium.action", outcome.action)
    if outcome.action is ob.Action.REJECTED:
        telemetry.REJECTIONS.add(1, {"queue": queue, "reason": outcome.reason or "unknown"})
    log.info(
        outcome.message,
        extra={
            "fields": {"queue": queue, "action": outcome.action, "member_id": outcome.member_id, "message_id": msg.id,
                       "request_id": request_id, "reason": outcome.reason}
        },
    )  # fmt: skip


def _work(msg: func.QueueMessage, queue: str, body: bytes, work: Callable[[bytes], ob.Outcome]) -> ob.Outcome:
    try:
        return work(body)
    except TransientError as e:
        log.warning(
            "transient failure; the host will retry",
            extra={
                "fields": {"queue": queue, "message_id": msg.id, "dequeue_count": msg.dequeue_count, "error": str(e)}
            },
        )
        try:
            platform().onboarding.note_failure(body, e)
        except Exception:  # the note is best effort: the retry matters, not the note
            log.debug("could not note the failure on the member", exc_info=True)
        raise


KEYS, PROVISION, PROPOSE, ACTIVATE, RETIRE = (
    ob.STEP_QUEUES[s] for s in ("keys", "provision", "propose", "activate", "retire")
)


@bp.function_name("onboarding_intake")
@bp.queue_trigger(arg_name="msg", queue_name=ob.REQUESTS, connection=CONNECTION)
@bp.queue_output(arg_name="next_step", queue_name=KEYS, connection=CONNECTION)
def onboarding_intake(msg: func.QueueMessage, next_step: func.Out[List[str]]) -> None:
    _handle(msg, ob.REQUESTS, lambda body: platform().onboarding.intake(body), next_step, KEYS)


@bp.function_name("onboarding_decision")
@bp.queue_trigger(arg_name="msg", queue_name=ob.APPROVALS, connection=CONNECTION)
def onboarding_decision(msg: func.QueueMessage) -> None:
    _handle(msg, ob.APPROVALS, lambda body: platform().onboarding.decide(body))
    consortium.publish_now()


@bp.function_name("onboarding_keys")
@bp.queue_trigger(arg_name="msg", queue_name=KEYS, connection=CONNECTION)
@bp.queue_output(arg_name="next_step", queue_name=PROVISION, connection=CONNECTION)
def onboarding_keys(msg: func.QueueMessage, next_step: func.Out[List[str]]) -> None:
    _handle(msg, KEYS, lambda body: platform().onboarding.step(body, "keys"), next_step, PROVISION)


@bp.function_name("onboarding_provision")
@bp.queue_trigger(arg_name="msg", queue_name=PROVISION, connection=CONNECTION)
@bp.queue_output(arg_name="next_step", queue_name=PROPOSE, connection=CONNECTION)
def onboarding_provision(msg: func.QueueMessage, next_step: func.Out[List[str]]) -> None:
    _handle(msg, PROVISION, lambda body: platform().onboarding.step(body, "provision"), next_step, PROPOSE)


@bp.function_name("onboarding_propose")
@bp.queue_trigger(arg_name="msg", queue_name=PROPOSE, connection=CONNECTION)
@bp.queue_output(arg_name="next_step", queue_name=ACTIVATE, connection=CONNECTION)
def onboarding_propose(msg: func.QueueMessage, next_step: func.Out[List[str]]) -> None:
    _handle(msg, PROPOSE, lambda body: platform().onboarding.step(body, "propose"), next_step, ACTIVATE)
    consortium.publish_now()


@bp.function_name("onboarding_activate")
@bp.queue_trigger(arg_name="msg", queue_name=ACTIVATE, connection=CONNECTION)
def onboarding_activate(msg: func.QueueMessage) -> None:
    _handle(msg, ACTIVATE, lambda body: platform().onboarding.step(body, "activate"))


@bp.function_name("onboarding_retire")
@bp.queue_trigger(arg_name="msg", queue_name=RETIRE, connection=CONNECTION)
def onboarding_retire(msg: func.QueueMessage) -> None:
    _handle(msg, RETIRE, lambda body: platform().onboarding.step(body, "retire"))


@bp.function_name("offboarding")
@bp.queue_trigger(arg_name="msg", queue_name=ob.OFFBOARDING, connection=CONNECTION)
def offboarding(msg: func.QueueMessage) -> None:
    _handle(msg, ob.OFFBOARDING, lambda body: platform().onboarding.offboard(body))
    consortium.publish_now()


@bp.function_name("poison_sweep")
@bp.timer_trigger(arg_name="timer", schedule="%POISON_SWEEP_SCHEDULE%", run_on_startup=False)
def poison_sweep(timer: func.TimerRequest) -> None:
    p = platform()
    for queue, outcome in sweep(p.queues, p.onboarding.poison, WATCHED_QUEUES):
        telemetry.POISON.add(1, {"queue": queue})
        fields = {"queue": queue, "action": outcome.action, "member_id": outcome.member_id}
        log.warning(outcome.message, extra={"fields": fields})
