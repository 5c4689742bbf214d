"""The setup steps and the two the chain triggers, each one queue message, each idempotent:

    keys      identity, TLS and governance keys in this member's own vault
    provision this member's own scale set, at capacity 0 until it is admitted
    propose   an ``admit`` proposal in its published head (a founder the genesis lists: activate)
    activate  a verified version admits it: capacity to node_count, active
    retire    a verified version takes it out: capacity 0, keys disabled (never deleted)

Each first looks whether its effect is there, acts, records on the member record, then posts the next.
A step runs under the per-member lease; a failed member is resumed by a late step as ``decide_resume``
says; a permanent error fails the member and completes the message.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from shared.decisions import chain
from shared.decisions import consortium as rules
from shared.decisions.onboarding import CLOSED, Resume, Status, decide_resume, status_of
from shared.errors import BusyError, ConflictError, PermanentError, TransientError
from shared.messages import Rejection, StepMessage
from shared.naming import KEY_KINDS, key_name, scale_set_name
from shared.ports.clock import Clock
from shared.ports.keys import KeyStore
from shared.ports.leases import LeaseStore
from shared.ports.scalesets import Operation, ScaleSets, ScaleSetSpec
from shared.reasons import Reason
from shared.services import corda_root
from shared.services.consortium import Consortium
from shared.services.leadership import member_lock
from shared.services.member_record import FOLLOWS, STEP_QUEUES, Action, MemberRecord, Outcome
from shared.services.records import iso, key_entry, with_history

#: A scale set still provisioning after this many polls is given up on (with the poll delay: minutes).
MAX_POLLS = 360


@dataclass
class SetupSteps:
    member_id: str
    records: MemberRecord
    keys: KeyStore
    scalesets: ScaleSets
    leases: LeaseStore
    clock: Clock
    consortium: Consortium
    template: str
    holder: str
    lease_seconds: int
    poll_seconds: int
    inbox_url: str

    def step(self, raw: str | bytes, expected: str) -> Outcome:
        queue = STEP_QUEUES[expected]
        message = self.records.parse(StepMessage, queue, raw)
        if isinstance(message, Outcome):
            return message
        if message.step != expected or message.member_id != self.member_id:
            wrong = f"step {message.step} of {message.member_id} does not belong on {queue} of {self.member_id}"
            rejection = Rejection(Reason.WRONG_QUEUE, wrong, "step", message.member_id, message.request_id)
            return self.records.reject(queue, raw, rejection)
        with contextlib.ExitStack() as held:
            try:
                term = held.enter_context(member_lock(self.leases, self.member_id, self.holder, self.lease_seconds))
            except BusyError:
                record = self.records.read()
                after = FOLLOWS.get(expected, expected)
                if record and record.get("request_id") == message.request_id and after in (record.get("steps") or {}):
                    return Outcome(
                        Action.DUPLICATE, f"step {expected} is done and followed; copy dropped", self.member_id
                    )
                raise
            record = self.records.read()
            if record is None or record.get("request_id") != message.request_id:
                return Outcome(Action.STALE, f"step {expected} for {message.request_id} is superseded", self.member_id)
            resume = decide_resume(record, arrived=expected)
            if resume.reopen:
                record = self.records.update(
                    lambda r: with_history(r, self.clock, Status.PENDING.value, f"resumed at step {expected}")
                )
            if resume.action is Resume.AT_STEP:
                self.records.send_step(resume.step or "propose", record)
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
                return self.records.fail(message.request_id, f"step {expected}: {e}", ("step", expected))

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
        # Contract v3: the member's own Corda root, its key in this vault, the certificate stored first.
        root = corda_root.ensure_root(
            self.keys, self.records.state, member_id=mid, legal_name=record["legal_name"], now=self.clock.now()
        )
        record = self.records.mark_step("keys", keys=keys, corda_root=root)
        self.records.advance("provision", record)
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
                self.records.send_step("provision", record, polls=message.polls + 1, delay=self.poll_seconds)
                return Outcome(Action.WAITING, f"{name} is provisioning (poll {message.polls + 1})", mid)
            current = self.scalesets.get(name)
            if current is None:
                raise PermanentError(f"{name} vanished after provisioning", reason=Reason.PROVISIONING)
        bounds = record.get("scale") or {}
        scale_set = {"id": current.id, "name": name, "capacity": current.capacity, **bounds}
        record = self.records.mark_step("provision", scale_set_id=current.id, scale_set=scale_set)
        self.records.advance("propose", record)
        return Outcome(Action.PROVISIONED, f"{name} is ready with {current.capacity} node(s)", mid)

    def entry(self, record: dict[str, Any]) -> dict[str, Any]:
        """This member's entry in the chain: its legal name, governance key, published container and (contract
        v3) its own Corda root, where its keys step made one."""
        governance = (record.get("keys") or {}).get("governance") or {}
        entry = {
            "member_id": self.member_id,
            "legal_name": record["legal_name"],
            "governance_key": {"kid": governance.get("kid"), "jwk": governance.get("public_jwk")},
            "endpoint": self.consortium.identity.endpoint,
        }
        if record.get("corda_root"):
            entry["corda_root"] = record["corda_root"]
        return entry

    def _propose(self, record: dict[str, Any], message: StepMessage) -> Outcome:
        head = self.consortium.head() or self.consortium.follow()
        if head is None:
            raise TransientError(
                "no verified genesis yet: the genesis of CONSORTIUM_GENESIS_HASH is not at any deployment this one "
                "can read (CONSORTIUM_PEER_READ_URLS); retrying"
            )
        if head.document.member(self.member_id) is not None:
            record = self.records.mark_step("propose", proposal_id=record.get("proposal_id"))
            self.records.send_step("activate", record)
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
        self.records.mark_step("propose", proposal_id=proposal_id)
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

        self.records.update(active)
        if first:
            self.records.events.emit("member.activated", self.member_id, record["request_id"],
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

        self.records.update(done)
        self.records.events.emit("member.offboarded", self.member_id, ("retired", decision.get("version")),
                                 request_id=record["request_id"], status=status.value,
                                 version=decision.get("version"))  # fmt: skip
        return Outcome(Action.RETIRED, f"{self.member_id} {status.value}: capacity {capacity}, "
                       f"{disabled} key version(s) disabled", self.member_id)  # fmt: skip

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
        for name in [key_name(self.member_id, kind) for kind in KEY_KINDS] + [corda_root.root_key_name(self.member_id)]:
            for version in self.keys.list_versions(name):
                if version.enabled:
                    self.keys.set_enabled(name, version.version, enabled=False)
                    disabled += 1
        return disabled
