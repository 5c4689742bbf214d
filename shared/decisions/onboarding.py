"""Onboarding decisions for one member's own deployment, pure: what a request does, what a version means.

A deployment serves one member. Its operator's onboarding request sets that member up (keys in its
own vault, its own scale set at capacity 0) and asks the consortium to admit it; the membership
chain, not this deployment, decides when it is in. Inputs in (the member record as stored, the
request, what the chain says), a decision with an outcome and a one-line message out.

The rules the onboarding steps apply to the member record live here too: ``decide_resume`` (where a
failed or interrupted setup goes on) and ``decide_poison`` (whether a message the host gave up on
fails the member).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.decisions import chain


class Status(StrEnum):
    """The contract's statuses of a member, as its own deployment sees itself."""

    OUTSIDE = "outside"  # deployed, has not asked
    PENDING = "pending"  # asked; setting up or waiting for a version that admits it
    ACTIVE = "active"  # a verified version lists it and its scale set runs
    REJECTED = "rejected"  # its admission was refused by enough members
    LEFT = "left"  # a version records that it left
    REMOVED = "removed"  # a version records that the others removed it
    FAILED = "failed"  # a step failed for good (the reason is recorded); a replay resumes


#: Statuses after which the member may ask again under a new request id.
CLOSED = (Status.REJECTED, Status.LEFT, Status.REMOVED)


class Intake(StrEnum):
    CREATE = "create"  # a new request: set the member up and ask to be admitted
    RESUME = "resume"  # the same request again: repair whatever step was lost
    NOT_THIS_MEMBER = "not_this_member"  # the request names another member than this deployment's
    CONFLICT = "conflict"  # another request already holds this member
    NAME_MISMATCH = "name_mismatch"  # the verified chain lists this member under another legal name


@dataclass(frozen=True)
class IntakeDecision:
    outcome: Intake
    message: str


def decide_intake(
    record: dict[str, Any] | None,
    request_id: str,
    member_id: str,
    me: str,
    *,
    asked_name: str | None = None,
    listed_name: str | None = None,
) -> IntakeDecision:
    """What to do with a request. ``listed_name`` is the legal name the verified chain lists for this member
    (a founder, or a member already admitted), None when it lists none: a request must then ask under that
    name, which the member's Corda root and its nodes' identities carry."""
    if member_id != me:
        return IntakeDecision(
            Intake.NOT_THIS_MEMBER, f"member_id {member_id} is not this deployment's member ({me}): a deployment "
            "asks only for its own member",
        )  # fmt: skip
    if listed_name is not None and asked_name is not None and asked_name != listed_name:
        return IntakeDecision(
            Intake.NAME_MISMATCH, f"legal_name {asked_name!r} is not the one the verified chain lists for "
            f"{member_id} ({listed_name!r}): a member asks under the legal name the chain gives it",
        )  # fmt: skip
    if record is None:
        return IntakeDecision(Intake.CREATE, f"{member_id} asks to join")
    if record.get("request_id") == request_id:
        return IntakeDecision(Intake.RESUME, f"request {request_id} was already taken in; resuming where it stands")
    if record.get("status") in CLOSED:
        return IntakeDecision(Intake.CREATE, f"{member_id} asks again after being {record.get('status')}")
    return IntakeDecision(
        Intake.CONFLICT, f"{member_id} already has request {record.get('request_id')} ({record.get('status')})"
    )


class Membership(StrEnum):
    ACTIVATE = "activate"  # a version admits this member: bring its scale set up
    RETIRE = "retire"  # a version takes this member out: scale to zero, disable its keys
    NOTHING = "nothing"  # a version about this member that changes nothing here (a rotate)


@dataclass(frozen=True)
class MembershipDecision:
    action: Membership
    status: Status | None
    message: str


class Change(StrEnum):
    """What a verified version about a member did to it (the word ``on_membership`` hands on)."""

    GENESIS = "genesis"  # the genesis lists it: a founder
    ADMITTED = "admitted"
    LEFT = "left"
    REMOVED = "removed"
    ROTATED = "rotated"  # its governance key changed


#: The change a verified version of each kind makes to the member it is about.
CHANGE_OF_KIND: Mapping[chain.Kind, Change] = {
    chain.Kind.GENESIS: Change.GENESIS,
    chain.Kind.ADMIT: Change.ADMITTED,
    chain.Kind.LEAVE: Change.LEFT,
    chain.Kind.REMOVE: Change.REMOVED,
    chain.Kind.ROTATE: Change.ROTATED,
}


def status_of(record: Mapping[str, Any] | None) -> Status | None:
    """The status a member record shows (None for no record, or a status this code does not know)."""
    value = record.get("status") if record else None
    return Status(value) if isinstance(value, str) and value in set(Status) else None


def membership_due(
    record: Mapping[str, Any] | None, *, listed: bool, about_me: Sequence[tuple[int, chain.Kind]]
) -> tuple[Change, int] | None:
    """A verified version about this member whose effect its own record does not show yet, as
    ``(change, version)`` for ``decide_membership``; None when the record agrees with the chain.

    ``listed``: the verified head lists this member; ``about_me``: ``(version, kind)`` of every verified
    version about it, oldest first (version 0 as ``genesis`` when it is a founder). The step a version
    posts (``activate``, ``retire``) can be lost: the consortium timer hands it to its output binding,
    which the host sends only when the invocation returns, and a timer is never redelivered; a host
    killed in between, or between storing the version and posting the step, sends nothing. Both the
    chain and the record are stored, so together they say what is missing.
    """
    if record is None:
        return None
    status, steps = status_of(record), record.get("steps") or {}
    if listed:
        # active already, or not set up far enough to activate: its own steps carry it on from there
        if status is not Status.PENDING or "provision" not in steps:
            return None
        wanted = (chain.Kind.GENESIS, chain.Kind.ADMIT)
    else:
        if status is not Status.ACTIVE:
            return None
        wanted = (chain.Kind.LEAVE, chain.Kind.REMOVE)
    found = [(version, kind) for version, kind in about_me if kind in wanted]
    if not found:
        return None
    version, kind = found[-1]
    return CHANGE_OF_KIND[chain.Kind(kind)], version


