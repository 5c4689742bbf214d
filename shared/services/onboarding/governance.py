"""Governance: this member's operator's decision on a proposal, and its leave or another's removal.

Both are statements this member's deployment signs in its own head (``Consortium.decide`` and
``Consortium.propose``); the chain, not this deployment, decides what comes of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.decisions import chain
from shared.decisions import consortium as rules
from shared.errors import PermanentError
from shared.messages import Decision, OffboardingRequest, Rejection
from shared.ports.clock import Clock
from shared.reasons import Reason
from shared.services.consortium import Consortium
from shared.services.member_record import APPROVALS, OFFBOARDING, Action, MemberRecord, Outcome
from shared.services.records import iso


@dataclass
class Governance:
    member_id: str
    records: MemberRecord
    clock: Clock
    consortium: Consortium

    def decide(self, raw: str | bytes) -> Outcome:
        """This member's operator approves or refuses a proposal it knows and that is still open."""
        decision = self.records.parse(Decision, APPROVALS, raw)
        if isinstance(decision, Outcome):
            return decision
        pid = decision.proposal_id
        heads = self.consortium.stored_heads()
        known = self.consortium.known_proposals(heads).get(pid)
        if known is None:
            unknown = Rejection(
                Reason.UNKNOWN_PROPOSAL, f"{pid}: no such proposal is known to this member", "proposal_id"
            )
            return self.records.reject(APPROVALS, raw, unknown)
        subject = known.member_id
        shown = rules.shown(self.consortium.judge(heads).get(pid))
        if shown != "open" and self.consortium.own().get("approvals", {}).get(pid) != decision.decision:
            closed = Rejection(Reason.CLOSED_PROPOSAL, f"{pid} is {shown}", "proposal_id", subject)
            return self.records.reject(APPROVALS, raw, closed)
        try:
            self.consortium.decide(pid, decision.decision)
        except PermanentError as e:
            return self.records.reject(APPROVALS, raw, Rejection(e.reason, str(e), "decision", subject))
        event = "member.approved" if rules.Vote(decision.decision) is rules.Vote.APPROVE else "member.rejected"
        self.records.events.emit(event, subject, ("decision", pid, self.member_id), proposal_id=pid,
                                 by=self.member_id, scope="decision")  # fmt: skip
        return Outcome(Action.DECIDED, f"{self.member_id} {decision.decision}s {pid}", subject)

    def offboard(self, raw: str | bytes) -> Outcome:
        request = self.records.parse(OffboardingRequest, OFFBOARDING, raw)
        if isinstance(request, Outcome):
            return request
        rid = request.request_id
        target = request.member_id or self.member_id
        head = self.consortium.head()
        if head is None or head.document.member(target) is None:
            who = "this member is" if target == self.member_id else f"{target} is"
            outside = Rejection(Reason.NOT_A_MEMBER, f"{who} not in the verified chain", "member_id", target, rid)
            return self.records.reject(OFFBOARDING, raw, outside)
        if target == self.member_id and head.document.member(self.member_id) is None:
            return self.records.reject(
                OFFBOARDING, raw, Rejection(Reason.NOT_A_MEMBER, "not a member", None, target, rid)
            )
        taken = self.records.claim_request(rid, "offboarding")
        if taken:
            return self.records.reject(
                OFFBOARDING, raw, Rejection(Reason.DUPLICATE_REQUEST_ID, taken, "request_id", target, rid)
            )
        kind = chain.Kind.LEAVE if target == self.member_id else chain.Kind.REMOVE
        proposal_id = f"prop-{kind.value}-{target}-{rid}"[:100]
        self.consortium.propose(rules.Proposal(
            proposal_id=proposal_id, kind=kind, member_id=target, proposer=self.member_id,
            proposed_at=iso(self.clock), reason=request.reason,
        ))  # fmt: skip
        return Outcome(Action.PROPOSED, f"{proposal_id}: {kind.value} {target} ({request.reason})", target)
