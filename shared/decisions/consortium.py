"""What members publish to each other besides the chain, and when a proposed change may be chosen.

Each deployment publishes one signed document, its *head*, in its own ``consortium-public``
container: the version of the chain it has verified, its own proposals, its operator's decisions on
proposals, its pre-signatures (a newcomer's, a leaver's or a rotating member's signature over the
exact document that would carry its change), its part in agreeing on the next version
(``agreement.Record``) and its signature of the chosen document. Other members read it with a
conditional request (one request when nothing changed) and believe none of it until
``verify_head`` has checked its signature with the key the reader's own verified chain lists for
that member (or, for a newcomer, the key its own admission proposal carries: proof of possession).

``eligibility`` decides, for one proposal over one base version, whether it may be chosen now, with
a reason: a change applies to the base, it has not expired, a strict majority of the base's members
approved it (an ``admit`` or a ``remove``; a ``leave`` or a ``rotate`` needs no one's permission:
members sign those to order them), and every signer the change needs besides the majority has
pre-signed the document. Pure: inputs in, a decision with its reason out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from shared.decisions import agreement, chain
from shared.decisions.own_documents import verify_own
from shared.decisions.signed import DocumentError, Rule, Strict, majority, parse_instant
from shared.naming import MEMBER_ID

MAX_HEAD_BYTES = 256 * 1024
SIG_PATTERN = chain.B64U_PATTERN


class Proposal(Strict):
    """A change one member (or a newcomer) puts to the consortium."""

    proposal_id: str = Field(pattern=chain.PROPOSAL_ID_PATTERN)
    kind: Annotated[chain.Kind, Field(strict=False)]
    member_id: str = Field(pattern=MEMBER_ID.pattern)
    #: The member's entry for an admit (the newcomer's) or a rotate (the new one); null otherwise.
    entry: chain.Member | None = None
    proposer: str = Field(pattern=MEMBER_ID.pattern)
    proposed_at: str = Field(pattern=chain.TIMESTAMP_PATTERN)
    reason: str = Field(default="", max_length=500)

    @property
    def change(self) -> dict[str, str]:
        return {"kind": self.kind.value, "member_id": self.member_id, "proposal_id": self.proposal_id}

    def document(self, base: chain.Trusted) -> dict[str, Any]:
        """The unsigned version this proposal makes over ``base``: the same bytes for everyone."""
        entry = self.entry.model_dump(mode="json", exclude_none=True) if self.entry else None
        return chain.unsigned_next(base, self.change, issued_at=self.proposed_at, entry=entry)


class Presigned(Strict):
    """A subject's own signatures over the document of its change on one base version."""

    proposal_id: str = Field(pattern=chain.PROPOSAL_ID_PATTERN)
    base: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    signatures: tuple[chain.Signature, ...] = Field(max_length=2, strict=False)


class Final(Strict):
    """A member's one signature of the document chosen for ``version``."""

    version: int = Field(ge=1)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: chain.Signature


class Ballot(Strict):
    round: int = Field(ge=0)
    member_id: str = Field(pattern=MEMBER_ID.pattern)


class Value(Strict):
    proposal_id: str = Field(pattern=chain.PROPOSAL_ID_PATTERN)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    proposed_at: str = Field(pattern=chain.TIMESTAMP_PATTERN)


class Accepted(Strict):
    ballot: Ballot
    value: Value


class RecordModel(Strict):
    """``agreement.Record`` as published."""

    version: int = Field(ge=1)
    base: str = Field(pattern=r"^[0-9a-f]{64}$")
    promised: Ballot | None = None
    accepted: Accepted | None = None
    leading: Ballot | None = None
    phase: Annotated[agreement.Phase, Field(strict=False)] | None = None
    proposal: Value | None = None


class ChainHead(Strict):
    version: int = Field(ge=0)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")


class Head(Strict):
    member_id: str = Field(pattern=MEMBER_ID.pattern)
    kid: str = Field(pattern=chain.KID_PATTERN)
    seq: int = Field(ge=0)
    updated_at: str = Field(pattern=chain.TIMESTAMP_PATTERN)
    chain: ChainHead | None = None
    proposals: tuple[Proposal, ...] = Field(default=(), max_length=20, strict=False)
    approvals: dict[str, Literal["approve", "reject"]] = Field(default_factory=dict, max_length=200)
    presigned: tuple[Presigned, ...] = Field(default=(), max_length=20, strict=False)
    record: RecordModel | None = None
    final: Final | None = None
    sig: str = Field(pattern=SIG_PATTERN, min_length=86, max_length=86)


class HeadError(DocumentError):
    """A head that is not what its member published; ``rule`` is the rule, the message names it."""

    def __init__(self, rule: Rule, member_id: str, detail: str):
        self.rule, self.member_id, self.detail = rule, member_id, detail
        super().__init__(
            f"head of {member_id} names {detail}" if rule == Rule.MEMBER else f"head of {member_id}: {detail}"
        )


def head_signing_bytes(head: Mapping[str, Any]) -> bytes:
    return chain.own_signing_bytes(head)


def parse_head(raw: bytes) -> dict[str, Any]:
    """A head as read: canonical JSON of at most ``MAX_HEAD_BYTES`` (``chain.ChainError`` otherwise)."""
    return chain.parse_published(raw, limit=MAX_HEAD_BYTES)


def verify_head(raw: Mapping[str, Any], *, member_id: str, keys: list[chain.KeyRef]) -> Head:
    """The head of ``member_id`` if it parses and is signed by one of ``keys`` (its listed key(s))."""

    def refuse(rule: Rule, detail: str) -> HeadError:
        return HeadError(rule, member_id, detail)

    return verify_own(raw, Head, member_id=member_id, keys=keys, refuse=refuse)


