"""Key rotation triggers: the daily check and `consortium rotate-keys` requests, on the member's coordinator.

The timer (``KEY_ROTATION_SCHEDULE``: daily in Azure, every 15 s locally) rotates what is due of this
member's own keys and moves rotations under way along (publish, overlap, retire). A request on the
member's own ``key-rotation-requests`` asks for the same at once, optionally forced (the consortium
posts one when it adopts a version that rotates this member's governance key); an instance that is
not the coordinator posts the request back with a short delay, so the member's coordinator takes it.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions import telemetry
from functions.coordination import as_coordinator
from shared.bootstrap import platform
from shared.messages import Rejection
from shared.services import rotation
from shared.services.leadership import Term

bp = func.Blueprint()
log = logging.getLogger(__name__)
CONNECTION = "AzureWebJobsStorage"
#: How long a request waits before it is offered again when this instance is not the coordinator.
DEFER_SECONDS = 5


def _log(run: rotation.RotationRun, what: str, term: Term) -> None:
    log.info(
        "%s: %s", what, ", ".join(f"{n} {a}" for a, n in sorted(run.summary().items())) or "no keys",
        extra={"fields": {"fencing_token": term.fencing_token, "keys_document_seq": run.keys_document_seq,
                          "busy": run.busy,
                          "acted": [r.as_json() for r in run.results if r.action not in ("none", "wait")]}},
    )  # fmt: skip


def _count(run: rotation.RotationRun) -> None:
    for result in run.results:
        if result.action not in ("none", "wait"):
            telemetry.KEY_ROTATIONS.add(1, {"kind": result.kind, "action": result.action})
    telemetry.set_gauge("consortium.key.age_days", {telemetry.attrs(key=k): age for k, age in run.key_ages.items()})


def _scheduled(term: Term) -> None:
    with telemetry.span("key rotation check", **{"consortium.fencing_token": term.fencing_token}):
        run = platform().rotator.run(term.fencing_token, term.check)
    _count(run)
    _log(run, "key rotation check", term)


@bp.function_name("key_rotation")
@bp.timer_trigger(arg_name="timer", schedule="%KEY_ROTATION_SCHEDULE%", run_on_startup=False)
def key_rotation(timer: func.TimerRequest) -> None:
    as_coordinator("key rotation", _scheduled)


@bp.function_name("key_rotation_request")
@bp.queue_trigger(arg_name="msg", queue_name=rotation.REQUESTS, connection=CONNECTION)
def key_rotation_request(msg: func.QueueMessage) -> None:
    body = msg.get_body()
    term = platform().coordinator.ensure()
    if term is None:
        platform().queues.send(rotation.REQUESTS, body.decode(errors="replace"), visible_after_seconds=DEFER_SECONDS)
        log.info("rotation request passed on to the coordinator", extra={"fields": {"message_id": msg.id}})
        return
    with telemetry.span("key rotation request", **{"messaging.message.id": msg.id}):
        run = platform().rotator.take_request(body, term.fencing_token, term.check)
    if isinstance(run, Rejection):
        telemetry.REJECTIONS.add(1, {"queue": rotation.REQUESTS, "reason": run.reason})
        log.info("rotation request rejected: %s: %s", run.reason, run.message, extra={"fields": {"message_id": msg.id}})
        return
    _count(run)
    _log(run, "key rotation request", term)
