"""Onboarding decisions for one member's own deployment, pure: what a request does, what a version means.

A deployment serves one member. Its operator's onboarding request sets that member up (keys in its
own vault, its own scale set at capacity 0) and asks the consortium to admit it; the membership
chain, not this deployment, decides when it is in. Inputs in (the member record as stored, the
request, what the chain says), a decision with an outcome and a one-line message out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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


@dataclass(frozen=True)
class IntakeDecision:
    outcome: Intake
    message: str


def decide_intake(record: dict[str, Any] | None, request_id: str, member_id: str, me: str) -> IntakeDecision:
    if member_id != me:
        return IntakeDecision(
            Intake.NOT_THIS_MEMBER, f"member_id {member_id} is not this deployment's member ({me}): a deployment "
            "asks only for its own member",
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


#: The change ``decide_membership`` names for each kind of verified version about a member.
CHANGE_OF_KIND = {"genesis": "genesis", "admit": "admitted", "leave": "left", "remove": "removed"}


def membership_due(
    record: Mapping[str, Any] | None, *, listed: bool, about_me: Sequence[tuple[int, str]]
) -> tuple[str, int] | None:
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
    status, steps = record.get("status"), record.get("steps") or {}
    if listed:
        # active already, or not set up far enough to activate: its own steps carry it on from there
        if status != Status.PENDING.value or "provision" not in steps:
            return None
        wanted = ("genesis", "admit")
    else:
        if status != Status.ACTIVE.value:
            return None
        wanted = ("leave", "remove")
    found = [(version, kind) for version, kind in about_me if kind in wanted]
    if not found:
        return None
    version, kind = found[-1]
    return CHANGE_OF_KIND[kind], version


def decide_membership(change: str, version: int) -> MembershipDecision:
    """What a verified version about this member means for its own deployment."""
    if change in ("admitted", "genesis"):
        return MembershipDecision(Membership.ACTIVATE, Status.ACTIVE, f"admitted by version {version}")
    if change == "left":
        return MembershipDecision(Membership.RETIRE, Status.LEFT, f"left in version {version}")
    if change == "removed":
        return MembershipDecision(Membership.RETIRE, Status.REMOVED, f"removed by version {version}")
    return MembershipDecision(Membership.NOTHING, None, f"{change} in version {version}")
