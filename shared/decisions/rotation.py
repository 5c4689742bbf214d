"""The key rotation plan, pure: one key's state, its kind's policy and ``now`` in; the next action out.

A deployment rotates only its own member's keys, in its own vault. A rotation is keyed by the key
and its *period*, the version it replaces (``{key}@{from_version}``), and moves through stages
stored on the key's entry in the member's record, so a tick or a message that comes again finds the
rotation where the last one left it and does the next step, never a second rotation:

    started    the intent is recorded; the new version is being created in the member's vault
               (tagged with the rotation id, so a crash before it was recorded finds it again)
    announced  the new version is current on the record and the old one is kept as ``previous``;
               what the others need must be published: for TLS and node identity keys the member's
               signed keys document with old and new; for the governance key a ``rotate`` proposal,
               which is *published* only once a verified version of the chain lists the new kid
    published  old and new are published: the overlap runs until ``retire_after`` (counted from
               then, so a governance key's overlap starts when the chain lists its successor)
    retiring   ``previous`` is off the record; the keys document must drop it, then the old version
               is disabled (never deleted); then the rotation is done and goes to the key's history

The plan never retires what is not published: an old governance version stays enabled until a
verified version lists the new kid, because until then the member signs with the old one.

A key is *due* ``rotate_after`` after its current version was created; ``warn_before`` earlier it is
*expiring* and ``key.expiring`` is announced once for that version. ``force`` starts a rotation that
is not due yet, once per request id. A kind whose policy is off (node identity, by default: Corda
cannot rotate a node's legal identity key without R3's tool) is never rotated, forced or not.

Around the plan, the rules the rotator applies, pure as well: whose keys rotate (``rotates``), that a
member outside the chain starts no governance rotation (``outside_chain``), what counts as published
(``is_published``) and what a rotation under way does once its publication is known (``move_on``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import TypeAdapter, ValidationError


class Stage(StrEnum):
    STARTED = "started"
    ANNOUNCED = "announced"
    PUBLISHED = "published"
    RETIRING = "retiring"


class Action(StrEnum):
    NONE = "none"  # nothing to do: not due, or policy off
    WARN = "warn"  # announce key.expiring for this version
    START = "start"  # create the new version (or find the one a stopped rotation created) and announce it
    PUBLISH = "publish"  # publish old and new (keys document, or the governance key's rotate proposal)
    WAIT = "wait"  # in the overlap (or not published yet): the old version stays enabled
    RETIRE = "retire"  # the overlap is over: take the old version off the record
    FINISH = "finish"  # the keys document must drop the old version; then disable it and close the rotation


class Why(StrEnum):
    """Why a key's plan or its next move is what it is (stored and shown with the plan's message)."""

    OFF = "off"  # rotation is off for this kind of key
    DONE = "done"  # already rotated for this request
    FORCED = "forced"  # rotated on request before its time
    DUE = "due"  # its age made it due
    EXPIRING = "expiring"  # due within the warning period: key.expiring is announced
    NOT_DUE = "not_due"  # nothing to do yet
    NOT_IN_CHAIN = "not_in_chain"  # a member outside the verified chain starts no governance rotation
    RESUME = "resume"  # a stopped rotation resumes: its new version was not recorded yet
    ANNOUNCE = "announce"  # the new version is to be published (keys document, or a rotate proposal)
    PUBLISHED = "published"  # old and new are published
    UNPUBLISHED = "unpublished"  # the new version is not published yet: the old one stays
    OVERLAP = "overlap"  # in the overlap: the old version stays enabled
    OVERLAP_OVER = "overlap_over"  # the overlap is over: the old version retires
    RETIRING = "retiring"  # the old version leaves publication and is disabled
    NOT_UNDER_WAY = "not_under_way"  # no rotation is announced or retiring
    AWAITING_VERSION = "awaiting_version"  # a new governance key waits for a version that lists it
    OLD_KID_LISTED = "old_kid_listed"  # the chain still lists the old governance kid: never disabled
    MEMBER_BUSY = "member_busy"  # another step holds the member's lease: nothing was done this run


@dataclass(frozen=True)
class KeyPolicy:
    """How one kind of key rotates. ``enabled=False`` means never, whatever is asked."""

    kind: str
    enabled: bool
    rotate_after: timedelta
    overlap: timedelta
    warn_before: timedelta
    #: Why a disabled kind is off, said wherever the plan is shown.
    off_reason: str = "rotation is off for this kind of key"

    def __post_init__(self) -> None:
        if self.rotate_after <= timedelta(0):
            raise ValueError(f"{self.kind}: rotate must be a positive duration")
        if self.overlap < timedelta(0) or self.overlap >= self.rotate_after:
            raise ValueError(f"{self.kind}: overlap must be at least 0 and shorter than rotate")
        if self.warn_before < timedelta(0) or self.warn_before >= self.rotate_after:
            raise ValueError(f"{self.kind}: warn must be at least 0 and shorter than rotate")


@dataclass(frozen=True)
class Rotation:
    """A rotation under way, as stored on the key's entry."""

    id: str
    stage: Stage
    from_version: str
    request_id: str | None = None
    retire_after: datetime | None = None