def record_of(member_id: str, model: RecordModel) -> agreement.Record:
    def ballot(b: Ballot | None) -> agreement.Ballot | None:
        return (b.round, b.member_id) if b else None

    def value(v: Value | None) -> agreement.Value | None:
        return agreement.Value(v.proposal_id, v.hash, v.proposed_at) if v else None

    accepted = None
    if model.accepted is not None:
        accepted_ballot = ballot(model.accepted.ballot)
        accepted_value = value(model.accepted.value)
        if accepted_ballot is not None and accepted_value is not None:
            accepted = (accepted_ballot, accepted_value)
    return agreement.Record(
        member_id, model.version, model.base, ballot(model.promised), accepted, ballot(model.leading),
        model.phase, value(model.proposal),
    )  # fmt: skip


def record_json(record: agreement.Record) -> dict[str, Any]:
    """``agreement.Record`` as a head carries it (its clock and signed hash stay private)."""

    def ballot(b: agreement.Ballot | None) -> dict[str, Any] | None:
        return {"round": b[0], "member_id": b[1]} if b else None

    def value(v: agreement.Value | None) -> dict[str, Any] | None:
        return {"proposal_id": v.proposal_id, "hash": v.hash, "proposed_at": v.proposed_at} if v else None

    return {
        "version": record.version,
        "base": record.base,
        "promised": ballot(record.promised),
        "accepted": {"ballot": ballot(record.accepted[0]), "value": value(record.accepted[1])}
        if record.accepted
        else None,
        "leading": ballot(record.leading),
        "phase": record.phase.value if record.phase else None,
        "proposal": value(record.proposal),
    }


# --- eligibility -------------------------------------------------------------------------------


class Standing(StrEnum):
    ELIGIBLE = "eligible"  # may be chosen for the next version now
    AWAITING_APPROVALS = "awaiting_approvals"  # not yet approved by a strict majority of the base's members
    AWAITING_SIGNATURE = "awaiting_signature"  # the subject has not pre-signed the document over this base
    REJECTED = "rejected"  # enough members refused that a majority can no longer approve
    EXPIRED = "expired"  # older than the proposal lifetime
    DOES_NOT_APPLY = "does_not_apply"  # the change cannot apply to the base (already in, already gone, ...)
    DONE = "done"  # a version of the chain carries it


@dataclass(frozen=True)
class Eligibility:
    standing: Standing
    message: str
    approvals: tuple[str, ...] = ()
    rejections: tuple[str, ...] = ()
    #: The unsigned document the change makes over the base, and its hash (when it applies).
    document: dict[str, Any] | None = None
    hash: str = ""


def eligibility(
    proposal: Proposal,
    base: chain.Trusted,
    *,
    decisions: Mapping[str, str],
    presigned: Presigned | None,
    done: bool,
    now: datetime,
    lifetime: timedelta,
) -> Eligibility:
    """Whether ``proposal`` may be chosen as the version after ``base``, and why not.

    ``decisions`` are the base members' published decisions on it (``approve`` / ``reject``);
    ``presigned`` is the subject's own pre-signature over a base, if it published one.
    """
    members = base.document.member_ids
    threshold = majority(members)
    automatic = proposal.kind in (chain.Kind.LEAVE, chain.Kind.ROTATE)
    voters = [m for m in members if not (proposal.kind == chain.Kind.REMOVE and m == proposal.member_id)]
    approvals = tuple(sorted(m for m in voters if automatic or decisions.get(m) == "approve"))
    rejections = tuple(sorted(m for m in voters if not automatic and decisions.get(m) == "reject"))
    if done:
        return Eligibility(Standing.DONE, f"{proposal.proposal_id} is in the chain", approvals, rejections)
    if now - parse_instant(proposal.proposed_at) > lifetime:
        return Eligibility(Standing.EXPIRED, f"{proposal.proposal_id} expired (proposed {proposal.proposed_at})")
    document = proposal.document(base)
    try:
        candidate = chain.parse(document)
        chain.expected_members(base.document, candidate)
    except chain.ChainError as error:
        return Eligibility(Standing.DOES_NOT_APPLY, str(error), approvals, rejections)
    digest = chain.document_hash(document)
    if len(voters) - len(rejections) < threshold:
        return Eligibility(Standing.REJECTED, f"refused by {', '.join(rejections)}", approvals, rejections)
    if len(approvals) < threshold:
        return Eligibility(
            Standing.AWAITING_APPROVALS, f"approved by {len(approvals)} of the {threshold} needed",
            approvals, rejections, document, digest,
        )  # fmt: skip
    if proposal.kind != chain.Kind.REMOVE:
        signers = chain.electorate(base.document, candidate)
        required = {k for k, s in signers.items() if s.required}
        given = presigned.signatures if presigned and presigned.base == base.hash and presigned.hash == digest else ()
        result = chain.signature_result(
            base.document, candidate.model_copy(update={"signatures": given}), bytes.fromhex(digest)
        )
        if required - result.valid or result.invalid:
            return Eligibility(
                Standing.AWAITING_SIGNATURE, f"{proposal.member_id} has not signed the document over version "
                f"{base.version}", approvals, rejections, document, digest,
            )  # fmt: skip
    return Eligibility(Standing.ELIGIBLE, "approved and signed", approvals, rejections, document, digest)


def presigners(proposal: Proposal, base: chain.Trusted) -> list[tuple[str, str]]:
    """The (member_id, kid) pairs the subject signs with before its change can be chosen."""
    if proposal.kind == chain.Kind.REMOVE:
        return []
    candidate = chain.parse(proposal.document(base))
    return sorted(k for k, s in chain.electorate(base.document, candidate).items() if s.required)
