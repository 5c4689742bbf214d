"""Intake: this member's operator's onboarding request, validated, deduplicated by request id, and
either taken in (the member record created, the first step posted) or resumed where it stands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.decisions.onboarding import Intake, Resume, Status, decide_intake, decide_resume
from shared.errors import ConflictError
from shared.messages import DEFAULT_MAX_NODES, OnboardingRequest, Rejection
from shared.ports.clock import Clock
from shared.ports.state import StateStore
from shared.reasons import Reason
from shared.services.member_record import REQUESTS, Action, MemberRecord, Outcome
from shared.services.records import iso, member_path, with_history


@dataclass
class RequestIntake:
    member_id: str
    state: StateStore
    clock: Clock
    records: MemberRecord
    #: The legal name the verified chain lists for a member, or None where it lists none.
    listed_name: Callable[[str], str | None] = lambda _: None

    def intake(self, raw: str | bytes) -> Outcome:
        request = self.records.parse(OnboardingRequest, REQUESTS, raw)
        if isinstance(request, Outcome):
            return request
        rid, mid = request.request_id, request.member_id
        listed = self.listed_name(mid) if mid == self.member_id else None
        decision = decide_intake(
            self.records.read(), rid, mid, self.member_id, asked_name=request.legal_name, listed_name=listed
        )
        if decision.outcome is Intake.NOT_THIS_MEMBER:
            rejection = Rejection(Reason.NOT_THIS_MEMBER, decision.message, "member_id", mid, rid)
            return self.records.reject(REQUESTS, raw, rejection)
        if decision.outcome is Intake.NAME_MISMATCH:
            rejection = Rejection(Reason.LEGAL_NAME, decision.message, "legal_name", mid, rid)
            return self.records.reject(REQUESTS, raw, rejection)
        taken = self.records.claim_request(rid, "onboarding")
        if taken:
            rejection = Rejection(Reason.DUPLICATE_REQUEST_ID, taken, "request_id", mid, rid)
            return self.records.reject(REQUESTS, raw, rejection)
        for _ in range(8):
            doc = self.state.read(member_path(mid))
            decision = decide_intake(doc.body if doc else None, rid, mid, self.member_id)
            if decision.outcome is Intake.CONFLICT:
                rejection = Rejection(Reason.MEMBER_TAKEN, decision.message, "member_id", mid, rid)
                return self.records.reject(REQUESTS, raw, rejection)
            if decision.outcome is Intake.RESUME and doc is not None:
                return self.resume(doc.body)
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
            self.records.events.emit("member.requested", mid, rid, request_id=rid, legal_name=request.legal_name)
            self.records.send_step("keys", record)
            return Outcome(Action.ACCEPTED, decision.message, mid)
        raise ConflictError(f"member {mid}: record still contended")

    def resume(self, record: dict[str, Any]) -> Outcome:
        """Repair whatever a crash or a poisoned message left undone, from what the record says."""
        decision = decide_resume(record)
        if decision.reopen:
            record = self.records.update(lambda r: with_history(r, self.clock, Status.PENDING.value, "resumed"))
        if decision.action is Resume.NOTHING:
            return Outcome(Action.UNCHANGED, decision.message, self.member_id)
        self.records.send_step(decision.step or "propose", record)  # propose: again if its proposal is gone
        action = Action.RESUMED if decision.action is Resume.AT_STEP else Action.WAITING
        return Outcome(action, decision.message, self.member_id)