@dataclass(frozen=True)
class KeyView:
    """What the plan needs to know about one key."""

    name: str
    kind: str
    version: str
    created_at: datetime
    rotation: Rotation | None = None
    #: What the rotation's stage needs is published: for TLS and identity keys the member's keys
    #: document shows old and new (announced) or the new alone (retiring); for the governance key a
    #: verified version of the chain lists the new kid.
    published: bool = False
    #: The version ``key.expiring`` was last announced for.
    warned_version: str | None = None
    #: The request id of the last rotation of this key (under way or done), to run a request once.
    last_request_id: str | None = None


@dataclass(frozen=True)
class Plan:
    action: Action
    reason: Why
    message: str
    due_at: datetime | None = None


def rotation_id(name: str, from_version: str) -> str:
    """The key and the period: the version a rotation replaces."""
    return f"{name}@{from_version}"


def plan(key: KeyView, policy: KeyPolicy, now: datetime, *, force: bool = False, request_id: str | None = None) -> Plan:
    due_at = key.created_at + policy.rotate_after
    if key.rotation is not None:
        return _resume(key, key.rotation, now)
    if not policy.enabled:
        return Plan(Action.NONE, Why.OFF, f"{key.name}: {policy.off_reason}")
    if force:
        if request_id is not None and request_id == key.last_request_id:
            return Plan(Action.NONE, Why.DONE, f"{key.name} was already rotated for request {request_id}", due_at)
        return Plan(Action.START, Why.FORCED, f"{key.name} v{_short(key.version)} rotated on request", due_at)
    if now >= due_at:
        return Plan(Action.START, Why.DUE, f"{key.name} v{_short(key.version)} is due since {_iso(due_at)}", due_at)
    if now >= due_at - policy.warn_before and key.warned_version != key.version:
        return Plan(Action.WARN, Why.EXPIRING, f"{key.name} v{_short(key.version)} is due at {_iso(due_at)}", due_at)
    return Plan(Action.NONE, Why.NOT_DUE, f"{key.name} is due at {_iso(due_at)}", due_at)


def _resume(key: KeyView, rotation: Rotation, now: datetime) -> Plan:
    if rotation.stage is Stage.STARTED:
        return Plan(Action.START, Why.RESUME, f"{rotation.id}: resuming, its new version was not recorded yet")
    if rotation.stage is Stage.ANNOUNCED:
        if key.published:
            return Plan(Action.PUBLISH, Why.PUBLISHED, f"{rotation.id}: old and new are published")
        where = "a verified version must list the new kid" if key.kind == "governance" else "publish old and new"
        return Plan(Action.PUBLISH, Why.ANNOUNCE, f"{rotation.id}: {where}")
    if rotation.stage is Stage.PUBLISHED:
        if not key.published:
            return Plan(Action.WAIT, Why.UNPUBLISHED, f"{rotation.id}: the new version is not published; the old stays")
        if rotation.retire_after is not None and now < rotation.retire_after:
            return Plan(
                Action.WAIT, Why.OVERLAP, f"{rotation.id}: old version retires at {_iso(rotation.retire_after)}"
            )
        return Plan(Action.RETIRE, Why.OVERLAP_OVER, f"{rotation.id}: the overlap is over, the old version retires")
    return Plan(Action.FINISH, Why.RETIRING, f"{rotation.id}: the old version leaves publication and is disabled")


