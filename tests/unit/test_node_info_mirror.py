"""The control plane's mirror of the other members' node infos, on the fakes: what lands in this member's
own container is what verifies with the chain, byte for byte, files before the index that lists them."""

from __future__ import annotations

import hashlib

import pytest

from shared.decisions import chain, node_infos
from shared.fakes.clock import FakeClock
from shared.fakes.published import FakePeerReader, FakePublicStore, PublishedWorld
from shared.fakes.queues import FakeQueues
from shared.fakes.state import FakeStateStore
from shared.services.consortium import TickOutcome
from shared.services.node_infos import Mirrored, NodeInfoMirror
from shared.services.records import Events, Rejections
from tests.support.chain_world import Bank, Key, banks, genesis, new_key

BANKS = banks("bank-a", "bank-b", "bank-c")
V0 = genesis(BANKS)
HEAD = chain.verify_genesis(chain.document_hash(V0), V0)
ENDPOINT = {m.member_id: m.endpoint for m in HEAD.document.members}


def index(bank: Bank, files: list[bytes], seq: int, key: Key | None = None) -> bytes:
    key = key or bank.key
    document = node_infos.unsigned_index(bank.member_id, files, seq=seq, issued_at="2026-11-28T12:00:00Z", kid=key.kid)
    return node_infos.signed_bytes(document, key.sign_own(document))


def publish(world: PublishedWorld, bank: Bank, files: list[bytes], seq: int, key: Key | None = None) -> None:
    for data in files:
        world.write(ENDPOINT[bank.member_id], node_infos.node_info_path(bank.member_id, sha(data)), data)
    world.write(ENDPOINT[bank.member_id], node_infos.index_path(bank.member_id), index(bank, files, seq, key))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Mirror:
    def __init__(self) -> None:
        self.world = PublishedWorld()
        self.state = FakeStateStore()
        clock = FakeClock()
        events = Events(FakeQueues(), clock)
        self.mirror = NodeInfoMirror(
            "bank-a", FakePublicStore(self.world, ENDPOINT["bank-a"]), FakePeerReader(self.world),
            Rejections(self.state, events, clock),
        )  # fmt: skip

    def own(self) -> dict[str, bytes]:
        return {p: d for p, (d, _) in self.world.containers.get(ENDPOINT["bank-a"], {}).items()}

    def rejections(self) -> list[str]:
        return sorted(str(d.body["reason"]) for p, d in self.state.docs.items() if p.startswith("rejections/"))


@pytest.fixture
def m() -> Mirror:
    return Mirror()


def test_each_other_members_verified_index_and_files_are_copied_byte_for_byte(m: Mirror) -> None:
    publish(m.world, BANKS["bank-b"], [b"b node 1", b"b node 2"], seq=1)

    assert m.mirror.mirror(HEAD) == {"bank-b": Mirrored.COPIED, "bank-c": Mirrored.NONE}
    theirs = m.world.containers[ENDPOINT["bank-b"]]
    assert m.own() == {path: data for path, (data, _) in theirs.items()}
    # a second tick: one conditional request for each, nothing read again
    before = m.world.requests
    assert m.mirror.mirror(HEAD) == {"bank-b": Mirrored.UNCHANGED, "bank-c": Mirrored.NONE}
    assert m.world.requests - before == 2


def test_an_index_signed_with_a_key_the_chain_does_not_list_is_refused_and_recorded_once(m: Mirror) -> None:
    publish(m.world, BANKS["bank-b"], [b"b node"], seq=1, key=new_key("bank-b"))

    assert m.mirror.mirror(HEAD)["bank-b"] is Mirrored.REFUSED
    m.mirror.mirror(HEAD)
    assert m.own() == {} and m.rejections() == ["signature"]


