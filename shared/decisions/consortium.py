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

Beside it, the smaller rules the consortium service applies every tick, each a pure function
returning a decision with a reason: ``counts_from`` (which head a proposal counts from),
``presignature`` (where a subject's pre-signature is read) and ``in_flight`` (whether a change on the
next version is under way).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, model_validator

from shared.decisions import agreement, chain
from shared.decisions.own_documents import verify_own
from shared.decisions.signed import DocumentError, Rule, Strict, majority, parse_instant
from shared.naming import MEMBER_ID

MAX_HEAD_BYTES = 256 * 1024
SIG_PATTERN = chain.B64U_PATTERN


class Vote(StrEnum):
    """A member's operator's decision on a proposal, as its head publishes it."""

    APPROVE = "approve"
    REJECT = "reject"


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

    @model_validator(mode="after")
    def _a_membership_change(self) -> Proposal:
        # A parameters change needs the new network with it, which this proposal has no field for: this
        # control plane cannot yet propose or vote on one (a version of that kind verifies and is adopted).
        if self.kind == chain.Kind.PARAMETERS:
            raise ValueError("a parameters change is not proposed this way yet")
        return self

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
    approvals: dict[str, Annotated[Vote, Field(strict=False)]] = Field(default_factory=dict, max_length=200)
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


#: How ``status`` and the CLI show a proposal's standing: ``open`` while it is still going somewhere.
SHOWN = {
    Standing.DONE: "done",
    Standing.REJECTED: "rejected",
    Standing.EXPIRED: "expired",
    Standing.DOES_NOT_APPLY: "closed",
}


def shown(eligibility: Eligibility | None) -> str:
    """A proposal's status as shown (``open``, ``done``, ``rejected``, ``expired`` or ``closed``)."""
    return SHOWN.get(eligibility.standing, "open") if eligibility is not None else "open"


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
    approvals = tuple(sorted(m for m in voters if automatic or decisions.get(m) == Vote.APPROVE))
    rejections = tuple(sorted(m for m in voters if not automatic and decisions.get(m) == Vote.REJECT))
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


# --- which head a proposal counts from ---------------------------------------------------------


class Source(StrEnum):
    """Why a proposal read in a member's head counts, or does not."""

    OWN_CHANGE = "own_change"  # an admit, a leave or a rotate, published by the member it is about
    REMOVAL = "removal"  # a remove, published by its proposer, who is not the member removed
    NOT_PROPOSER = "not_proposer"  # published in the head of another member than its proposer
    ON_BEHALF = "on_behalf"  # an admit, a leave or a rotate proposed by another member than its subject
    SELF_REMOVAL = "self_removal"  # a remove of its own proposer: a member leaves, it is not removed


@dataclass(frozen=True)
class Counted:
    counts: bool
    reason: Source
    message: str


def counts_from(proposal: Proposal, publisher: str) -> Counted:
    """Whether ``proposal``, read in the head of ``publisher``, is a proposal at all.

    A proposal counts only from the head of the member who made it; an admit, a leave or a rotate only
    from the member it is about (no one asks on another's behalf), a remove never from the member removed.
    """
    pid = proposal.proposal_id
    if publisher != proposal.proposer:
        return Counted(False, Source.NOT_PROPOSER, f"{pid} is {proposal.proposer}'s, published by {publisher}")
    if proposal.kind == chain.Kind.REMOVE:
        if proposal.member_id == proposal.proposer:
            return Counted(False, Source.SELF_REMOVAL, f"{pid}: {publisher} cannot remove itself")
        return Counted(True, Source.REMOVAL, f"{pid}: {publisher} proposes to remove {proposal.member_id}")
    if proposal.member_id != proposal.proposer:
        return Counted(False, Source.ON_BEHALF, f"{pid}: {publisher} cannot {proposal.kind.value} for another")
    return Counted(True, Source.OWN_CHANGE, f"{pid}: {publisher}'s own {proposal.kind.value}")


# --- where a subject's pre-signature is read ----------------------------------------------------


class Presign(StrEnum):
    """Where the pre-signature of a proposal's subject was found, or why none is used."""

    OWN = "own"  # this member is the subject: its own stored pre-signature
    PUBLISHED = "published"  # the subject's verified head publishes one
    NO_HEAD = "no_head"  # the subject's head is not read (yet): nothing to use
    NONE = "none"  # the subject has pre-signed nothing for this proposal
    OTHER_DOCUMENT = "other_document"  # it pre-signed another document than the one asked for


@dataclass(frozen=True)
class Presignature:
    presigned: Presigned | None
    reason: Presign

    @property
    def signatures(self) -> tuple[chain.Signature, ...]:
        return self.presigned.signatures if self.presigned is not None else ()


def presignature(
    proposal: Proposal,
    *,
    me: str,
    own: Sequence[Presigned],
    published: Mapping[str, Sequence[Presigned]],
    digest: str | None = None,
) -> Presignature:
    """The subject's pre-signature of ``proposal``: this member's own (``own``) when it is the subject,
    else the one the subject's verified head publishes (``published``, by member); with ``digest``,
    only one over that document."""
    if proposal.member_id == me:
        candidates, where = own, Presign.OWN
    elif proposal.member_id in published:
        candidates, where = published[proposal.member_id], Presign.PUBLISHED
    else:
        return Presignature(None, Presign.NO_HEAD)
    found = next((p for p in candidates if p.proposal_id == proposal.proposal_id), None)
    if found is None:
        return Presignature(None, Presign.NONE)
    if digest is not None and found.hash != digest:
        return Presignature(None, Presign.OTHER_DOCUMENT)
    return Presignature(found, where)


# --- whether a change is under way --------------------------------------------------------------


class Flight(StrEnum):
    """Why a change on the version after a base is under way, or not."""

    OPEN_PROPOSAL = "open_proposal"  # a proposal is eligible, or gathering approvals or its signature
    BALLOT = "ballot"  # a member accepted or leads a ballot on the next version over this base
    FINAL_SIGNATURE = "final_signature"  # a member signed a final document of the next version
    IDLE = "idle"  # nothing on the next version


#: Standings of a proposal that is still going somewhere (not rejected, expired, inapplicable or done).
OPEN = frozenset({Standing.ELIGIBLE, Standing.AWAITING_APPROVALS, Standing.AWAITING_SIGNATURE})


@dataclass(frozen=True)
class Says:
    """What one member's head says about agreeing on the next version: its record, its final signature."""

    record: RecordModel | None = None
    final: Final | None = None


@dataclass(frozen=True)
class InFlight:
    in_flight: bool
    reason: Flight


def in_flight(version: int, base: str, says: Iterable[Says], standings: Iterable[Standing] = ()) -> InFlight:
    """Whether a change on ``version`` (the one after the base whose hash is ``base``) is under way: an
    open proposal (the decisions that complete it come while the others are moving), or a member's
    ballot or final signature on it."""
    if any(s in OPEN for s in standings):
        return InFlight(True, Flight.OPEN_PROPOSAL)
    for said in says:
        if said.final is not None and said.final.version == version:
            return InFlight(True, Flight.FINAL_SIGNATURE)
        r = said.record
        if r is not None and r.version == version and r.base == base and (r.accepted or r.leading):
            return InFlight(True, Flight.BALLOT)
    return InFlight(False, Flight.IDLE)
