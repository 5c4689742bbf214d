"""The rules for what a member's nodes are told about the others: signed node-info indexes, the files
they list, flag days, and what the agent does to ``additional-node-infos``; one row per rule."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.decisions import chain, node_infos
from shared.decisions.node_infos import NodeInfoError, RestartReason, Rule
from tests.support.chain_world import Bank, Key, banks, new_key

A, B = banks("bank-a", "bank-b").values()
MEMBER_A = chain.Member.model_validate(A.entry)
FILES = [b"node info one", b"node info two"]


def index(
    bank: Bank = A, files: list[bytes] = FILES, *, seq: int = 3, key: Key | None = None, **changes: object
) -> bytes:
    key = key or bank.key
    document = {**node_infos.unsigned_index(bank.member_id, files, seq=seq, issued_at="2026-11-28T12:00:00Z",
                                            kid=key.kid), **changes}  # fmt: skip
    return node_infos.signed_bytes(document, key.sign_own(document))


def flag_day(bank: Bank = A, *, switch_at: str = "2026-12-01T00:00:00Z", key: Key | None = None) -> bytes:
    key = key or bank.key
    document = {"member_id": bank.member_id, "flag_day_id": "epoch-2", "network_parameters_sha256": "ab" * 32,
                "switch_at": switch_at, "kid": key.kid}  # fmt: skip
    return node_infos.signed_bytes(document, key.sign_own(document))


@dataclass(frozen=True)
class Row:
    why: str
    raw: Callable[[], bytes]
    rule: Rule | None  # None: it verifies
    last: tuple[int, str] | None = None


def _fingerprint(raw: bytes) -> str:
    return hashlib.sha256(chain.own_signing_bytes(json.loads(raw))).hexdigest()


INDEX_ROWS = [
    Row("an index signed with the governance key the chain lists for its member verifies", index, None),
    Row("an index signed with a key the chain does not list for its member is refused",
        lambda: index(key=new_key("bank-a")), Rule.SIGNATURE),
    Row("another member's index, under this member's path, is refused as naming another member",
        lambda: index(B), Rule.MEMBER),
    Row("an index whose content changed after it was signed is refused",
        lambda: index().replace(b'"seq":3', b'"seq":4'), Rule.SIGNATURE),
    Row("an index that is not canonical JSON is refused as to its shape",
        lambda: json.dumps(json.loads(index()), indent=1).encode(), Rule.SHAPE),
    Row("an index with an unknown field is refused as to its shape",
        lambda: index(extra="x"), Rule.SHAPE),
    Row("an index listing one file twice is refused as to its shape",
        lambda: index(node_infos=[{"sha256": "0" * 64, "size": 1}] * 2), Rule.SHAPE),
    Row("an index older than the one accepted before is refused as a replay",
        index, Rule.REPLAYED, (4, "0" * 64)),
    Row("the same seq with other content is refused as a replay",
        index, Rule.REPLAYED, (3, "0" * 64)),
    Row("the index accepted before, read again, verifies", index, None, (3, _fingerprint(index()))),
    Row("a newer index than the one accepted verifies", index, None, (2, "0" * 64)),
]  # fmt: skip


@pytest.mark.parametrize("row", INDEX_ROWS, ids=[r.why for r in INDEX_ROWS])
def test_index_rules(row: Row) -> None:
    raw = row.raw()
    if row.rule is None:
        accepted = node_infos.verify_index(raw, member=MEMBER_A, last=row.last)
        assert [e.sha256 for e in accepted.index.node_infos] == sorted(hashlib.sha256(f).hexdigest() for f in FILES)
        assert accepted.fingerprint == _fingerprint(raw)
    else:
        with pytest.raises(NodeInfoError) as caught:
            node_infos.verify_index(raw, member=MEMBER_A, last=row.last)
        assert caught.value.rule is row.rule
        assert str(caught.value).startswith(f"nodes/bank-a/index.json: {row.rule.value}: ")


def test_a_file_is_believed_only_with_the_bytes_and_size_its_verified_index_lists() -> None:
    entry = node_infos.verify_index(index(), member=MEMBER_A).index.node_infos[0]
    data = next(f for f in FILES if hashlib.sha256(f).hexdigest() == entry.sha256)
    assert node_infos.verify_file(data, member_id="bank-a", entry=entry) == data
    with pytest.raises(NodeInfoError, match=r"nodeInfo-[0-9a-f]{64}: hash: ") as caught:
        node_infos.verify_file(data + b" ", member_id="bank-a", entry=entry)
    assert caught.value.rule is Rule.HASH


FLAG_DAY_ROWS = [
    Row("the member's own flag day signed with its governance key verifies", flag_day, None),
    Row("a flag day signed with a key the chain does not list is refused",
        lambda: flag_day(key=new_key("bank-a")), Rule.SIGNATURE),
    Row("another member's flag day is refused as naming another member", lambda: flag_day(B), Rule.MEMBER),
    Row("a flag day whose switch time is not a time is refused as to its shape",
        lambda: flag_day(switch_at="2026-13-01T00:00:00Z"), Rule.SHAPE),
]  # fmt: skip


@pytest.mark.parametrize("row", FLAG_DAY_ROWS, ids=[r.why for r in FLAG_DAY_ROWS])
def test_flag_day_rules(row: Row) -> None:
    if row.rule is None:
        assert node_infos.verify_flag_day(row.raw(), member=MEMBER_A).flag_day_id == "epoch-2"
    else:
        with pytest.raises(NodeInfoError) as caught:
            node_infos.verify_flag_day(row.raw(), member=MEMBER_A)
        assert caught.value.rule is row.rule


# --- restarts ----------------------------------------------------------------------------------

SWITCH = datetime(2026, 12, 1, tzinfo=UTC)
FLAG = node_infos.verify_flag_day(flag_day(), member=MEMBER_A)


@dataclass(frozen=True)
class RestartRow:
    why: str
    flag_day: node_infos.FlagDay | None
    applied: tuple[str, ...]
    now: datetime
    reason: RestartReason


RESTART_ROWS = [
    RestartRow("without a flag day nothing restarts", None, (), SWITCH, RestartReason.NO_FLAG_DAY),
    RestartRow("a second before the switch time nothing restarts", FLAG, (), SWITCH - timedelta(seconds=1),
               RestartReason.NOT_YET_DUE),
    RestartRow("at the switch time the node restarts", FLAG, (), SWITCH, RestartReason.DUE),
    RestartRow("after the switch time the node restarts", FLAG, ("epoch-1",), SWITCH + timedelta(days=3),
               RestartReason.DUE),
    RestartRow("a flag day applied before restarts nothing again", FLAG, ("epoch-2",), SWITCH + timedelta(days=1),
               RestartReason.ALREADY_APPLIED),
]  # fmt: skip


@pytest.mark.parametrize("row", RESTART_ROWS, ids=[r.why for r in RESTART_ROWS])
def test_restart_rules(row: RestartRow) -> None:
    decision = node_infos.decide_restart(row.flag_day, applied=row.applied, now=row.now)
    assert decision.reason is row.reason
    assert decision.restart is (row.reason is RestartReason.DUE)


@given(st.datetimes(timezones=st.just(UTC)), st.lists(st.text(max_size=8), max_size=4))
def test_without_a_flag_day_nothing_ever_restarts(now: datetime, applied: list[str]) -> None:
    assert not node_infos.decide_restart(None, applied=applied, now=now).restart


# --- the directory -----------------------------------------------------------------------------


def test_disk_names_carry_their_member_and_content_and_nothing_else_is_ours() -> None:
    name = node_infos.disk_name("bank-a-2", "0f" * 32)
    assert name == "nodeInfo-bank-a-2-" + "0f" * 32
    assert node_infos.member_of(name) == "bank-a-2"
    for other in ("nodeInfo-ABCDEF", "nodeInfo-bank-a-" + "0F" * 32, ".nodeagent", "nodeInfo-bank-a-" + "0f" * 31):
        assert node_infos.member_of(other) is None


@given(st.sets(st.sampled_from("abcdefgh")), st.sets(st.sampled_from("abcdefgh")))
def test_a_plan_leaves_exactly_the_wanted_files(wanted: set[str], present: set[str]) -> None:
    plan = node_infos.plan(wanted, present)
    after = (present - set(plan.remove)) | set(plan.write)
    assert after == wanted
    assert set(plan.write).isdisjoint(present) and set(plan.remove) <= present
    assert node_infos.plan(wanted, after) == node_infos.Plan((), (), tuple(sorted(wanted)))  # a second run: nothing
