"""Onboarding decisions, pure: what intake does with a request, what a vote changes, who is in the map.

Inputs in (the member record as stored, the message, the active members, the quorum rule, ``now``);
a decision with an outcome, a reason code and a one-line message out. The services do the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    REJECTED = "rejected"
    FAILED = "failed"
    OFFBOARDED = "offboarded"


class Intake(StrEnum):
    CREATE_FOUNDER = "create_founder"  # admitted without votes
    CREATE_PENDING = "create_pending"  # waits for votes
    RESUME = "resume"  # the same request again: repair whatever step was lost
    CONFLICT = "conflict"  # another request already holds this member id


@dataclass(frozen=True)
class IntakeDecision:
    outcome: Intake
    message: str


def decide_intake(
    record: dict[str, Any] | None, request_id: str, member_id: str, founders: tuple[str, ...]
) -> IntakeDecision:
    if record is None:
        if member_id in founders:
            return IntakeDecision(Intake.CREATE_FOUNDER, f"{member_id} is a founder: admitted without votes")
        return IntakeDecision(Intake.CREATE_PENDING, f"{member_id} waits for the active members' votes")
    if record.get("request_id") == request_id:
        return IntakeDecision(Intake.RESUME, f"request {request_id} was already taken in; resuming where it stands")
    if record.get("status") in (Status.REJECTED.value, Status.OFFBOARDED.value):
        # A member that left or was refused may ask again under a new request id.
        return IntakeDecision(
            Intake.CREATE_FOUNDER if member_id in founders else Intake.CREATE_PENDING,
            f"{member_id} asks again after being {record.get('status')}",
        )
    return IntakeDecision(
        Intake.CONFLICT, f"member_id {member_id} is already taken by request {record.get('request_id')}"
    )


def approvals_needed(active_members: int, rule: str) -> int:
    """Approvals that admit a newcomer: a strict majority of the active members by default."""
    if active_members <= 0:
        return 1
    if rule == "majority":
        return active_members // 2 + 1
    if rule == "all":
        return active_members
    if rule.isdigit() and int(rule) > 0:
        return min(int(rule), active_members)
    raise ValueError(f"setting APPROVAL_QUORUM={rule!r} must be 'majority', 'all' or a whole number above 0")


class Vote(StrEnum):
    RECORDED = "recorded"  # counted; no outcome yet
    ADMITTED = "admitted"  # quorum reached
    REJECTED = "rejected"  # admission has become impossible
    DUPLICATE = "duplicate"  # the same vote delivered again: nothing changes
    REFUSED = "refused"  # the vote itself is invalid (reason says why)


@dataclass(frozen=True)
class VoteDecision:
    outcome: Vote
    reason: str
    message: str
    votes: dict[str, dict[str, str]]


def decide_vote(
    record: dict[str, Any] | None,
    *,
    request_id: str,
    approver_id: str,
    decision: str,
    signature: str,
    active_members: tuple[str, ...],
    rule: str,
) -> VoteDecision:
    votes: dict[str, dict[str, str]] = dict((record or {}).get("votes") or {})
    if record is None or record.get("request_id") != request_id:
        return VoteDecision(Vote.REFUSED, "unknown_request", f"there is no onboarding request {request_id}", votes)
    if approver_id not in active_members:
        return VoteDecision(
            Vote.REFUSED, "not_a_member", f"{approver_id} is not an active member and cannot vote", votes
        )
    previous = votes.get(approver_id)
    if previous is not None:
        if previous.get("signature") == signature:
            return VoteDecision(Vote.DUPLICATE, "duplicate", f"{approver_id}'s vote was already counted", votes)
        return VoteDecision(Vote.REFUSED, "replayed", f"{approver_id} already voted {previous.get('decision')}", votes)
    if record.get("status") != Status.PENDING_APPROVAL.value:
        return VoteDecision(Vote.REFUSED, "closed", f"request {request_id} is closed ({record.get('status')})", votes)
    votes[approver_id] = {"decision": decision, "signature": signature}
    return tally(votes, active_members, rule)


def decide_pending(record: dict[str, Any], active_members: tuple[str, ...], rule: str) -> VoteDecision:
    """A pending request re-counted without a new vote, after membership changed (a member left).

    Votes of members no longer active stop counting; the request is admitted if the remaining
    approvals now reach the quorum of the smaller membership, and rejected once it cannot.
    """
    votes: dict[str, dict[str, str]] = dict(record.get("votes") or {})
    if record.get("status") != Status.PENDING_APPROVAL.value:
        return VoteDecision(Vote.REFUSED, "closed", f"request {record.get('request_id')} is not pending", votes)
    return tally(votes, active_members, rule)


def tally(votes: dict[str, dict[str, str]], active_members: tuple[str, ...], rule: str) -> VoteDecision:
    """Count each active member's vote once: admitted at quorum, rejected once quorum is out of reach."""
    counted = {a: v for a, v in votes.items() if a in active_members}
    approvals = sum(1 for v in counted.values() if v["decision"] == "approve")
    rejections = sum(1 for v in counted.values() if v["decision"] == "reject")
    needed = approvals_needed(len(active_members), rule)
    if approvals >= needed:
        return VoteDecision(
            Vote.ADMITTED, "quorum", f"{approvals} of {len(active_members)} approved (needed {needed})", votes
        )
    if len(active_members) - rejections < needed:
        return VoteDecision(
            Vote.REJECTED, "quorum_impossible",
            f"{rejections} of {len(active_members)} rejected: {needed} approvals can no longer be reached", votes,
        )  # fmt: skip
    return VoteDecision(
        Vote.RECORDED, "counted", f"{approvals} approve, {rejections} reject; {needed} approvals needed", votes
    )


def map_entry(record: dict[str, Any]) -> dict[str, Any]:
    keys = {kind: _published_key(key) for kind, key in (record.get("keys") or {}).items()}
    return {
        "member_id": record["member_id"],
        "legal_name": record["legal_name"],
        "scale_set_id": record.get("scale_set_id"),
        "keys": keys,
    }


def _published_key(key: dict[str, Any]) -> dict[str, Any]:
    """A key as nodes see it; during a rotation's overlap, with the version it replaces as ``previous``."""
    entry = {"kid": key.get("kid"), "version": key.get("version"), "public_jwk": key.get("public_jwk")}
    previous = key.get("previous")
    if previous:
        entry["previous"] = {k: previous.get(k) for k in ("kid", "version", "public_jwk")}
    return entry


def build_network_map(
    current: dict[str, Any] | None,
    members: list[dict[str, Any]],
    *,
    issued_at: str,
    signing_key_id: str,
    next_signing_key: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The next map (unsigned) for ``members``, or None when it would not change (no new version).

    ``next_signing_key`` (kid and public JWK) announces the signer's incoming version during its
    rotation's overlap: a node that trusts this map's signer learns the key the next maps are signed with.
    """
    entries = sorted((map_entry(m) for m in members), key=lambda e: str(e["member_id"]))
    if (
        current is not None
        and current.get("members") == entries
        and current.get("signing_key_id") == signing_key_id
        and current.get("next_signing_key") == next_signing_key
    ):
        return None
    version = int(current.get("version", 0)) + 1 if current else 1
    document: dict[str, Any] = {
        "version": version, "issued_at": issued_at, "members": entries, "signing_key_id": signing_key_id,
    }  # fmt: skip
    if next_signing_key is not None:
        document["next_signing_key"] = next_signing_key
    return document
