"""One member's own record (``members/{me}.json``) and the onboarding queues: what every onboarding
part reads, writes (ETag-guarded, re-read on a lost race) and posts, and what each handler returns.

The onboarding steps, the poison handling and the membership sync all work on this one record; the
helpers they share live here so that none of them needs another to reach it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.decisions.onboarding import Status
from shared.errors import ConflictError, PermanentError
from shared.messages import Rejection, parse
from shared.ports.clock import Clock
from shared.ports.queues import MessageSender
from shared.ports.state import StateStore
from shared.reasons import Reason
from shared.services import outbox
from shared.services.records import Events, Rejections, iso, member_path, request_path, update_record, with_history

REQUESTS = "onboarding-requests"
APPROVALS = "onboarding-approvals"
OFFBOARDING = "offboarding-requests"
STEPS = ("keys", "provision", "propose", "activate", "retire")
STEP_QUEUES = {step: f"onboarding-{step}" for step in STEPS}
#: Every queue of the workflow, in order; their ``-poison`` twins are what the poison sweep reads.
QUEUES = (REQUESTS, APPROVALS, *STEP_QUEUES.values(), OFFBOARDING)
#: The step each setup step posts when it is done (propose waits for the chain; activate and retire end).
FOLLOWS = {"keys": "provision", "provision": "propose"}

M = TypeVar("M", bound=BaseModel)


class Action(StrEnum):
    """What a handler did with a message (the log line's ``action``)."""

    ACCEPTED = "accepted"  # a new onboarding request taken in
    REJECTED = "rejected"  # bad input, recorded with its reason; the message completes
    RESUMED = "resumed"  # a failed or interrupted setup goes on where its record stands
    WAITING = "waiting"  # nothing to do until something else happens (a provisioning, the chain)
    UNCHANGED = "unchanged"  # the record already says what the message asks
    DUPLICATE = "duplicate"  # a redelivered copy of a step done and followed
    STALE = "stale"  # a step for a superseded request or a member that moved on
    FAILED = "failed"  # a permanent failure: the member is failed with the reason
    KEYS = "keys"
    PROVISIONED = "provisioned"
    MEMBER = "member"  # the verified chain lists it already: straight on to activate
    PROPOSED = "proposed"
    ACTIVATED = "activated"
    RETIRED = "retired"
    DECIDED = "decided"
    KNOWN = "known"  # a poison message recorded before
    RECORDED = "recorded"  # a poison message recorded, the member not failed by it


@dataclass(frozen=True)
class Outcome:
    """What a handler did, for the log line and the tests: an action and a sentence."""

    action: Action
    message: str
    member_id: str | None = None
    #: The stable reason code of a rejection (what `consortium rejections` shows), for counting.
    reason: str | None = None


@dataclass
class MemberRecord:
    member_id: str
    state: StateStore
    queues: MessageSender
    clock: Clock
    events: Events
    rejections: Rejections

    def read(self) -> dict[str, Any] | None:
        doc = self.state.read(member_path(self.member_id))
        return doc.body if doc else None

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        doc = update_record(self.state, member_path(self.member_id), change)
        if doc is None:
            raise PermanentError(f"member {self.member_id} has no record", reason=Reason.UNKNOWN_MEMBER)
        return doc.body

    def mark_step(self, step: str, **fields: Any) -> dict[str, Any]:
        def change(r: dict[str, Any]) -> dict[str, Any] | None:
            if step in (r.get("steps") or {}) and all(r.get(k) == v for k, v in fields.items()):
                return None
            return {**r, **fields, "steps": {**(r.get("steps") or {}), step: iso(self.clock)},
                    "updated_at": iso(self.clock)}  # fmt: skip

        return self.update(change)

    def reject(self, queue: str, raw: str | bytes, rejection: Rejection) -> Outcome:
        self.rejections.record(queue, raw, rejection)
        return Outcome(
            Action.REJECTED, f"{rejection.reason}: {rejection.message}", rejection.member_id, rejection.reason
        )

    def parse(self, model: type[M], queue: str, raw: str | bytes) -> M | Outcome:
        message = parse(model, raw)
        if isinstance(message, Rejection):
            return self.reject(queue, raw, message)
        return message

    def send_step(self, step: str, record: dict[str, Any], *, polls: int = 0, delay: int = 0) -> None:
        body = {"request_id": record["request_id"], "member_id": record["member_id"], "step": step}
        if polls:
            body["polls"] = polls
        text = json.dumps(body, separators=(",", ":"))
        if delay or not outbox.offer(STEP_QUEUES[step], text):
            self.queues.send(STEP_QUEUES[step], text, visible_after_seconds=delay)

    def advance(self, step: str, record: dict[str, Any]) -> None:
        """Post ``step`` unless the record shows it done already (a redelivered copy posts no duplicates)."""
        if step not in (record.get("steps") or {}):
            self.send_step(step, record)

    def claim_request(self, request_id: str, kind: str) -> str | None:
        """Index ``request_id`` (create-only); the reason when the id already names something else."""
        body = {"request_id": request_id, "member_id": self.member_id, "kind": kind, "at": iso(self.clock)}
        try:
            self.state.create(request_path(request_id), body)
            return None
        except ConflictError:
            doc = self.state.read(request_path(request_id))
        if doc is None or doc.body.get("kind") == kind:
            return None
        return f"request_id {request_id} is already used by a {doc.body.get('kind')} request"

    def fail(self, request_id: str | None, reason: str, key: object) -> Outcome:
        """A permanent failure: the member is ``failed`` with the reason; the message completes."""
        self.update(lambda r: with_history(r, self.clock, Status.FAILED.value, reason))
        self.events.emit("member.failed", self.member_id, (key, reason), request_id=request_id, reason=reason)
        return Outcome(Action.FAILED, reason, self.member_id)
