"""Where one member's consortium state lives: its private ``consortium`` container and its public one.

Paths other modules, the tools and the tests name, in one place."""

from __future__ import annotations

#: This member's own consortium state (proposals, decisions, pre-signatures, record, final signature).
SELF = "consortium/self.json"
#: This member's signed head in its public container (what the others read).
HEAD = "head.json"
#: The verified head's members, beside the chain in its public container, for its own nodes.
MEMBERSHIP = "membership.json"
#: Where documents another member published that do not verify are recorded.
PEER_REJECTIONS = "peer-documents"
#: What this member keeps of its agreement record and never publishes: its stall clock, whether it
#: has had anything to agree on, and the hash it signed (``agreement.Record``).
PRIVATE_RECORD_FIELDS = ("moved_at", "signed", "engaged")


def chain_path(version: int) -> str:
    return f"chain/{version:08d}.json"


def signed_path(version: int) -> str:
    return f"signed/{version:08d}.json"


def peer_path(member_id: str) -> str:
    return f"peers/{member_id}.json"