# ------------------------------------------------------------------------------- around the plan


def rotates(status: str | None, offboarding: bool) -> bool:
    """Only an active member's keys rotate; a member on its way out (offboarding) rotates none."""
    return status == "active" and not offboarding


def outside_chain(decided: Plan, key: KeyView, member_id: str, *, in_chain: bool) -> Plan:
    """A new governance key goes through a rotate version of the chain: a member outside it starts none."""
    if key.kind == "governance" and decided.action is Action.START and not in_chain:
        return Plan(Action.NONE, Why.NOT_IN_CHAIN, f"{key.name}: {member_id} is not in the verified chain")
    return decided


def is_published(
    kind: str, kid: str | None, previous_kid: str | None, *, chain_kid: str | None, document_kids: Sequence[str]
) -> bool:
    """Is what the key's stage needs published (``KeyView.published``)?

    A governance key is published when the verified chain lists its kid for the member; a TLS or
    identity key when the keys document lists exactly the current kid, then the previous one while
    there is one (old and new in an overlap, the new alone once the old is off the record).
    """
    if kind == "governance":
        return chain_kid == kid
    return list(document_kids) == [kid, *([previous_kid] if previous_kid is not None else [])]


class Move(StrEnum):
    """What a rotation under way does once its publication is known, after the keys document is written."""

    NONE = "none"  # not announced nor retiring, or what it needs is not published yet
    AWAIT = "await"  # a new governance key is proposed; the old one signs until a version lists the new
    PUBLISH = "publish"  # old and new are published: the overlap starts now (``key.rotated``)
    DISABLE = "disable"  # the old version left publication: disable it (never delete) and close the rotation


@dataclass(frozen=True)
class Next:
    move: Move
    reason: Why


def move_on(kind: str, stage: Stage | None, *, shown: bool, old_listed: bool) -> Next:
    """What is now published moves on: announced to published, retiring to done.

    ``shown`` is ``is_published(...)`` for the entry as it now stands; ``old_listed`` says the verified
    chain still lists the governance kid being retired, which is never disabled: the member signs with it.
    """
    if stage not in (Stage.ANNOUNCED, Stage.RETIRING):
        return Next(Move.NONE, Why.NOT_UNDER_WAY)
    if not shown:
        if stage is Stage.ANNOUNCED and kind == "governance":
            return Next(Move.AWAIT, Why.AWAITING_VERSION)
        return Next(Move.NONE, Why.UNPUBLISHED)
    if stage is Stage.ANNOUNCED:
        return Next(Move.PUBLISH, Why.PUBLISHED)
    if kind == "governance" and old_listed:
        return Next(Move.NONE, Why.OLD_KID_LISTED)
    return Next(Move.DISABLE, Why.OVERLAP_OVER)


# ---------------------------------------------------------------------------------------- settings

_OFF = re.compile(r"^off\b", re.IGNORECASE)
_DURATION: TypeAdapter[timedelta] = TypeAdapter(timedelta)


def parse_policy(kind: str, text: str, *, off_reason: str | None = None) -> KeyPolicy:
    """``"rotate=P90D overlap=P7D warn=P14D"``, optionally led by ``off``; ISO 8601 durations.

    ValueError names the setting's part and the rule when the text is wrong.
    """
    parts = text.split()
    enabled = not (parts and _OFF.match(parts[0]))
    if not enabled:
        parts = parts[1:]
    values: dict[str, timedelta] = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep or name not in ("rotate", "overlap", "warn"):
            raise ValueError(f"{kind}: {part!r} must be rotate=, overlap= or warn= with an ISO 8601 duration")
        try:
            values[name] = _DURATION.validate_python(value)
        except ValidationError:
            raise ValueError(f"{kind}: {name}={value!r} is not an ISO 8601 duration such as P90D or PT60S") from None
    missing = [n for n in ("rotate", "overlap", "warn") if n not in values]
    if missing:
        raise ValueError(f"{kind}: {', '.join(missing)} missing (expected rotate=… overlap=… warn=…)")
    kwargs = {"off_reason": off_reason} if off_reason else {}
    return KeyPolicy(kind, enabled, values["rotate"], values["overlap"], values["warn"], **kwargs)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def _short(version: str) -> str:
    return version[:8]
