"""Onboarding and offboarding as small idempotent steps, each one queue message.

    onboarding-requests  → intake    validate, dedupe by request_id, create the record (create-only)
    onboarding-approvals → vote      verify the approver's signature, count it, admit or reject
    onboarding-keys      → keys      identity, TLS and governance keys (found again by request_id tag)
    onboarding-provision → provision the scale set; re-enqueued with a delay while ARM works
    onboarding-publish   → publish   status active, then the signed network map rebuilt from records
    onboarding-activate  → activate  announce member.activated
    offboarding-requests → offboard  out of the map, capacity 0, keys disabled (never deleted)

Every step first looks whether its effect is there, acts, records on the member record (If-Match),
then emits the next step. A crash between any two of those is repaired by the redelivery, which
finds the effect and moves on. Steps for one member hold its lease (``member_lock``), so they never
interleave. Bad input returns after recording a rejection; transient faults raise so the host
retries and finally poisons; ``record_poison`` marks the member failed, and a replayed message
resumes the workflow where its record says it stands.

A member turns ``active`` in the publish step, immediately before the map that holds it is written,
so the map only ever lists active members (as the contract says) and the activate step announces.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.canonical import approval_payload, digest, unb64u
from shared.decisions.onboarding import (
    Intake,
    Status,
    Vote,
    decide_intake,
    decide_pending,
    decide_vote,
    map_entry,
)
from shared.errors import BusyError, ConflictError, PermanentError
from shared.messages import (
    DEFAULT_MAX_NODES,
    Approval,
    OffboardingRequest,
    OnboardingRequest,
    Rejection,
    StepMessage,
    parse,
    readable_ids,
)
from shared.naming import KEY_KINDS, key_name, scale_set_name
from shared.ports.clock import Clock
from shared.ports.keys import KeyStore
from shared.ports.leases import LeaseStore
from shared.ports.queues import MessageSender
from shared.ports.scalesets import Operation, ScaleSets, ScaleSetSpec
from shared.ports.state import StateStore
from shared.services import outbox
from shared.services.leadership import member_lock
from shared.services.network_map import NetworkMapPublisher, active_members
from shared.services.records import (
    Events,
    Rejections,
    iso,
    key_entry,
    member_path,
    request_path,
    update_record,
    with_history,
)

REQUESTS = "onboarding-requests"
APPROVALS = "onboarding-approvals"
OFFBOARDING = "offboarding-requests"
STEPS = ("keys", "provision", "publish", "activate")
STEP_QUEUES = {step: f"onboarding-{step}" for step in STEPS}
#: Every queue of the workflow, in order; their ``-poison`` twins are what the poison sweep reads.
QUEUES = (REQUESTS, APPROVALS, *STEP_QUEUES.values(), OFFBOARDING)
#: A scale set still provisioning after this many polls is given up on (with the poll delay: minutes).
MAX_POLLS = 360

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Outcome:
    """What a handler did, for the log line and the tests: an action word and a sentence."""

    action: str
    message: str
    member_id: str | None = None
    #: The stable reason code of a rejection (what `consortium rejections` shows), for counting.
    reason: str | None = None


#: The step each step posts when it is done (activate, the last, posts none).
FOLLOWS = dict(itertools.pairwise(STEPS))


def _next_step(record: dict[str, Any]) -> str | None:
    done = record.get("steps") or {}
    return next((s for s in STEPS if s not in done), None)


@dataclass
class Onboarding:
    state: StateStore
    keys: KeyStore
    scalesets: ScaleSets
    queues: MessageSender
    leases: LeaseStore
    clock: Clock
    founders: tuple[str, ...]
    quorum_rule: str
    template: str
    holder: str
    lease_seconds: int = 15
    poll_seconds: int = 10
    events: Events = field(init=False)
    rejections: Rejections = field(init=False)
    publisher: NetworkMapPublisher = field(init=False)

    def __post_init__(self) -> None:
        self.events = Events(self.queues, self.clock)
        self.rejections = Rejections(self.state, self.events, self.clock)
        self.publisher = NetworkMapPublisher(self.state, self.keys, self.clock)

    # ----------------------------------------------------------------- helpers

    def _reject(self, queue: str, raw: str | bytes, rejection: Rejection) -> Outcome:
        self.rejections.record(queue, raw, rejection)
        return Outcome("rejected", f"{rejection.reason}: {rejection.message}", rejection.member_id, rejection.reason)

    def _parse(self, model: type[M], queue: str, raw: str | bytes) -> M | Outcome:
        message = parse(model, raw)
        if isinstance(message, Rejection):
            return self._reject(queue, raw, message)
        return message

    def _advance(self, step: str, record: dict[str, Any]) -> None:
        """Post ``step`` unless the record shows it done already.

        A step delivered again finds its effect and posts the next step again: that is what carries an
        onboarding on when a run stopped between its change and its post. Once the next step is done,
        though, posting it again only starts a chain of duplicates through every later step (each
        redelivered copy posting the next), which then queue on the member's lock.
        """
        if step not in (record.get("steps") or {}):
            self._send_step(step, record)

    def _duplicate(self, message: StepMessage, expected: str) -> Outcome | None:
        """When another step holds the member: is this a copy of a step whose work, and whose next step's,
        is already done? Then it has nothing left to do or to post, and completes instead of failing."""
        record = self._record(message.member_id)
        if record is None or record.get("request_id") != message.request_id:
            return None
        after = FOLLOWS.get(expected, expected)
        if after not in (record.get("steps") or {}):
            return None
        return Outcome("duplicate", f"step {expected} for {message.member_id} is done and followed; copy dropped",
                       message.member_id)  # fmt: skip

    def _send_step(self, step: str, record: dict[str, Any], *, polls: int = 0, delay: int = 0) -> None:
        body = {"request_id": record["request_id"], "member_id": record["member_id"], "step": step}
        if polls:
            body["polls"] = polls
        text = json.dumps(body, separators=(",", ":"))
        if delay or not outbox.offer(STEP_QUEUES[step], text):
            self.queues.send(STEP_QUEUES[step], text, visible_after_seconds=delay)

    def _record(self, member_id: str) -> dict[str, Any] | None:
        doc = self.state.read(member_path(member_id))
        return doc.body if doc else None

    def _update(self, member_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        doc = update_record(self.state, member_path(member_id), change)
        if doc is None:
            raise PermanentError(f"member {member_id} has no record", reason="unknown_member")
        return doc.body

    def _claim_request(self, request_id: str, member_id: str, kind: str) -> str | None:
        """Index ``request_id`` → member (create-only); the reason when the id already names something else."""
        body = {"request_id": request_id, "member_id": member_id, "kind": kind, "at": iso(self.clock)}
        try:
            self.state.create(request_path(request_id), body)
            return None
        except ConflictError:
            doc = self.state.read(request_path(request_id))
        if doc is None or (doc.body.get("member_id"), doc.body.get("kind")) == (member_id, kind):
            return None
        return f"request_id {request_id} is already used by a {doc.body.get('kind')} of {doc.body.get('member_id')}"

    def _resume(self, record: dict[str, Any]) -> Outcome:
        """Repair whatever a crash or a poisoned message left undone, from what the record says."""
        member_id, status = record["member_id"], record.get("status")
        if status == Status.PENDING_APPROVAL.value:
            self.events.emit("member.requested", member_id, record["request_id"], request_id=record["request_id"])
            return Outcome("waiting", f"{member_id} waits for votes", member_id)
        if status == Status.FAILED.value:
            if not record.get("approved_at"):
                record = self._update(
                    member_id, lambda r: with_history(r, self.clock, Status.PENDING_APPROVAL.value, "resumed")
                )
                return Outcome("resumed", f"{member_id} waits for votes again", member_id)
            record = self._update(
                member_id, lambda r: with_history(r, self.clock, Status.PROVISIONING.value, "resumed")
            )
            status = Status.PROVISIONING.value
        if status in (Status.PROVISIONING.value, Status.ACTIVE.value):
            step = _next_step(record)
            if step is not None:
                self._send_step(step, record)
                return Outcome("resumed", f"{member_id} resumes at step {step}", member_id)
        return Outcome("unchanged", f"{member_id} is {status}; nothing to do", member_id)

    # ------------------------------------------------------------------ intake

    def intake(self, raw: str | bytes) -> Outcome:
        request = self._parse(OnboardingRequest, REQUESTS, raw)
        if isinstance(request, Outcome):
            return request
        rid, mid = request.request_id, request.member_id
        taken = self._claim_request(rid, mid, "onboarding")
        if taken:
            return self._reject(REQUESTS, raw, Rejection("duplicate_request_id", taken, "request_id", mid, rid))
        for _ in range(8):
            doc = self.state.read(member_path(mid))
            decision = decide_intake(doc.body if doc else None, rid, mid, self.founders)
            if decision.outcome is Intake.CONFLICT:
                return self._reject(REQUESTS, raw, Rejection("member_taken", decision.message, "member_id", mid, rid))
            if decision.outcome is Intake.RESUME and doc is not None:  # RESUME is only decided on a record
                return self._resume(doc.body)
            founder = decision.outcome is Intake.CREATE_FOUNDER
            now = iso(self.clock)
            record: dict[str, Any] = {
                "member_id": mid,
                "legal_name": request.legal_name,
                "region": request.region,
                "node_count": request.node_count,
                "contact_email": request.contact_email,
                "scale": (
                    request.scale.model_dump()
                    if request.scale
                    else {"min_nodes": 1, "max_nodes": max(request.node_count, DEFAULT_MAX_NODES)}
                ),
                "request_id": rid,
                "founder": founder,
                "requested_at": now,
                "approved_at": now if founder else None,
                "votes": {},
                "keys": (doc.body.get("keys") if doc else None) or {},
                "scale_set_id": (doc.body.get("scale_set_id") if doc else None),
                "steps": {},
                "history": (doc.body.get("history", []) if doc else []),
            }
            status = Status.PROVISIONING if founder else Status.PENDING_APPROVAL
            record = with_history(record, self.clock, status.value, decision.message)
            try:
                if doc is None:
                    self.state.create(member_path(mid), record)
                else:
                    self.state.replace(member_path(mid), record, doc.etag)
            except ConflictError:
                continue
            self.events.emit("member.requested", mid, rid, request_id=rid, legal_name=request.legal_name)
            if founder:
                self.events.emit("member.approved", mid, rid, request_id=rid, reason="founder")
                self._send_step("keys", record)
            return Outcome("accepted", decision.message, mid)
        raise ConflictError(f"member {mid}: record still contended")

    # -------------------------------------------------------------------- vote

    def _signature_verifies(self, approval: Approval) -> bool:
        payload = approval_payload(
            approver_id=approval.approver_id,
            decision=approval.decision,
            member_id=approval.member_id,
            request_id=approval.request_id,
        )
        signature = unb64u(approval.signature)
        for version in reversed(self.keys.list_versions(key_name(approval.approver_id, "governance"))):
            if version.enabled and self.keys.verify(version.kid, digest(payload), signature):
                return True
        return False

    def vote(self, raw: str | bytes) -> Outcome:
        approval = self._parse(Approval, APPROVALS, raw)
        if isinstance(approval, Outcome):
            return approval
        mid, rid = approval.member_id, approval.request_id
        active = tuple(sorted(m["member_id"] for m in active_members(self.state)))
        verified = False
        for _ in range(8):
            doc = self.state.read(member_path(mid))
            record = doc.body if doc else None
            if record and record.get("status") == Status.FAILED.value and not record.get("approved_at"):
                record = {**record, "status": Status.PENDING_APPROVAL.value}  # a replayed vote resumes the count
            decision = decide_vote(
                record, request_id=rid, approver_id=approval.approver_id, decision=approval.decision,
                signature=approval.signature, active_members=active, rule=self.quorum_rule,
            )  # fmt: skip
            if decision.outcome is Vote.REFUSED:
                return self._reject(APPROVALS, raw, Rejection(decision.reason, decision.message, None, mid, rid))
            if doc is None or record is None:  # refused above as unknown_request; never reached
                return self._reject(APPROVALS, raw, Rejection("unknown_request", f"no request {rid}", None, mid, rid))
            if decision.outcome is Vote.DUPLICATE:
                return self._follow_up(doc.body, decision.message)
            if not verified:
                if not self._signature_verifies(approval):
                    message = f"signature does not verify with {approval.approver_id}'s governance key"
                    return self._reject(APPROVALS, raw, Rejection("bad_signature", message, "signature", mid, rid))
                verified = True
            votes = {
                **decision.votes,
                approval.approver_id: {**decision.votes[approval.approver_id], "at": iso(self.clock)},
            }
            updated = {**record, "votes": votes}
            if decision.outcome is Vote.ADMITTED:
                updated = with_history(
                    {**updated, "approved_at": iso(self.clock)}, self.clock, Status.PROVISIONING.value, decision.message
                )
            elif decision.outcome is Vote.REJECTED:
                updated = with_history(updated, self.clock, Status.REJECTED.value, decision.message)
            elif record.get("status") != doc.body.get("status"):
                updated = with_history(updated, self.clock, Status.PENDING_APPROVAL.value, "resumed by a replayed vote")
            try:
                stored = self.state.replace(member_path(mid), updated, doc.etag)
            except ConflictError:
                continue
            return self._follow_up(stored.body, decision.message)
        raise ConflictError(f"member {mid}: record still contended")

    def _follow_up(self, record: dict[str, Any], message: str) -> Outcome:
        """After a vote (or its redelivery): announce the outcome and start the steps once admitted."""
        mid, rid, status = record["member_id"], record["request_id"], record.get("status")
        if status == Status.PROVISIONING.value and _next_step(record) == "keys":
            self.events.emit("member.approved", mid, rid, request_id=rid, reason=message)
            self._send_step("keys", record)
            return Outcome("admitted", message, mid)
        if status == Status.REJECTED.value:
            self.events.emit(
                "member.rejected",
                mid,
                ("request", rid),
                scope="request",
                request_id=rid,
                reason="quorum_impossible",
                message=message,
            )
            return Outcome("rejected", message, mid)
        return Outcome("counted", message, mid)

    # ------------------------------------------------------------------- steps

    def step(self, raw: str | bytes, expected: str) -> Outcome:
        queue = STEP_QUEUES[expected]
        message = self._parse(StepMessage, queue, raw)
        if isinstance(message, Outcome):
            return message
        if message.step != expected:
            wrong = f"step {message.step} does not belong on {queue}"
            rejection = Rejection("wrong_queue", wrong, "step", message.member_id, message.request_id)
            return self._reject(queue, raw, rejection)
        with contextlib.ExitStack() as held:
            try:
                term = held.enter_context(member_lock(self.leases, message.member_id, self.holder, self.lease_seconds))
            except BusyError:
                duplicate = self._duplicate(message, expected)
                if duplicate is None:
                    raise
                return duplicate
            record = self._record(message.member_id)
            if record is None or record.get("request_id") != message.request_id:
                return Outcome(
                    "stale", f"step {expected} for request {message.request_id} is superseded", message.member_id
                )
            if record.get("status") == Status.FAILED.value and record.get("approved_at"):
                record = self._update(
                    message.member_id,
                    lambda r: with_history(r, self.clock, Status.PROVISIONING.value, f"resumed at step {expected}"),
                )
            if record.get("status") not in (Status.PROVISIONING.value, Status.ACTIVE.value):
                return Outcome(
                    "stale",
                    f"{message.member_id} is {record.get('status')}; step {expected} does nothing",
                    message.member_id,
                )
            term.check()
            handler = {
                "keys": self._keys,
                "provision": self._provision,
                "publish": self._publish,
                "activate": self._activate,
            }
            try:
                return handler[expected](record, message)
            except PermanentError as e:
                return self._fail(message.member_id, message.request_id, f"step {expected}: {e}", ("step", expected))

    def _fail(self, member_id: str, request_id: str | None, reason: str, key: object) -> Outcome:
        """A permanent failure: the member is ``failed`` with the reason; the message completes."""
        self._update(member_id, lambda r: with_history(r, self.clock, Status.FAILED.value, reason))
        self.events.emit("member.failed", member_id, (key, reason), request_id=request_id, reason=reason)
        return Outcome("failed", reason, member_id)

    def _mark_step(self, member_id: str, step: str, **fields: Any) -> dict[str, Any]:
        def change(r: dict[str, Any]) -> dict[str, Any] | None:
            if step in (r.get("steps") or {}) and all(r.get(k) == v for k, v in fields.items()):
                return None
            return {
                **r,
                **fields,
                "steps": {**(r.get("steps") or {}), step: iso(self.clock)},
                "updated_at": iso(self.clock),
            }

        return self._update(member_id, change)

    def _keys(self, record: dict[str, Any], message: StepMessage) -> Outcome:
        mid, rid, now = record["member_id"], record["request_id"], iso(self.clock)
        keys: dict[str, Any] = {}
        created = 0
        done = "keys" in (record.get("steps") or {})
        for kind in KEY_KINDS:
            name = key_name(mid, kind)
            existing = record.get("keys", {}).get(kind)
            if done and existing and existing.get("kid"):
                keys[kind] = existing  # recorded already (and maybe rotated since): a redelivery changes nothing
                continue
            key = self.keys.get_key(name)
            if key is None or key.tags.get("request_id") != rid or not key.enabled:
                key = self.keys.create_key(name, "EC", tags={"member_id": mid, "request_id": rid, "kind": kind})
                created += 1
            same = existing and existing.get("kid") == key.kid
            keys[kind] = existing if same else key_entry(key, now)
        record = self._mark_step(mid, "keys", keys=keys)
        self._advance("provision", record)
        return Outcome("keys", f"{mid}: {created} key(s) created, {len(KEY_KINDS) - created} found", mid)

    def _provision(self, record: dict[str, Any], message: StepMessage) -> Outcome:
        mid, rid = record["member_id"], record["request_id"]
        name = scale_set_name(mid)
        current = self.scalesets.get(name)
        if current is None or current.tags.get("request_id") != rid or current.provisioning_state != "Succeeded":
            if current is not None and current.tags.get("request_id") == rid:
                operation = self.scalesets.poll(Operation(name, "InProgress"))
            else:
                try:
                    spec = ScaleSetSpec.from_template(
                        self.template, name=name, location=record["region"], capacity=int(record["node_count"]),
                        tags={"member_id": mid, "request_id": rid, "consortium": "corda"},
                    )  # fmt: skip
                except ValueError as e:
                    raise PermanentError(str(e), reason="template") from None
                operation = self.scalesets.begin_create_or_update(spec)
            if operation.status in ("Failed", "Canceled"):
                raise PermanentError(
                    f"provisioning {name} ended {operation.status}: {operation.error}", reason="provisioning"
                )
            if operation.status != "Succeeded":
                if message.polls >= MAX_POLLS:
                    raise PermanentError(
                        f"{name} still provisioning after {message.polls} polls", reason="provisioning_timeout"
                    )
                self._send_step("provision", record, polls=message.polls + 1, delay=self.poll_seconds)
                return Outcome("waiting", f"{name} is provisioning (poll {message.polls + 1})", mid)
            current = self.scalesets.get(name)
            if current is None:
                raise PermanentError(f"{name} vanished after provisioning", reason="provisioning")
        bounds = record.get("scale") or {}
        scale_set = {"id": current.id, "name": name, "capacity": current.capacity, **bounds}
        record = self._mark_step(mid, "provision", scale_set_id=current.id, scale_set=scale_set)
        self._advance("publish", record)
        return Outcome("provisioned", f"{name} has {current.capacity} node(s)", mid)

    def _publish(self, record: dict[str, Any], message: StepMessage) -> Outcome:
        mid = record["member_id"]
        if record.get("status") != Status.ACTIVE.value:
            self._update(mid, lambda r: with_history(r, self.clock, Status.ACTIVE.value, "in the network map"))
        published = self.publisher.publish(including=map_entry(record))
        self.events.emit("network_map.published", mid, ("version", published.version), version=published.version)
        record = self._mark_step(
            mid, "publish", map_version=max(published.version, int(record.get("map_version") or 0))
        )
        self._advance("activate", record)
        return Outcome("published", f"network map version {published.version}", mid)

    def _activate(self, record: dict[str, Any], message: StepMessage) -> Outcome:
        mid, rid = record["member_id"], record["request_id"]
        record = self._mark_step(mid, "activate", activated_at=record.get("activated_at") or iso(self.clock))
        self.events.emit("member.activated", mid, rid, request_id=rid, scale_set_id=record.get("scale_set_id"))
        return Outcome("activated", f"{mid} is active", mid)

    # ---------------------------------------------------------------- offboard

    def offboard(self, raw: str | bytes) -> Outcome:
        request = self._parse(OffboardingRequest, OFFBOARDING, raw)
        if isinstance(request, Outcome):
            return request
        mid, rid = request.member_id, request.request_id
        record = self._record(mid)
        if record is None:
            return self._reject(
                OFFBOARDING, raw, Rejection("unknown_member", f"there is no member {mid}", "member_id", mid, rid)
            )
        taken = self._claim_request(rid, mid, "offboarding")
        if taken:
            return self._reject(OFFBOARDING, raw, Rejection("duplicate_request_id", taken, "request_id", mid, rid))
        leaving = record.get("offboarding") or {}
        if record.get("status") == Status.OFFBOARDED.value and leaving.get("request_id") != rid:
            return self._reject(
                OFFBOARDING, raw, Rejection("already_offboarded", f"{mid} has already left", "member_id", mid, rid)
            )
        if record.get("status") == Status.REJECTED.value:
            return self._reject(
                OFFBOARDING, raw, Rejection("not_a_member", f"{mid} was never admitted", "member_id", mid, rid)
            )
        with member_lock(self.leases, mid, self.holder, self.lease_seconds) as term:

            def mark(r: dict[str, Any]) -> dict[str, Any] | None:
                if r.get("status") == Status.OFFBOARDED.value or r.get("offboarding"):
                    return None  # leaving already: the effects below are repeated, not the mark
                return {**r, "offboarding": {"request_id": rid, "reason": request.reason, "at": iso(self.clock)}}

            def done(r: dict[str, Any]) -> dict[str, Any] | None:
                if r.get("status") == Status.OFFBOARDED.value:
                    return None
                scale_set = {**(r.get("scale_set") or {}), "capacity": 0} if r.get("scale_set") else None
                return with_history({**r, "scale_set": scale_set}, self.clock, Status.OFFBOARDED.value, request.reason)

            self._update(mid, mark)  # a leaving member is out of the map and its vote counts no more
            published = self.publisher.publish()
            term.check()
            capacity = self._drain(mid)
            disabled = self._disable_keys(mid)
            self._update(mid, done)  # offboarded only once every effect is there
        if published.changed:
            self.events.emit("network_map.published", mid, ("version", published.version), version=published.version)
        self.events.emit("member.offboarded", mid, rid, request_id=rid, reason=request.reason)
        self.recount_pending()
        return Outcome(
            "offboarded",
            f"{mid} left: map v{published.version}, capacity {capacity}, {disabled} key version(s) disabled",
            mid,
        )

    def recount_pending(self) -> list[Outcome]:
        """Re-decide every pending request against today's members (after one left): admit or reject now.

        Without this a request whose quorum became reachable, or impossible, would wait for a vote
        that may never come. Each record is changed with If-Match; a redelivery finds it decided.
        """
        active = tuple(sorted(m["member_id"] for m in active_members(self.state)))
        outcomes = []
        for doc in self.state.read_all("members/"):
            if doc.body.get("status") != Status.PENDING_APPROVAL.value:
                continue
            path = doc.path

            def change(r: dict[str, Any]) -> dict[str, Any] | None:
                decision = decide_pending(r, active, self.quorum_rule)
                why = f"recounted after a member left: {decision.message}"
                if decision.outcome is Vote.ADMITTED:
                    return with_history(
                        {**r, "approved_at": iso(self.clock)}, self.clock, Status.PROVISIONING.value, why
                    )
                if decision.outcome is Vote.REJECTED:
                    return with_history(r, self.clock, Status.REJECTED.value, why)
                return None

            stored = update_record(self.state, path, change)
            if stored is not None and stored.body.get("status") != Status.PENDING_APPROVAL.value:
                outcomes.append(self._follow_up(stored.body, str(stored.body.get("status_reason"))))
        return outcomes

    def _drain(self, member_id: str) -> int:
        name = scale_set_name(member_id)
        for _ in range(5):
            current = self.scalesets.get(name)
            if current is None or current.capacity == 0:
                return 0
            try:
                return self.scalesets.set_capacity(name, 0, etag=current.etag).capacity
            except ConflictError:
                continue
        raise ConflictError(f"{name}: capacity still contended")

    def _disable_keys(self, member_id: str) -> int:
        disabled = 0
        for kind in KEY_KINDS:
            name = key_name(member_id, kind)
            for version in self.keys.list_versions(name):
                if version.enabled:
                    self.keys.set_enabled(name, version.version, enabled=False)
                    disabled += 1
        return disabled

    # ------------------------------------------------------------------ poison

    def note_failure(self, raw: str | bytes, error: Exception) -> None:
        """Remember the last transient error on the member, so a poison record can say why."""
        member_id, _ = readable_ids(raw)
        if member_id is None:
            return
        note = {"message": str(error)[:300], "kind": type(error).__name__, "at": iso(self.clock)}
        update_record(self.state, member_path(member_id), lambda r: {**r, "last_error": note})

    def record_poison(self, queue: str, raw: str | bytes, message_id: str, dequeue_count: int) -> Outcome:
        """A message the host gave up on: record it once, mark its member failed, announce member.failed."""
        member_id, request_id = readable_ids(raw)
        body = {
            "queue": queue, "message_id": message_id, "dequeue_count": dequeue_count, "at": iso(self.clock),
            "member_id": member_id, "request_id": request_id,
            "excerpt": (raw if isinstance(raw, str) else raw.decode(errors="replace"))[:512],
        }  # fmt: skip
        try:
            self.state.create(f"poison/{queue}/{message_id}.json", body)
        except ConflictError:
            return Outcome("known", f"poison message {message_id} on {queue} is already recorded", member_id)
        if member_id is None:
            return Outcome("recorded", f"poison message {message_id} on {queue} names no member", None)
        record = self._record(member_id)
        closed = (Status.ACTIVE.value, Status.OFFBOARDED.value, Status.REJECTED.value)
        if record is None or (
            request_id and record.get("request_id") not in (request_id, None) and queue != OFFBOARDING
        ):
            return Outcome("recorded", f"poison message {message_id} on {queue}: no matching member record", member_id)
        if record.get("status") in closed and queue != OFFBOARDING:
            return Outcome(
                "recorded", f"{member_id} is {record.get('status')}; poison message {message_id} recorded", member_id
            )
        last = (record.get("last_error") or {}).get("message") or "transient failures"
        reason = f"{queue}: retries exhausted (moved to {queue}-poison): {last}"
        self._update(
            member_id,
            lambda r: with_history(
                {**r, "failure": {**body, "reason": reason}}, self.clock, Status.FAILED.value, reason
            ),
        )
        self.events.emit(
            "member.failed", member_id, ("poison", queue, message_id), request_id=request_id, queue=queue, reason=reason
        )
        return Outcome("failed", reason, member_id)
