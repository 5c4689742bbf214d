"""Names derived from a member id, in one place: its scale set and its keys in Key Vault."""

from __future__ import annotations

import re

MEMBER_ID = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")
KEY_KINDS = ("identity", "tls", "governance")


def valid_member_id(member_id: str) -> bool:
    return bool(MEMBER_ID.fullmatch(member_id))


def scale_set_name(member_id: str) -> str:
    """``vmss-{member_id}``: the member's Corda scale set."""
    if not valid_member_id(member_id):
        raise ValueError(f"member_id {member_id!r} must match {MEMBER_ID.pattern}")
    return f"vmss-{member_id}"


def key_name(member_id: str, kind: str) -> str:
    """``{member_id}-{kind}`` for kind identity, tls or governance (the approver's key is ``-governance``)."""
    if kind not in KEY_KINDS:
        raise ValueError(f"key kind {kind!r} must be one of {KEY_KINDS}")
    if not valid_member_id(member_id):
        raise ValueError(f"member_id {member_id!r} must match {MEMBER_ID.pattern}")
    return f"{member_id}-{kind}"
