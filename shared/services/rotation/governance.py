"""The governance key's side of a rotation: it lives in the chain, so the chain says where it stands.

A new governance key is proposed as a ``rotate`` of this member's chain entry (``Consortium.propose``:
the consortium tick pre-signs it with the old key and the new, the other members sign it by themselves,
as a rotate needs no approval), and it is published once a verified version lists the new kid. Until
then the member signs with the kid the chain lists (``Consortium.signing_key``). A version adopted
that rotated this member's entry moves the rotation on at once, through a request to its own queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.decisions import chain
from shared.decisions import consortium as rules
from shared.decisions.onboarding import Change, change_about
from shared.ports.queues import MessageSender
from shared.services.consortium import VersionAdopted
from shared.services.records import iso_time
from shared.services.rotation.paths import REQUESTS
from shared.services.rotation.publication import key_ref
from shared.services.rotation.wiring import Wiring


def rotate_proposal_id(member_id: str, to_version: str) -> str:
    """The rotate proposal of one new governance version: the same id however often it is proposed."""
    return f"prop-rotate-{member_id}-{to_version[:24]}"


@dataclass
class GovernanceSide:
    wiring: Wiring
    #: This member's own queues: a version adopted posts a rotation request to them.
    queues: MessageSender

    def chain_kid(self) -> str | None:
        """The governance kid this member's verified chain lists for it (None when it is not in it)."""
        w = self.wiring
        head = w.consortium.head()
        entry = head.document.member(w.member_id) if head else None
        return entry.governance_key.kid if entry else None

    def chain_version(self) -> int | None:
        head = self.wiring.consortium.head()
        return head.version if head else None

    def propose(self, entry: dict[str, Any]) -> None:
        """The rotate proposal of the new governance key: this member's chain entry with the new key."""
        w = self.wiring
        rotation = entry["rotation"]
        proposal_id = str(rotation["proposal_id"])
        if any(p.get("proposal_id") == proposal_id for p in w.consortium.own().get("proposals", [])):
            return
        head = w.consortium.head()
        listed = head.document.member(w.member_id) if head else None
        if listed is None:
            return  # left the chain meanwhile: nothing to propose; retire disables everything
        new_key = chain.KeyRef.model_validate(key_ref(entry))
        w.consortium.propose(rules.Proposal(
            proposal_id=proposal_id, kind=chain.Kind.ROTATE, member_id=w.member_id,
            entry=listed.model_copy(update={"governance_key": new_key}), proposer=w.member_id,
            proposed_at=iso_time(w.clock.now()), reason=f"governance key rotation {rotation['id']}",
        ))  # fmt: skip

    def version_adopted(self, event: VersionAdopted) -> None:
        """A version was adopted (the consortium's announcement): if it rotated this member's entry, move
        the rotation on now (a request to its own queue) rather than at the next scheduled check."""
        if change_about(self.wiring.member_id, event.version) != Change.ROTATED:
            return
        body = {"request_id": f"rot-adopted-v{event.version.version}", "force": False}
        self.queues.send(REQUESTS, json.dumps(body, separators=(",", ":")))