def decide_membership(change: Change, version: int) -> MembershipDecision:
    """What a verified version about this member means for its own deployment."""
    if change in (Change.ADMITTED, Change.GENESIS):
        return MembershipDecision(Membership.ACTIVATE, Status.ACTIVE, f"admitted by version {version}")
    if change == Change.LEFT:
        return MembershipDecision(Membership.RETIRE, Status.LEFT, f"left in version {version}")
    if change == Change.REMOVED:
        return MembershipDecision(Membership.RETIRE, Status.REMOVED, f"removed by version {version}")
    return MembershipDecision(Membership.NOTHING, None, f"{change} in version {version}")


# --- resuming a setup ----------------------------------------------------------------------------

#: The setup steps a member's own deployment runs before the chain decides, in order.
SETUP = ("keys", "provision", "propose")


class Resume(StrEnum):
    """Where a replayed request or a late step copy takes a member's setup."""

    AT_STEP = "at_step"  # a setup step is not done: post it
    WAITING = "waiting"  # every setup step is done: propose again (if its proposal is gone), then wait
    GOES_ON = "goes_on"  # the step that came is the one to run: run it
    NOTHING = "nothing"  # the member is not being set up (active, closed): nothing to repair


@dataclass(frozen=True)
class ResumeDecision:
    action: Resume
    #: The step to post (``AT_STEP``, ``WAITING``), and whether a failed member is reopened first.
    step: str | None
    reopen: bool
    message: str


def next_setup_step(record: Mapping[str, Any]) -> str | None:
    """The first setup step the record does not show done."""
    steps = record.get("steps") or {}
    return next((s for s in SETUP if s not in steps), None)


def decide_resume(record: Mapping[str, Any], *, arrived: str | None = None) -> ResumeDecision:
    """What a request taken in again (``arrived`` None) or a step message (``arrived``) does to a setup.

    A failed member is reopened (pending again) and goes on where its record stands; a late copy of a
    setup step done already resumes it at the first step not done, since the message that failed it
    was poisoned and nothing else is queued (issue 19). A step message for a member not failed runs.
    """
    status = status_of(record)
    member = record.get("member_id")
    reopen = status is Status.FAILED
    if arrived is not None:
        if not reopen:
            return ResumeDecision(Resume.GOES_ON, arrived, False, f"step {arrived} runs")
        first = next_setup_step(record)
        if arrived in SETUP[:2] and first != arrived:
            step = first or "propose"
            return ResumeDecision(Resume.AT_STEP, step, True, f"{member} resumes at step {step}")
        return ResumeDecision(Resume.GOES_ON, arrived, True, f"resumed at step {arrived}")
    if not reopen and status is not Status.PENDING:
        return ResumeDecision(Resume.NOTHING, None, False, f"{member} is {record.get('status')}; nothing to do")
    first = next_setup_step(record)
    if first is not None:
        return ResumeDecision(Resume.AT_STEP, first, reopen, f"{member} resumes at step {first}")
    return ResumeDecision(Resume.WAITING, "propose", reopen, f"{member} waits for a version that admits it")


# --- poison ------------------------------------------------------------------------------------


class Poison(StrEnum):
    """What a message the host gave up on does to the member record."""

    FAILS = "fails"  # a step of the member's current setup: the member is failed with the reason
    NO_RECORD = "no_record"  # no member record to fail
    GOVERNANCE = "governance"  # a decision or an offboarding request: it fails no setup
    OTHER_REQUEST = "other_request"  # a message of another request than the member's current one
    MOVED_ON = "moved_on"  # the member is no longer being set up (active, closed)


@dataclass(frozen=True)
class PoisonDecision:
    reason: Poison
    message: str

    @property
    def fails(self) -> bool:
        return self.reason is Poison.FAILS


def decide_poison(record: Mapping[str, Any] | None, *, governance: bool, request_id: str | None) -> PoisonDecision:
    """Whether a poisoned message fails the member: only a setup message of its current request, and
    only while the member is pending or failed (checked again inside the write: issue 19)."""
    if record is None:
        return PoisonDecision(Poison.NO_RECORD, "no member record")
    if governance:
        return PoisonDecision(Poison.GOVERNANCE, "a governance message fails no setup")
    if request_id and record.get("request_id") != request_id:
        return PoisonDecision(Poison.OTHER_REQUEST, f"request {request_id} is not the member's current one")
    if status_of(record) not in (Status.PENDING, Status.FAILED):
        return PoisonDecision(Poison.MOVED_ON, f"{record.get('member_id')} is {record.get('status')}")
    return PoisonDecision(Poison.FAILS, "retries exhausted")


def change_about(member_id: str, version: chain.Trusted) -> Change | None:
    """What an adopted ``version`` did to ``member_id``: None when its change is about another member,
    is the genesis (a founder is set up by its own steps, not by the version), or moves the network's
    parameters (its ``member_id`` is the proposer, whose membership it leaves as it was)."""
    change = version.document.change
    if change.member_id != member_id or change.kind in (chain.Kind.GENESIS, chain.Kind.PARAMETERS):
        return None
    return CHANGE_OF_KIND[change.kind]
