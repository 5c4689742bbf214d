"""The poison sweep: records each message the host gave up on, and puts them back on request.

Poison messages stay in ``<queue>-poison`` (so ``consortium status`` counts them and
``consortium replay-poison`` can put them back); the sweep only reads them, hiding each for a few
seconds, and records every one it has not seen (by queue and message id) through
``PoisonRecorder.record_poison``, which marks the member failed (when ``decide_poison`` says a
message of its current setup is lost) and announces ``member.failed``. ``note_failure`` keeps the last
transient error on the member, so that record can say why. All poison handling is here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from shared.decisions.onboarding import Poison, Status, decide_poison, status_of
from shared.errors import ConflictError
from shared.messages import readable_ids
from shared.ports.clock import Clock
from shared.ports.queues import QueueBrowser
from shared.ports.state import StateStore
from shared.services.member_record import APPROVALS, OFFBOARDING, Action, MemberRecord, Outcome
from shared.services.records import iso, member_path, update_record, with_history

#: Messages read per poison queue per sweep; the rest are recorded by later sweeps.
SWEEP_LIMIT = 320
HIDE_SECONDS = 3


@dataclass
class PoisonRecorder:
    member_id: str
    state: StateStore
    clock: Clock
    records: MemberRecord

    def note_failure(self, raw: str | bytes, error: Exception) -> None:
        """Remember the last transient error on the member, so a poison record can say why."""
        if self.records.read() is None:
            return
        note = {"message": str(error)[:300], "kind": type(error).__name__, "at": iso(self.clock)}
        update_record(self.state, member_path(self.member_id), lambda r: {**r, "last_error": note})

    def record_poison(self, queue: str, raw: str | bytes, message_id: str, dequeue_count: int) -> Outcome:
        """A message the host gave up on: record it once, mark the member failed, announce member.failed."""
        member_id, request_id = readable_ids(raw)
        body = {
            "queue": queue, "message_id": message_id, "dequeue_count": dequeue_count, "at": iso(self.clock),
            "member_id": member_id, "request_id": request_id,
            "excerpt": (raw if isinstance(raw, str) else raw.decode(errors="replace"))[:512],
        }  # fmt: skip
        try:
            self.state.create(f"poison/{queue}/{message_id}.json", body)
        except ConflictError:
            return Outcome(Action.KNOWN, f"poison message {message_id} on {queue} is already recorded", member_id)
        record = self.records.read()
        governance = queue in (APPROVALS, OFFBOARDING)
        decision = decide_poison(record, governance=governance, request_id=request_id)
        if record is None or decision.reason in (Poison.GOVERNANCE, Poison.OTHER_REQUEST, Poison.NO_RECORD):
            return Outcome(Action.RECORDED, f"poison message {message_id} on {queue} recorded", member_id)
        if not decision.fails:
            return Outcome(Action.RECORDED, f"{self.member_id} is {record.get('status')}; poison {message_id} recorded",
                           member_id)  # fmt: skip
        last = (record.get("last_error") or {}).get("message") or "transient failures"
        reason = f"{queue}: retries exhausted (moved to {queue}-poison): {last}"

        def failed(r: dict[str, Any]) -> dict[str, Any] | None:
            if not decide_poison(r, governance=False, request_id=None).fails:
                return None  # it went on since it was read: the check and the write are one (issue 19)
            return with_history({**r, "failure": {**body, "reason": reason}}, self.clock, Status.FAILED.value, reason)

        if status_of(self.records.update(failed)) is not Status.FAILED:
            return Outcome(
                Action.RECORDED, f"{self.member_id} went on meanwhile; poison {message_id} recorded", member_id
            )
        self.records.events.emit("member.failed", self.member_id, ("poison", queue, message_id),
                                 request_id=request_id, queue=queue, reason=reason)  # fmt: skip
        return Outcome(Action.FAILED, reason, self.member_id)


def sweep(queues: QueueBrowser, recorder: PoisonRecorder, names: Iterable[str]) -> Iterator[tuple[str, Outcome]]:
    """Record what is new in each ``<name>-poison`` queue; yields each queue with what was recorded."""
    for name in names:
        poison = f"{name}-poison"
        if queues.count(poison) == 0:
            continue
        for message in queues.browse(poison, limit=SWEEP_LIMIT, hide_seconds=HIDE_SECONDS):
            outcome = recorder.record_poison(name, message.content, message.id, message.dequeue_count)
            if outcome.action is not Action.KNOWN:
                yield name, outcome


def replay(
    move: Callable[[str, str], int],
    count: Callable[[str], int],
    names: Iterable[str],
    *,
    patience_seconds: float = 10.0,
    progress: Callable[[str, int], None] = lambda queue, moved: None,
) -> dict[str, int]:
    """Move every message of each ``<name>-poison`` back to ``<name>``; waits out messages the sweep hid."""
    moved: dict[str, int] = {}
    for name in names:
        poison = f"{name}-poison"
        total = 0
        deadline = time.monotonic() + patience_seconds
        while count(poison) > 0 and time.monotonic() < deadline:
            n = move(poison, name)
            total += n
            if n:
                progress(name, total)
                deadline = time.monotonic() + patience_seconds
            else:
                time.sleep(0.5)  # hidden for a moment by a sweep: they come back within HIDE_SECONDS
        if total:
            moved[name] = total
    return moved