def test_a_file_swapped_after_the_index_was_signed_is_refused_and_the_index_not_copied(m: Mirror) -> None:
    publish(m.world, BANKS["bank-b"], [b"b node"], seq=1)
    m.world.write(ENDPOINT["bank-b"], node_infos.node_info_path("bank-b", sha(b"b node")), b"forged")

    assert m.mirror.mirror(HEAD)["bank-b"] is Mirrored.REFUSED
    assert m.own() == {} and m.rejections() == ["hash"]


def test_an_older_index_than_the_copy_held_is_refused_and_the_copy_kept(m: Mirror) -> None:
    publish(m.world, BANKS["bank-b"], [b"b node 2"], seq=2)
    m.mirror.mirror(HEAD)
    kept = m.own()
    publish(m.world, BANKS["bank-b"], [b"b node 1"], seq=1)

    assert m.mirror.mirror(HEAD)["bank-b"] is Mirrored.REFUSED
    assert m.own()[node_infos.index_path("bank-b")] == kept[node_infos.index_path("bank-b")]
    assert m.rejections() == ["replayed"]


def test_a_member_that_is_down_is_tried_again_and_its_copy_kept(m: Mirror) -> None:
    publish(m.world, BANKS["bank-b"], [b"b node"], seq=1)
    m.mirror.mirror(HEAD)
    m.world.down.add(ENDPOINT["bank-b"])
    publish(m.world, BANKS["bank-b"], [b"b node", b"b node 2"], seq=2)

    assert m.mirror.mirror(HEAD)["bank-b"] is Mirrored.UNREACHABLE
    m.world.down.clear()
    assert m.mirror.mirror(HEAD)["bank-b"] is Mirrored.COPIED
    assert node_infos.node_info_path("bank-b", sha(b"b node 2")) in m.own()


def test_its_own_index_and_a_member_not_admitted_are_never_copied(m: Mirror) -> None:
    outsider = Bank("bank-z", new_key("bank-z"))
    m.world.write("https://stbankz.blob.core.windows.net/consortium-public", "nodes/bank-z/index.json", b"{}")
    publish(m.world, BANKS["bank-b"], [b"b node"], seq=1)

    assert set(m.mirror.mirror(HEAD)) == {"bank-b", "bank-c"}
    assert not any(p.startswith(("nodes/bank-z", "nodes/bank-a")) for p in m.own())
    assert outsider.member_id not in HEAD.document.member_ids


def test_the_timer_mirrors_after_an_adoption_or_once_a_minute_and_never_on_a_fork(m: Mirror) -> None:
    """Node infos change far less often than heads: one conditional read per member per tick would
    double what following costs when idle."""
    now = [1000.0]
    m.mirror.monotonic = lambda: now[0]
    publish(m.world, BANKS["bank-b"], [b"node-b1"], seq=1)
    assert m.mirror.after_tick(TickOutcome(), HEAD) == {"bank-b": Mirrored.COPIED, "bank-c": Mirrored.NONE}
    publish(m.world, BANKS["bank-b"], [b"node-b1", b"node-b2"], seq=2)
    now[0] += 30
    assert m.mirror.after_tick(TickOutcome(), HEAD) == {}, "within a minute of the last: not read"
    assert m.mirror.after_tick(TickOutcome(fork=True), HEAD) == {}
    assert m.mirror.after_tick(TickOutcome(adopted=4), HEAD)["bank-b"] is Mirrored.COPIED, "an adoption mirrors at once"
    publish(m.world, BANKS["bank-c"], [b"node-c1"], seq=1)
    now[0] += 61
    assert m.mirror.after_tick(TickOutcome(), HEAD)["bank-c"] is Mirrored.COPIED
    assert m.mirror.after_tick(TickOutcome(), None) == {}, "before the genesis there is nothing to mirror"
    publish(m.world, BANKS["bank-c"], [b"node-c1", b"node-c2"], seq=2)
    now[0] += 1
    m.mirror.due()  # the tick that adopted gave its turn up (an activation was waiting to be delivered)
    assert m.mirror.after_tick(TickOutcome(), HEAD)["bank-c"] is Mirrored.COPIED, "the next tick mirrors"
