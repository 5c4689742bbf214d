"""Agreeing on the next version of the membership chain: single-decree Paxos per version, pure.

Why Paxos: the contract asks at once for (1) no two valid documents of one version while members are
honest, (2) progress when changes race, and (3) a chain anyone can verify from signatures alone.
"Each member signs at most one document per version" gives (1) and (3) but can stall: if the
members split their one signature between two candidates and neither reaches a majority, no
candidate ever can. So the members first *choose* the value of version N+1 by single-decree Paxos
(Lamport, "Paxos Made Simple"), where an acceptor may change what it accepted in a higher ballot,
and only sign the final document once a value is chosen. Only one value can be chosen per version,
so an honest member signs one document per version and the chain stays verifiable from the final
signatures alone. Each member writes only its own published record and reads the others' (the
setting of Disk Paxos, Gafni and Lamport 2000).

The roles, all played by every member of the base version N (the *electorate*):
- **acceptor**: its record holds the highest ballot it promised and the ballot and value it last
  accepted, for version N+1 over base N;
- **leader**: a member with an eligible change (or one already accepted somewhere) runs a ballot
  ``(round, member_id)``: phase 1 ("prepare") collects promises from a majority and must propose the
  value of the highest accepted ballot among them, else its own oldest eligible change; phase 2
  ("accept") asks the acceptors to accept it. Ballot ``(0, leader_of(N+1))`` skips phase 1: no ballot
  is lower, so any value is safe there. A leader that makes no progress for a timeout (with jitter,
  an input) starts a higher round;
- **signer**: once a majority of the electorate has accepted one ballot, its value is *chosen*; each
  member then signs that value's document (recorded in its own storage before the signature is
  published) and never any other document of that version.

What this module does: ``step`` takes one member's own record, the records it has read from the
others (already verified as theirs), the values it holds eligible and ``now``; it returns the
member's next record and why. Nothing here does I/O, reads the clock or draws random numbers; the
model in ``tests/unit/test_agreement_model.py`` checks it under crashes, lost and repeated reads and
adversarial interleavings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from shared.decisions.signed import majority

#: ``(round, member_id)``, ordered by round then member id.
Ballot = tuple[int, str]


class Phase(StrEnum):
    PREPARE = "prepare"  # phase 1: asking for promises
    ACCEPT = "accept"  # phase 2: asking to accept a value


class Reason(StrEnum):
    IDLE = "idle"  # nothing to agree on for the next version
    PROMISED = "promised"  # promised a higher ballot than before
    ACCEPTED = "accepted"  # accepted a leader's value
    SIGNED = "signed"  # signed the chosen value's document
    LEADING = "leading"  # started a ballot
    PROPOSING = "proposing"  # a majority promised: asked to accept a value
    WAITING = "waiting"  # a ballot is under way; nothing to do until it moves or times out
    NEW_BASE = "new_base"  # the base version moved: the record starts over for the version after it
    OUTSIDE = "not a member"  # not in the base version's electorate: no step is taken (the caller's check)


@dataclass(frozen=True)
class Value:
    """A candidate for the next version: a proposal's document over one base, named by its hash."""

    proposal_id: str
    #: The hash the final document will have (``chain.document_hash`` of the unsigned document).
    hash: str
    #: When the proposal was first made (an ISO 8601 instant): the oldest eligible change goes first.
    proposed_at: str = ""


@dataclass(frozen=True)
class Record:
    """One member's published part in agreeing on version ``version`` over base ``base``.

    It is the member's acceptor state, its ballot if it leads one, and its signature once a value
    is chosen. ``signed`` is written to the member's own storage before it is published anywhere.
    """

    member_id: str
    version: int
    base: str
    promised: Ballot | None = None
    accepted: tuple[Ballot, Value] | None = None
    leading: Ballot | None = None
    phase: Phase | None = None
    proposal: Value | None = None
    #: When this member last saw the agreement move (its ballot started, or a ballot it follows moved).
    moved_at: float = 0.0
    #: The hash of the one document this member signed for ``version``, if any.
    signed: str | None = None
    #: Whether this member has had something to agree on for ``version`` (a value it holds eligible,
    #: or one accepted anywhere): the stall clock (``moved_at``) starts then, not when the record was
    #: made, so a change that becomes eligible after a quiet spell leaves ballot 0 to its leader.
    engaged: bool = False


@dataclass(frozen=True)
class Timing:
    """How long a leader waits for a ballot to move before it starts a higher one."""

    timeout: float = 3.0
    #: A member's own extra wait, in [0, jitter): drawn by the caller, so duelling leaders part.
    jitter: float = 0.0


def leader_of(version: int, electorate: Sequence[str]) -> str:
    """The member whose ballot ``(0, it)`` opens ``version`` without a phase 1: turn by turn."""
    ordered = sorted(electorate)
    return ordered[version % len(ordered)]


def fresh(member_id: str, version: int, base: str) -> Record:
    return Record(member_id, version, base)


def chosen(records: Iterable[Record], electorate: Sequence[str], version: int, base: str) -> Value | None:
    """The value a majority of the electorate accepted in one ballot, if there is one."""
    by_ballot: dict[Ballot, tuple[Value, set[str]]] = {}
    members = set(electorate)
    for r in records:
        if r.member_id not in members or r.version != version or r.base != base or r.accepted is None:
            continue
        ballot, value = r.accepted
        entry = by_ballot.setdefault(ballot, (value, set()))
        if entry[0] == value:
            entry[1].add(r.member_id)
    for value, accepters in by_ballot.values():
        if len(accepters) >= majority(electorate):
            return value
    return None


