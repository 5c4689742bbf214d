"""The rotation plan and the rules around it, a row per rule with the sentence that explains it; the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.decisions.rotation import (
    Action,
    KeyView,
    Move,
    Plan,
    Rotation,
    Stage,
    is_published,
    move_on,
    outside_chain,
    parse_policy,
    plan,
    rotates,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
TLS = parse_policy("tls", "rotate=P90D overlap=P7D warn=P14D")
IDENTITY = parse_policy("identity", "off rotate=P730D overlap=P30D warn=P60D", off_reason="off: R3's tool")


def key(**changes: object) -> KeyView:
    base: dict[str, object] = {"name": "bank-a-tls", "kind": "tls", "version": "v1", "created_at": T0}
    base.update(changes)
    return KeyView(**base)  # type: ignore[arg-type]


def rotation(stage: Stage, **changes: object) -> Rotation:
    base: dict[str, object] = {"id": "bank-a-tls@v1", "stage": stage, "from_version": "v1"}
    base.update(changes)
    return Rotation(**base)  # type: ignore[arg-type]


published_at_97 = key(rotation=rotation(Stage.PUBLISHED, retire_after=T0 + 97 * DAY), published=True)
ROWS = [
    ("a young key is left alone", key(), T0 + 10 * DAY, {}, Action.NONE, "not_due"),
    ("warn_before its age a key is expiring", key(), T0 + 76 * DAY, {}, Action.WARN, "expiring"),
    ("a key is warned about once per version", key(warned_version="v1"), T0 + 80 * DAY, {}, Action.NONE, "not_due"),
    ("a new version is warned about again", key(version="v2", warned_version="v1"), T0 + 80 * DAY, {},
     Action.WARN, "expiring"),
    ("at its rotation age a key is due", key(), T0 + 90 * DAY, {}, Action.START, "due"),
    ("a warned key still rotates when due", key(warned_version="v1"), T0 + 95 * DAY, {}, Action.START, "due"),
    ("force rotates a key that is not due", key(), T0 + DAY, {"force": True, "request_id": "r1"},
     Action.START, "forced"),
    ("a forced request rotates once", key(last_request_id="r1"), T0 + DAY, {"force": True, "request_id": "r1"},
     Action.NONE, "done"),
    ("another forced request rotates again", key(last_request_id="r1"), T0 + DAY,
     {"force": True, "request_id": "r2"}, Action.START, "forced"),
    ("a kind whose policy is off never rotates", key(kind="identity"), T0 + 999 * DAY, {}, Action.NONE, "off"),
    ("not even when forced", key(kind="identity"), T0, {"force": True, "request_id": "r1"}, Action.NONE, "off"),
    ("a rotation stopped before its version was recorded resumes", key(rotation=rotation(Stage.STARTED)),
     T0 + 91 * DAY, {}, Action.START, "resume"),
    ("an announced rotation must publish old and new", key(rotation=rotation(Stage.ANNOUNCED)), T0 + 91 * DAY, {},
     Action.PUBLISH, "announce"),
    ("an announced rotation already published is confirmed", key(rotation=rotation(Stage.ANNOUNCED), published=True),
     T0 + 91 * DAY, {}, Action.PUBLISH, "published"),
    ("a governance rotation waits for a verified version listing the new kid",
     key(kind="governance", rotation=rotation(Stage.ANNOUNCED)), T0 + 400 * DAY, {}, Action.PUBLISH, "announce"),
    ("a published rotation no longer published never retires",
     key(kind="governance", rotation=rotation(Stage.PUBLISHED, retire_after=T0 + 97 * DAY)), T0 + 400 * DAY, {},
     Action.WAIT, "unpublished"),
    ("during the overlap the old version stays", published_at_97,
     T0 + 96 * DAY, {}, Action.WAIT, "overlap"),
    ("force does not cut an overlap short", published_at_97,
     T0 + 96 * DAY, {"force": True, "request_id": "r9"}, Action.WAIT, "overlap"),
    ("after the overlap the old version retires", published_at_97,
     T0 + 97 * DAY, {}, Action.RETIRE, "overlap_over"),
    ("a retirement stopped half-way finishes", key(rotation=rotation(Stage.RETIRING)), T0 + 98 * DAY, {},
     Action.FINISH, "retiring"),
]  # fmt: skip


@pytest.mark.parametrize(("sentence", "view", "now", "kwargs", "action", "reason"), ROWS, ids=[r[0] for r in ROWS])
def test_plan(
    sentence: str, view: KeyView, now: datetime, kwargs: dict[str, object], action: Action, reason: str
) -> None:
    policy = IDENTITY if view.kind == "identity" else TLS
    decided = plan(view, policy, now, **kwargs)  # type: ignore[arg-type]
    assert (decided.action, decided.reason) == (action, reason), sentence
    assert decided.message


def test_an_identity_key_says_why_it_is_off() -> None:
    assert "R3" in plan(key(kind="identity"), IDENTITY, T0, force=True, request_id="r").message


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("rotate=P90D overlap=P7D", "warn missing"),
        ("rotate=P90D overlap=P7D warn=soon", "warn='soon' is not an ISO 8601 duration"),
        ("rotate=P90D overlap=P90D warn=P1D", "overlap must be at least 0 and shorter than rotate"),
        ("rotate=P90D overlap=P7D warn=P91D", "warn must be at least 0 and shorter than rotate"),
        ("rotate=P90D overlap=P7D warn=P1D every=P1D", "'every=P1D' must be rotate=, overlap= or warn="),
        ("rotate=PT0S overlap=PT0S warn=PT0S", "rotate must be a positive duration"),
    ],
)
def test_a_bad_policy_setting_names_the_part_and_the_rule(text: str, error: str) -> None:
    with pytest.raises(ValueError, match="tls: ") as raised:
        parse_policy("tls", text)
    assert error in str(raised.value)


def test_policies_parse_iso_durations_and_off() -> None:
    assert (TLS.rotate_after, TLS.overlap, TLS.warn_before, TLS.enabled) == (90 * DAY, 7 * DAY, 14 * DAY, True)
    assert not IDENTITY.enabled
    assert parse_policy("tls", "rotate=P90D overlap=PT60S warn=P14D").overlap == timedelta(seconds=60)


ROTATES = [
    ("an active member's keys rotate", "active", False, True),
    ("a member on its way out rotates none", "active", True, False),
    ("a member still onboarding rotates none", "pending", False, False),
    ("a failed member rotates none", "failed", False, False),
    ("no record, no status: nothing rotates", None, False, False),
]  # fmt: skip


@pytest.mark.parametrize(("sentence", "status", "offboarding", "expected"), ROTATES, ids=[r[0] for r in ROTATES])
def test_rotates(sentence: str, status: str | None, offboarding: bool, expected: bool) -> None:
    assert rotates(status, offboarding) is expected, sentence


START = Plan(Action.START, "due", "due")
OUTSIDE = [
    ("a governance key outside the chain starts no rotation", "governance", START, False, Action.NONE, "not_in_chain"),
    ("a governance key in the chain starts its rotation", "governance", START, True, Action.START, "due"),
    ("a TLS key rotates whether or not the member is in the chain", "tls", START, False, Action.START, "due"),
    ("outside the chain a governance key still waits out its overlap", "governance",
     Plan(Action.WAIT, "overlap", "overlap"), False, Action.WAIT, "overlap"),
    ("outside the chain a governance retirement still finishes", "governance",
     Plan(Action.FINISH, "retiring", "retiring"), False, Action.FINISH, "retiring"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("sentence", "kind", "decided", "in_chain", "action", "reason"), OUTSIDE, ids=[r[0] for r in OUTSIDE]
)
def test_outside_chain(sentence: str, kind: str, decided: Plan, in_chain: bool, action: Action, reason: str) -> None:
    gated = outside_chain(decided, key(kind=kind, name=f"bank-a-{kind}"), "bank-a", in_chain=in_chain)
    assert (gated.action, gated.reason) == (action, reason), sentence
    if reason == "not_in_chain":
        assert gated.message == "bank-a-governance: bank-a is not in the verified chain"


PUBLISHED = [
    ("a governance key is published when the chain lists its kid", "governance", "k2", "k1", "k2", [], True),
    ("a governance key the chain does not list yet is not", "governance", "k2", "k1", "k1", [], False),
    ("outside the chain a governance key is not published", "governance", "k2", None, None, [], False),
    ("the keys document does not count for a governance key", "governance", "k2", None, "k1", ["k2"], False),
    ("in an overlap a TLS key is published when the document lists new then old", "tls", "k2", "k1", None,
     ["k2", "k1"], True),
    ("the new alone is not old and new", "tls", "k2", "k1", None, ["k2"], False),
    ("old and new in the wrong order are not what the entry says", "tls", "k2", "k1", None, ["k1", "k2"], False),
    ("once the old is off the record the new alone is published", "tls", "k2", None, None, ["k2"], True),
    ("a document still listing the old is not yet", "tls", "k2", None, None, ["k2", "k1"], False),
    ("no document, nothing published", "identity", "k1", None, None, [], False),
    ("the chain's kid does not count for a TLS key", "tls", "k2", None, "k2", [], False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("sentence", "kind", "kid", "previous", "chain_kid", "document", "expected"), PUBLISHED,
    ids=[r[0] for r in PUBLISHED],
)  # fmt: skip
def test_is_published(
    sentence: str, kind: str, kid: str, previous: str | None, chain_kid: str | None, document: list[str],
    expected: bool,
) -> None:  # fmt: skip
    assert is_published(kind, kid, previous, chain_kid=chain_kid, document_kids=document) is expected, sentence


MOVES = [
    ("a key with no rotation under way does not move", "tls", None, True, False, Move.NONE, "not_under_way"),
    ("a rotation still starting does not move", "tls", Stage.STARTED, True, False, Move.NONE, "not_under_way"),
    ("a published rotation waits for its overlap, not here", "tls", Stage.PUBLISHED, True, False,
     Move.NONE, "not_under_way"),
    ("an announced TLS key not published yet waits", "tls", Stage.ANNOUNCED, False, False, Move.NONE, "unpublished"),
    ("an announced governance key waits for a verified version listing it", "governance", Stage.ANNOUNCED, False,
     True, Move.AWAIT, "awaiting_version"),
    ("an announced key whose old and new are published starts its overlap", "tls", Stage.ANNOUNCED, True, False,
     Move.PUBLISH, "published"),
    ("a governance key the chain lists starts its overlap", "governance", Stage.ANNOUNCED, True, False,
     Move.PUBLISH, "published"),
    ("a retiring TLS key still in the document is not disabled", "tls", Stage.RETIRING, False, False,
     Move.NONE, "unpublished"),
    ("a retiring key out of publication is disabled", "tls", Stage.RETIRING, True, False,
     Move.DISABLE, "overlap_over"),
    ("a retiring governance key is disabled once the chain lists the new alone", "governance", Stage.RETIRING, True,
     False, Move.DISABLE, "overlap_over"),
    ("an old governance kid the chain still lists is never disabled", "governance", Stage.RETIRING, True, True,
     Move.NONE, "old_kid_listed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("sentence", "kind", "stage", "shown", "old_listed", "move", "reason"), MOVES, ids=[r[0] for r in MOVES]
)
def test_move_on(
    sentence: str, kind: str, stage: Stage | None, shown: bool, old_listed: bool, move: Move, reason: str
) -> None:
    step = move_on(kind, stage, shown=shown, old_listed=old_listed)
    assert (step.move, step.reason) == (move, reason), sentence
