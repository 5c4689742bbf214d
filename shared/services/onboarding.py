"""One member's own onboarding and offboarding, as small idempotent steps, each one queue message.

    onboarding-requests  → intake    validate (this deployment's member only), dedupe by request_id
    onboarding-keys      → keys      identity, TLS and governance keys in this member's own vault
    onboarding-provision → provision this member's own scale set, at capacity 0 until it is admitted
    onboarding-propose   → propose   ask the consortium: an ``admit`` proposal in its published head
                                     (a founder that the genesis lists goes straight on to activate)
    onboarding-activate  → activate  a verified version admits it: capacity to node_count, active
    onboarding-approvals → decide    this member's operator's decision on a proposal, signed by the
                                     member's deployment with its own key in its head
    offboarding-requests → offboard  a ``leave`` (this member) or ``remove`` (another) proposal
    onboarding-retire    → retire    a verified version takes this member out: capacity 0, keys
                                     disabled (never deleted)

Every step first looks whether its effect is there, acts, records on the member record (If-Match),
then emits the next step; a crash between any two is repaired by redelivery. The chain, not this
deployment, decides membership: activate and retire are posted by the consortium tick when it adopts
a version about this member. Bad input returns after recording a rejection; transient faults raise so
the host retries and finally poisons; ``record_poison`` marks the member failed, and a replayed message
resumes the workflow where its record says it stands.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel

from shared.decisions import chain
from shared.decisions import consortium as rules
from shared.decisions.onboarding import (
    CLOSED,
    Change,
    Intake,
    Membership,
    Poison,
    Resume,
    Status,
    decide_intake,
    decide_membership,
    decide_poison,
    decide_resume,
    membership_due,
    status_of,
)
from shared.errors import BusyError, ConflictError, PermanentError, TransientError
from shared.messages import (
    DEFAULT_MAX_NODES,
    Decision,
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
from shared.reasons import Reason
from shared.services import outbox
from shared.services.consortium import Consortium
from shared.services.leadership import member_lock
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
STEPS = ("keys", "provision", "propose", "activate", "retire")
STEP_QUEUES = {step: f"onboarding-{step}" for step in STEPS}
#: Every queue of the workflow, in order; their ``-poison`` twins are what the poison sweep reads.
QUEUES = (REQUESTS, APPROVALS, *STEP_QUEUES.values(), OFFBOARDING)
#: The step each setup step posts when it is done (propose waits for the chain; activate and retire end).
FOLLOWS = {"keys": "provision", "provision": "propose"}
#: A scale set still provisioning after this many polls is given up on (with the poll delay: minutes).
MAX_POLLS = 360
#: How long a membership change handed on gets before ``Onboarding.reconcile`` reads whether its step
#: is done (then twice as long after each posting again, at most ``RECHECK_MAX_SECONDS``).
RECHECK_SECONDS = 30.0
RECHECK_MAX_SECONDS = 3600.0

log = logging.getLogger(__name__)

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
class Onboarding:
    member_id: str
    state: StateStore
    keys: KeyStore
    scalesets: ScaleSets
    queues: MessageSender
    leases: LeaseStore
    clock: Clock
    consortium: Consortium
    template: str
    holder: str
    lease_seconds: int = 15
    poll_seconds: int = 10
    #: The private ``node-infos-inbox`` container's URL, for the node agents' config (``node_config``).
    inbox_url: str = ""
    events: Events = field(init=False)
    rejections: Rejections = field(init=False)
    #: The membership change last handed on (by ``on_membership`` or ``reconcile``), when to look
    #: whether its step is done, and how many times ``reconcile`` posted it again.
    _recheck: tuple[Change, float, int] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.events = Events(self.queues, self.clock)
        self.rejections = Rejections(self.state, self.events, self.clock)

    # ----------------------------------------------------------------- helpers

    def _reject(self, queue: str, raw: str | bytes, rejection: Rejection) -> Outcome:
        self.rejections.record(queue, raw, rejection)
        return Outcome(
            Action.REJECTED, f"{rejection.reason}: {rejection.message}", rejection.member_id, rejection.reason
        )

    def _parse(self, model: type[M], queue: str, raw: str | bytes) -> M | Outcome:
        message = parse(model, raw)
        if isinstance(message, Rejection):
            return self._reject(queue, raw, message)
        return message

    def _send_step(self, step: str, record: dict[str, Any], *, polls: int = 0, delay: int = 0) -> None:
        body = {"request_id": record["request_id"], "member_id": record["member_id"], "step": step}
        if polls:
            body["polls"] = polls
        text = json.dumps(body, separators=(",", ":"))
        if delay or not outbox.offer(STEP_QUEUES[step], text):
            self.queues.send(STEP_QUEUES[step], text, visible_after_seconds=delay)

    def _advance(self, step: str, record: dict[str, Any]) -> None:
        """Post ``step`` unless the record shows it done already (a redelivered copy posts no duplicates)."""
        if step not in (record.get("steps") or {}):
            self._send_step(step, record)

    def record(self) -> dict[str, Any] | None:
        doc = self.state.read(member_path(self.member_id))
        return doc.body if doc else None

    def _update(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        doc = update_record(self.state, member_path(self.member_id), change)
        if doc is None:
            raise PermanentError(f"member {self.member_id} has no record", reason=Reason.UNKNOWN_MEMBER)
        return doc.body

    def _claim_request(self, request_id: str, kind: str) -> str | None:
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

    def _mark_step(self, step: str, **fields: Any) -> dict[str, Any]:
        def change(r: dict[str, Any]) -> dict[str, Any] | None:
            if step in (r.get("steps") or {}) and all(r.get(k) == v for k, v in fields.items()):
                return None
            return {**r, **fields, "steps": {**(r.get("steps") or {}), step: iso(self.clock)},
                    "updated_at": iso(self.clock)}  # fmt: skip

        return self._update(change)

    def _resume(self, record: dict[str, Any]) -> Outcome:
        """Repair whatever a crash or a poisoned message left undone, from what the record says."""
        decision = decide_resume(record)
        if decision.reopen:
            record = self._update(lambda r: with_history(r, self.clock, Status.PENDING.value, "resumed"))
        if decision.action is Resume.NOTHING:
            return Outcome(Action.UNCHANGED, decision.message, self.member_id)
        self._send_step(decision.step or "propose", record)  # propose: again if its proposal is gone, else waits
        action = Action.RESUMED if decision.action is Resume.AT_STEP else Action.WAITING
        return Outcome(action, decision.message, self.member_id)

    # ------------------------------------------------------------------ intake

    def intake(self, raw: str | bytes) -> Outcome:
        request = self._parse(OnboardingRequest, REQUESTS, raw)
        if isinstance(request, Outcome):
            return request
        rid, mid = request.request_id, request.member_id
        decision = decide_intake(self.record(), rid, mid, self.member_id)
        if decision.outcome is Intake.NOT_THIS_MEMBER:
            return self._reject(
                REQUESTS, raw, Rejection(Reason.NOT_THIS_MEMBER, decision.message, "member_id", mid, rid)
            )
        taken = self._claim_request(rid, "onboarding")
        if taken:
            return self._reject(REQUESTS, raw, Rejection(Reason.DUPLICATE_REQUEST_ID, taken, "request_id", mid, rid))
        for _ in range(8):
            doc = self.state.read(member_path(mid))
            decision = decide_intake(doc.body if doc else None, rid, mid, self.member_id)
            if decision.outcome is Intake.CONFLICT:
                return self._reject(
                    REQUESTS, raw, Rejection(Reason.MEMBER_TAKEN, decision.message, "member_id", mid, rid)
                )
            if decision.outcome is Intake.RESUME and doc is not None:
                return self._resume(doc.body)
            previous = doc.body if doc else {}
            record: dict[str, Any] = {
                "member_id": mid, "legal_name": request.legal_name, "region": request.region,
                "node_count": request.node_count, "contact_email": request.contact_email,
                "scale": request.scale.model_dump() if request.scale
                else {"min_nodes": 1, "max_nodes": max(request.node_count, DEFAULT_MAX_NODES)},
                "request_id": rid, "requested_at": iso(self.clock), "keys": previous.get("keys") or {},
                "scale_set_id": previous.get("scale_set_id"), "steps": {}, "history": previous.get("history", []),
            }  # fmt: skip
            record = with_history(record, self.clock, Status.PENDING.value, decision.message)
            try:
                if doc is None:
                    self.state.create(member_path(mid), record)
                else:
                    self.state.replace(member_path(mid), record, doc.etag)
            except ConflictError:
                continue
            self.events.emit("member.requested", mid, rid, request_id=rid, legal_name=request.legal_name)
            self._send_step("keys", record)
            return Outcome(Action.ACCEPTED, decision.message, mid)
        raise ConflictError(f"member {mid}: record still contended")

    # ------------------------------------------------------------------- steps

    def step(self, raw: str | bytes, expected: str) -> Outcome:
        queue = STEP_QUEUES[expected]
        message = self._parse(StepMessage, queue, raw)
        if isinstance(message, Outcome):
            return message
        if message.step != expected or message.member_id != self.member_id:
            wrong = f"step {message.step} of {message.member_id} does not belong on {queue} of {self.member_id}"
            rejection = Rejection(Reason.WRONG_QUEUE, wrong, "step", message.member_id, message.request_id)
            return self._reject(queue, raw, rejection)
        with contextlib.ExitStack() as held:
            try:
                term = held.enter_context(member_lock(self.leases, self.member_id, self.holder, self.lease_seconds))
            except BusyError:
                record = self.record()
                after = FOLLOWS.get(expected, expected)
                if record and record.get("request_id") == message.request_id and after in (record.get("steps") or {}):
                    return Outcome(
                        Action.DUPLICATE, f"step {expected} is done and followed; copy dropped", self.member_id
                    )
                raise
            record = self.record()
            if record is None or record.get("request_id") != message.request_id:
                return Outcome(Action.STALE, f"step {expected} for {message.request_id} is superseded", self.member_id)
            resume = decide_resume(record, arrived=expected)
            if resume.reopen:
                record = self._update(
                    lambda r: with_history(r, self.clock, Status.PENDING.value, f"resumed at step {expected}")
                )
            if resume.action is Resume.AT_STEP:
                self._send_step(resume.step or "propose", record)
                return Outcome(Action.RESUMED, resume.message, self.member_id)
            if expected != "retire" and status_of(record) in CLOSED:
                return Outcome(Action.STALE, f"{self.member_id} is {record.get('status')}; {expected} does nothing",
                               self.member_id)  # fmt: skip
            term.check()
            handler = {"keys": self._keys, "provision": self._provision, "propose": self._propose,
                       "activate": self._activate, "retire": self._retire}  # fmt: skip
            try:
                return handler[expected](record, message)
            except PermanentError as e:
                return self._fail(message.request_id, f"step {expected}: {e}", ("step", expected))

    def _fail(self, request_id: str | None, reason: str, key: object) -> Outcome:
        """A permanent failure: the member is ``failed`` with the reason; the message completes."""
        self._update(lambda r: with_history(r, self.clock, Status.FAILED.value, reason))
        self.events.emit("member.failed", self.member_id, (key, reason), request_id=request_id, reason=reason)
        return Outcome(Action.FAILED, reason, self.member_id)

    def _keys(self, record: dict[str, Any], message: StepMessage) -> Outcome:
        mid, rid, now = self.member_id, record["request_id"], iso(self.clock)
        keys: dict[str, Any] = {}
        created = 0
        for kind in KEY_KINDS:
            name = key_name(mid, kind)
            existing = record.get("keys", {}).get(kind)
            key = self.keys.get_key(name)
            if key is None or not key.enabled:
                # An enabled key of this member is kept (the founders' ceremony made the governance
                # key the genesis lists); a member that left and asks again gets new ones.
                key = self.keys.create_key(name, "EC", tags={"member_id": mid, "request_id": rid, "kind": kind})
                created += 1
            same = existing and existing.get("kid") == key.kid
            keys[kind] = existing if same else key_entry(key, now)
        record = self._mark_step("keys", keys=keys)
        self._advance("provision", record)
        return Outcome(Action.KEYS, f"{mid}: {created} key(s) created, {len(KEY_KINDS) - created} found", mid)

    def _provision(self, record: dict[str, Any], message: StepMessage) -> Outcome:
        """This member's own scale set, at capacity 0 until a version admits the member."""
        mid, rid = self.member_id, record["request_id"]
        name = scale_set_name(mid)
        current = self.scalesets.get(name)
        if current is None or current.provisioning_state != "Succeeded":
            if current is not None:
                operation = self.scalesets.poll(Operation(name, "InProgress"))
            else:
                try:
                    spec = ScaleSetSpec.from_template(
                        self.template, name=name, location=record["region"], capacity=0,
                        tags={"member_id": mid, "request_id": rid, "consortium": "corda"},
                    ).node_config(member_id=mid, genesis_hash=self.consortium.genesis,
                                  public_container_url=self.consortium.identity.endpoint,
                                  inbox_container_url=self.inbox_url)  # fmt: skip
                except ValueError as e:
                    raise PermanentError(str(e), reason=Reason.TEMPLATE) from None
                operation = self.scalesets.begin_create_or_update(spec)
            if operation.status in ("Failed", "Canceled"):
                raise PermanentError(f"provisioning {name} ended {operation.status}: {operation.error}",
                                     reason=Reason.PROVISIONING)  # fmt: skip
            if operation.status != "Succeeded":
                if message.polls >= MAX_POLLS:
                    raise PermanentError(f"{name} still provisioning after {message.polls} polls",
                                         reason=Reason.PROVISIONING_TIMEOUT)  # fmt: skip
                self._send_step("provision", record, polls=message.polls + 1, delay=self.poll_seconds)
                return Outcome(Action.WAITING, f"{name} is provisioning (poll {message.polls + 1})", mid)
            current = self.scalesets.get(name)
            if current is None:
                raise PermanentError(f"{name} vanished after provisioning", reason=Reason.PROVISIONING)
        bounds = record.get("scale") or {}
        scale_set = {"id": current.id, "name": name, "capacity": current.capacity, **bounds}
        record = self._mark_step("provision", scale_set_id=current.id, scale_set=scale_set)
        self._advance("propose", record)
        return Outcome(Action.PROVISIONED, f"{name} is ready with {current.capacity} node(s)", mid)

    def entry(self, record: dict[str, Any]) -> dict[str, Any]:
        """This member's entry in the chain: its legal name, governance key and published container."""
        governance = (record.get("keys") or {}).get("governance") or {}
        return {
            "member_id": self.member_id,
            "legal_name": record["legal_name"],
            "governance_key": {"kid": governance.get("kid"), "jwk": governance.get("public_jwk")},
            "endpoint": self.consortium.identity.endpoint,
        }

    def _propose(self, record: dict[str, Any], message: StepMessage) -> Outcome:
        head = self.consortium.head() or self.consortium.follow()
        if head is None:
            raise TransientError(
                "no verified genesis yet: the genesis of CONSORTIUM_GENESIS_HASH is not at any deployment this one "
                "can read (CONSORTIUM_PEER_READ_URLS); retrying"
            )
        if head.document.member(self.member_id) is not None:
            record = self._mark_step("propose", proposal_id=record.get("proposal_id"))
            self._send_step("activate", record)
            return Outcome(Action.MEMBER, f"{self.member_id} is in version {head.version}: activating", self.member_id)
        proposal_id = record.get("proposal_id") or f"prop-admit-{self.member_id}-{record['request_id']}"[:100]
        try:
            entry = chain.Member.model_validate(self.entry(record))
        except ValueError as e:
            raise PermanentError(f"this member's entry is not valid: {e}", reason=Reason.ENTRY) from None
        self.consortium.propose(rules.Proposal(
            proposal_id=proposal_id, kind=chain.Kind.ADMIT, member_id=self.member_id, entry=entry,
            proposer=self.member_id, proposed_at=iso(self.clock),
        ))  # fmt: skip
        self._mark_step("propose", proposal_id=proposal_id)
        return Outcome(Action.PROPOSED, f"{proposal_id} published; waiting for the members' approvals", self.member_id)

    def _activate(self, record: dict[str, Any], message: StepMessage) -> Outcome:
        head = self.consortium.head()
        if head is None or head.document.member(self.member_id) is None:
            return Outcome(
                Action.STALE, f"{self.member_id} is not in the verified chain; not activating", self.member_id
            )
        name = scale_set_name(self.member_id)
        current = self.scalesets.get(name)
        target = int(record["node_count"])
        if current is not None and current.capacity < target:
            current = self.scalesets.set_capacity(name, target, etag=current.etag)
        first = status_of(record) is not Status.ACTIVE
        scale_set = {**(record.get("scale_set") or {}), "capacity": current.capacity if current else 0}

        def active(r: dict[str, Any]) -> dict[str, Any] | None:
            if status_of(r) is Status.ACTIVE and "activate" in (r.get("steps") or {}):
                return None
            r = {**r, "scale_set": scale_set, "activated_at": r.get("activated_at") or iso(self.clock),
                 "steps": {**(r.get("steps") or {}), "activate": iso(self.clock)}}  # fmt: skip
            return with_history(r, self.clock, Status.ACTIVE.value, f"admitted by version {head.version}")

        self._update(active)
        if first:
            self.events.emit("member.activated", self.member_id, record["request_id"],
                             request_id=record["request_id"], version=head.version,
                             scale_set_id=record.get("scale_set_id"))  # fmt: skip
        return Outcome(Action.ACTIVATED, f"{self.member_id} is active with {target} node(s)", self.member_id)

    def _retire(self, record: dict[str, Any], message: StepMessage) -> Outcome:
        """Out of the chain: this member's own scale set to zero, its own keys disabled (never deleted)."""
        decision = record.get("retiring") or {}
        status = Status(decision.get("status", Status.LEFT.value))
        capacity = self._drain()
        disabled = self._disable_keys()

        def done(r: dict[str, Any]) -> dict[str, Any] | None:
            if status_of(r) is status:
                return None
            scale_set = {**(r.get("scale_set") or {}), "capacity": 0} if r.get("scale_set") else None
            return with_history({**r, "scale_set": scale_set}, self.clock, status.value, decision.get("why", ""))

        self._update(done)
        self.events.emit("member.offboarded", self.member_id, ("retired", decision.get("version")),
                         request_id=record["request_id"], status=status.value,
                         version=decision.get("version"))  # fmt: skip
        return Outcome(Action.RETIRED, f"{self.member_id} {status.value}: capacity {capacity}, "
                       f"{disabled} key version(s) disabled", self.member_id)  # fmt: skip

    def on_membership(self, change: Change, version: chain.Trusted) -> None:
        """The consortium adopted a version about this member: post what it means here."""
        decision = decide_membership(change, version.version)
        record = self.record()
        if decision.action is Membership.NOTHING or record is None:
            return
        self._recheck = (change, self.clock.now().timestamp() + RECHECK_SECONDS, 0)
        if decision.action is Membership.ACTIVATE:
            self._send_step("activate", record)
            return
        status = decision.status or Status.LEFT
        retiring = {"status": status.value, "version": version.version, "why": decision.message}
        record = self._update(lambda r: None if r.get("retiring") == retiring else {**r, "retiring": retiring})
        self._send_step("retire", record)

    def reconcile(self, versions: Sequence[chain.Trusted]) -> Change | None:
        """Hand a verified version about this member on again if its own record does not show its
        effect (``membership_due``: an ``activate`` or ``retire`` step lost with a host that died);
        returns the change still waiting, or None when the record agrees with the chain.

        The consortium tick calls it after each adoption and on a new process's first tick. A change
        just handed on is given ``RECHECK_SECONDS`` before the record is read again, and each further
        posting waits twice as long (at most an hour): a step that keeps failing is not hammered."""
        now = self.clock.now().timestamp()
        if self._recheck is not None and now < self._recheck[1]:
            return self._recheck[0]
        if not versions:
            return None
        founders = versions[0].document.member(self.member_id) is not None
        about_me = [(0, "genesis")] if founders else []
        about_me += [(t.version, t.document.change.kind.value) for t in versions[1:]
                     if t.document.change.member_id == self.member_id]  # fmt: skip
        listed = versions[-1].document.member(self.member_id) is not None
        due = membership_due(self.record(), listed=listed, about_me=about_me)
        if due is None:
            self._recheck = None
            return None
        change, number = due
        attempts = (self._recheck[2] if self._recheck else 0) + 1
        log.warning(
            "version %d (%s %s) is not carried out in this member's record: handing it on again (attempt %d)",
            number, change, self.member_id, attempts,
        )  # fmt: skip
        self.on_membership(change, next(t for t in versions if t.version == number))
        self._recheck = (change, now + min(RECHECK_SECONDS * 2 ** (attempts - 1), RECHECK_MAX_SECONDS), attempts)
        return change

    def _drain(self) -> int:
        name = scale_set_name(self.member_id)
        for _ in range(5):
            current = self.scalesets.get(name)
            if current is None or current.capacity == 0:
                return 0
            try:
                return self.scalesets.set_capacity(name, 0, etag=current.etag).capacity
            except ConflictError:
                continue
        raise ConflictError(f"{name}: capacity still contended")

    def _disable_keys(self) -> int:
        disabled = 0
        for kind in KEY_KINDS:
            name = key_name(self.member_id, kind)
            for version in self.keys.list_versions(name):
                if version.enabled:
                    self.keys.set_enabled(name, version.version, enabled=False)
                    disabled += 1
        return disabled

    # ---------------------------------------------------------------- decisions

    def decide(self, raw: str | bytes) -> Outcome:
        """This member's operator approves or refuses a proposal it knows and that is still open."""
        decision = self._parse(Decision, APPROVALS, raw)
        if isinstance(decision, Outcome):
            return decision
        pid = decision.proposal_id
        heads = self.consortium.stored_heads()
        known = self.consortium.known_proposals(heads).get(pid)
        if known is None:
            return self._reject(APPROVALS, raw, Rejection(Reason.UNKNOWN_PROPOSAL, f"{pid}: no such proposal is known "
                                                          "to this member", "proposal_id"))  # fmt: skip
        subject = known.member_id
        shown = rules.shown(self.consortium.judge(heads).get(pid))
        if shown != "open" and self.consortium.own().get("approvals", {}).get(pid) != decision.decision:
            return self._reject(APPROVALS, raw, Rejection(Reason.CLOSED_PROPOSAL, f"{pid} is {shown}",
                                                          "proposal_id", subject))  # fmt: skip
        try:
            self.consortium.decide(pid, decision.decision)
        except PermanentError as e:
            return self._reject(APPROVALS, raw, Rejection(e.reason, str(e), "decision", subject))
        event = "member.approved" if rules.Vote(decision.decision) is rules.Vote.APPROVE else "member.rejected"
        self.events.emit(event, subject, ("decision", pid, self.member_id), proposal_id=pid, by=self.member_id,
                         scope="decision")  # fmt: skip
        return Outcome(Action.DECIDED, f"{self.member_id} {decision.decision}s {pid}", subject)

    # ---------------------------------------------------------------- offboard

    def offboard(self, raw: str | bytes) -> Outcome:
        request = self._parse(OffboardingRequest, OFFBOARDING, raw)
        if isinstance(request, Outcome):
            return request
        rid = request.request_id
        target = request.member_id or self.member_id
        head = self.consortium.head()
        if head is None or head.document.member(target) is None:
            who = "this member is" if target == self.member_id else f"{target} is"
            return self._reject(OFFBOARDING, raw, Rejection(Reason.NOT_A_MEMBER, f"{who} not in the verified chain",
                                                            "member_id", target, rid))  # fmt: skip
        if target == self.member_id and head.document.member(self.member_id) is None:
            return self._reject(OFFBOARDING, raw, Rejection(Reason.NOT_A_MEMBER, "not a member", None, target, rid))
        taken = self._claim_request(rid, "offboarding")
        if taken:
            return self._reject(
                OFFBOARDING, raw, Rejection(Reason.DUPLICATE_REQUEST_ID, taken, "request_id", target, rid)
            )
        kind = chain.Kind.LEAVE if target == self.member_id else chain.Kind.REMOVE
        proposal_id = f"prop-{kind.value}-{target}-{rid}"[:100]
        self.consortium.propose(rules.Proposal(
            proposal_id=proposal_id, kind=kind, member_id=target, proposer=self.member_id,
            proposed_at=iso(self.clock), reason=request.reason,
        ))  # fmt: skip
        return Outcome(Action.PROPOSED, f"{proposal_id}: {kind.value} {target} ({request.reason})", target)

    # ------------------------------------------------------------------ poison

    def note_failure(self, raw: str | bytes, error: Exception) -> None:
        """Remember the last transient error on the member, so a poison record can say why."""
        if self.record() is None:
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
        record = self.record()
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

        if status_of(self._update(failed)) is not Status.FAILED:
            return Outcome(
                Action.RECORDED, f"{self.member_id} went on meanwhile; poison {message_id} recorded", member_id
            )
        self.events.emit("member.failed", self.member_id, ("poison", queue, message_id), request_id=request_id,
                         queue=queue, reason=reason)  # fmt: skip
        return Outcome(Action.FAILED, reason, self.member_id)
