"""Proposals and votes: what this member and the others propose, how each member decided, and where
each proposal stands over this member's head (``consortium.eligibility``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.decisions import chain
from shared.decisions import consortium as rules
from shared.errors import PermanentError
from shared.ports.clock import Clock
from shared.reasons import Reason
from shared.services.consortium.memory import Follow
from shared.services.consortium.own import OwnState
from shared.services.consortium.store import ChainStore
from shared.services.records import Events


@dataclass
class Proposals:
    me: str
    own: OwnState
    store: ChainStore
    events: Events
    clock: Clock
    lifetime: timedelta
    memory: Follow

    def known(self, heads: Mapping[str, rules.Head] | None = None) -> dict[str, rules.Proposal]:
        """This member's own proposals, and the others' that count (``rules.counts_from``)."""
        found: dict[str, rules.Proposal] = {}
        for p in self.own.read().get("proposals", []):
            proposal = rules.Proposal.model_validate(p)
            found[proposal.proposal_id] = proposal
        for head in (heads if heads is not None else self.memory.heads).values():
            for proposal in head.proposals:
                if rules.counts_from(proposal, head.member_id).counts:
                    found.setdefault(proposal.proposal_id, proposal)
        return found

    def decisions(self, proposal_id: str, heads: Mapping[str, rules.Head]) -> dict[str, str]:
        found: dict[str, str] = {m: h.approvals[proposal_id] for m, h in heads.items() if proposal_id in h.approvals}
        mine = self.own.read().get("approvals", {}).get(proposal_id)
        if mine:
            found[self.me] = mine
        return found

    def own_presigned(self) -> list[rules.Presigned]:
        return [rules.Presigned.model_validate(p) for p in self.own.read().get("presigned", [])]

    def judge(self, heads: Mapping[str, rules.Head]) -> dict[str, rules.Eligibility]:
        base = self.store.head()
        if base is None:
            return {}
        done = {t.document.change.proposal_id for t in self.store.verified()}
        judged = {}
        own, published = self.own_presigned(), {m: h.presigned for m, h in heads.items()}
        for proposal_id, proposal in self.known(heads).items():
            presigned = rules.presignature(proposal, me=self.me, own=own, published=published).presigned
            judged[proposal_id] = rules.eligibility(
                proposal, base, decisions=self.decisions(proposal_id, heads), presigned=presigned,
                done=proposal_id in done, now=self.clock.now(), lifetime=self.lifetime,
            )  # fmt: skip
        return judged

    def propose(self, proposal: rules.Proposal) -> rules.Proposal:
        """Publish a proposal of this member (idempotent by proposal id)."""

        def add(body: dict[str, Any]) -> dict[str, Any] | None:
            proposals = body.get("proposals", [])
            if any(p["proposal_id"] == proposal.proposal_id for p in proposals):
                return None
            approvals = dict(body.get("approvals", {}))
            if proposal.kind == chain.Kind.REMOVE:
                approvals[proposal.proposal_id] = rules.Vote.APPROVE.value  # proposing a removal is approving it
            return {**body, "proposals": [*proposals, proposal.model_dump(mode="json")], "approvals": approvals}

        self.own.update(add)
        self.events.emit("proposal.received", proposal.member_id, ("proposal", proposal.proposal_id),
                         proposal_id=proposal.proposal_id, kind=proposal.kind.value, proposer=self.me)  # fmt: skip
        return proposal

    def decide(self, proposal_id: str, decision: str) -> str:
        """This member's operator's decision; the same decision twice changes nothing."""

        def record(body: dict[str, Any]) -> dict[str, Any] | None:
            approvals = dict(body.get("approvals", {}))
            if approvals.get(proposal_id) == decision:
                return None
            if proposal_id in approvals:
                raise PermanentError(
                    f"{proposal_id}: this member already decided {approvals[proposal_id]}", reason=Reason.DECIDED
                )
            approvals[proposal_id] = decision
            return {**body, "approvals": approvals}

        self.own.update(record)
        return str(decision)