def _oldest(values: Iterable[Value]) -> Value | None:
    return min(values, key=lambda v: (v.proposed_at, v.proposal_id, v.hash), default=None)


@dataclass(frozen=True)
class Step:
    record: Record
    reason: Reason
    #: The value chosen for the version, once this member has seen a majority accept it.
    chosen: Value | None = None


def step(
    mine: Record,
    others: Mapping[str, Record],
    *,
    electorate: Sequence[str],
    version: int,
    base: str,
    eligible: Iterable[Value],
    now: float,
    timing: Timing = Timing(),
) -> Step:
    """One member's next record for agreeing on ``version`` over ``base``.

    ``others`` are the latest records read from the other members (possibly stale: a lost or late
    read only delays). ``eligible`` are the values this member holds eligible for this version
    (approved by a majority of the base version's members, pre-signed by whoever must sign them).
    The order inside a step: the leader moves its ballot, then the acceptor answers every ballot it
    sees (its own included, never going below a promise), then the signer signs a chosen value.
    """
    me = mine.member_id
    if (mine.version, mine.base) != (version, base):
        if mine.version > version:  # a record about a later version than this base: never go back
            return Step(mine, Reason.IDLE)
        return Step(replace(fresh(me, version, base), moved_at=now), Reason.NEW_BASE)
    if me not in electorate:
        return Step(mine, Reason.IDLE)
    peers = [r for m, r in others.items() if m != me and m in electorate and (r.version, r.base) == (version, base)]
    record, reason = _lead(mine, peers, electorate, list(eligible), now, timing)
    record, answered = _accept(record, peers, now)
    if answered and reason in (Reason.IDLE, Reason.WAITING):
        reason = answered
    value = chosen([*peers, record], electorate, version, base)
    if value is not None and record.signed is None:
        return Step(replace(record, signed=value.hash, moved_at=now), Reason.SIGNED, value)
    return Step(record, reason, value)


def _ballots(record: Record) -> list[Ballot]:
    return [b for b in (record.promised, record.leading, record.accepted[0] if record.accepted else None) if b]


def _lead(
    record: Record, peers: list[Record], electorate: Sequence[str], candidates: list[Value], now: float, timing: Timing
) -> tuple[Record, Reason]:
    """The leader's move: open, finish phase 1, or start a higher round after a stall."""
    me = record.member_id
    everyone = [*peers, record]
    if chosen(everyone, electorate, record.version, record.base) is not None:
        return record, Reason.IDLE
    seen_accepted = [r.accepted for r in everyone if r.accepted is not None]
    if not candidates and not seen_accepted:
        return record, Reason.IDLE
    if not record.engaged:  # something to agree on, for the first time: no ballot has stalled yet
        record = replace(record, engaged=True, moved_at=now)
    if record.leading is not None and record.phase == Phase.PREPARE:
        promises = [r for r in everyone if r.promised == record.leading]
        if len(promises) >= majority(electorate):
            accepted = [r.accepted for r in promises if r.accepted is not None]
            # Paxos: the value of the highest ballot any of the majority accepted, else our own.
            proposal = max(accepted, key=lambda a: a[0])[1] if accepted else _oldest(candidates)
            if proposal is not None:
                return replace(record, phase=Phase.ACCEPT, proposal=proposal, moved_at=now), Reason.PROPOSING
    highest = max((b for r in everyone for b in _ballots(r)), default=None)
    if highest is None and record.leading is None and candidates and leader_of(record.version, electorate) == me:
        # Ballot (0, leader) is the lowest any member ever uses: every value is safe in it, no phase 1.
        ballot: Ballot = (0, me)
        return replace(record, leading=ballot, phase=Phase.ACCEPT, proposal=_oldest(candidates), moved_at=now), (
            Reason.LEADING
        )
    if now - record.moved_at >= timing.timeout + timing.jitter:
        ballot = ((highest[0] if highest else 0) + 1, me)
        return replace(record, leading=ballot, phase=Phase.PREPARE, proposal=None, moved_at=now), Reason.LEADING
    return record, Reason.WAITING


def _accept(record: Record, peers: list[Record], now: float) -> tuple[Record, Reason | None]:
    """The acceptor's answers: promise a higher prepare, accept a value at or above the promise."""
    reason: Reason | None = None
    for leader in sorted([*peers, record], key=lambda r: r.leading or (-1, "")):
        ballot = leader.leading
        if ballot is None or leader.phase is None:
            continue
        if record.promised is not None and ballot < record.promised:
            continue
        if leader.phase == Phase.PREPARE and (record.promised is None or ballot > record.promised):
            record = replace(record, promised=ballot, moved_at=now)
            reason = Reason.PROMISED
        elif leader.phase == Phase.ACCEPT and leader.proposal and record.accepted != (ballot, leader.proposal):
            record = replace(record, promised=ballot, accepted=(ballot, leader.proposal), moved_at=now)
            reason = Reason.ACCEPTED
    return record, reason


def digest_ballot(member_id: str, round_: int) -> float:
    """A member's own jitter fraction in [0, 1) for a round, from its id: callers may use it or draw."""
    return int.from_bytes(hashlib.sha256(f"{member_id}/{round_}".encode()).digest()[:4], "big") / 2**32
