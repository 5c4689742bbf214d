"""Publishing this member's own nodes' node infos, on the fakes: what its inbox offers becomes a signed
index (and its files) in its own container only when the set of current files changes; what is not a
node-info file is refused and recorded; a member the chain does not list signs nothing."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from shared.decisions import chain, node_infos
from shared.decisions.node_infos import InboxBlob
from shared.errors import PermanentError
from shared.fakes.clock import FakeClock
from shared.fakes.inbox import FakeInbox
from shared.fakes.published import FakePublicStore, PublishedWorld
from shared.fakes.queues import FakeQueues
from shared.fakes.state import FakeStateStore
from shared.ports.keys import KeyStore
from shared.services.consortium import TickOutcome
from shared.services.node_infos import PUBLISH_SECONDS, NodeInfoPublisher, Publication
from shared.services.records import Events, Rejections
from tests.support.chain_world import GovernanceKey, banks, genesis

BANKS = banks("bank-a", "bank-b")
V0 = genesis(BANKS)
HEAD = chain.verify_genesis(chain.document_hash(V0), V0)
OUTSIDER = chain.verify_genesis(chain.document_hash(g := genesis(banks("bank-b", "bank-c"))), g)
ENDPOINT = {m.member_id: m.endpoint for m in HEAD.document.members}
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CURRENT = node_infos.INBOX_CURRENT_SECONDS
#: A refresh interval and a run: from then on the publisher has watched long enough to drop a file.
WATCHED = node_infos.INBOX_REFRESH_SECONDS + PUBLISH_SECONDS


def node(n: int) -> bytes:
    return b"corda\x01\x00" + f" SignedNodeInfo of bank-a's node {n}".encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class World:
    def __init__(self) -> None:
        self.world = PublishedWorld()
        self.state = FakeStateStore()
        self.clock = FakeClock(T0)
        self.inbox = FakeInbox()
        self.key = GovernanceKey(BANKS["bank-a"])
        self.ticks = 0.0
        self.publisher = NodeInfoPublisher(
            "bank-a", self.inbox, FakePublicStore(self.world, ENDPOINT["bank-a"]), cast(KeyStore, self.key),
            self.state, Rejections(self.state, Events(FakeQueues(), self.clock), self.clock), self.clock,
            monotonic=lambda: self.ticks,
        )  # fmt: skip

    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.ticks += seconds

    def own(self) -> dict[str, bytes]:
        return {p: d for p, (d, _) in self.world.containers.get(ENDPOINT["bank-a"], {}).items()}

    def index(self) -> node_infos.NodeInfoIndex:
        raw = self.own()[node_infos.index_path("bank-a")]
        return node_infos.verify_index(raw, member=HEAD.document.members[0]).index

    def listed(self) -> list[str]:
        return [e.sha256 for e in self.index().node_infos]

    def rejections(self) -> list[str]:
        return sorted(str(d.body["reason"]) for p, d in self.state.docs.items() if p.startswith("rejections/"))


@pytest.fixture
def w() -> World:
    return World()


def test_a_new_file_is_published_with_a_signed_index_and_the_same_set_writes_nothing(w: World) -> None:
    w.inbox.offer(sha(node(1)), node(1), T0)
    assert w.publisher.publish(HEAD) is Publication.PUBLISHED
    assert (w.index().seq, w.listed()) == (1, [sha(node(1))])
    assert w.own()[node_infos.node_info_path("bank-a", sha(node(1)))] == node(1)
    before, reads = dict(w.own()), w.inbox.reads

    w.wait(60)
    w.inbox.offer(sha(node(1)), node(1), w.clock.now())  # its node refreshed it
    assert w.publisher.publish(HEAD) is Publication.UNCHANGED
    assert w.own() == before and w.key.signed == [HEAD.document.members[0].governance_key.kid]
    assert w.inbox.reads == reads, "a file the published index lists is not read again"


def test_a_changed_set_is_a_new_index_with_the_next_seq(w: World) -> None:
    w.inbox.offer(sha(node(1)), node(1), T0)
    w.publisher.publish(HEAD)
    w.wait(30)
    w.inbox.offer(sha(node(2)), node(2), w.clock.now())
    assert w.publisher.publish(HEAD) is Publication.PUBLISHED
    assert (w.index().seq, sorted(w.listed())) == (2, sorted([sha(node(1)), sha(node(2))]))


def test_a_file_its_node_stopped_refreshing_drops_out_and_leaves_the_inbox(w: World) -> None:
    w.inbox.offer(sha(node(1)), node(1), T0)
    w.inbox.offer(sha(node(2)), node(2), T0)
    w.publisher.publish(HEAD)
    # node 2 is deleted; node 1 keeps refreshing every 10 minutes
    for _ in range(4):
        w.wait(node_infos.INBOX_REFRESH_SECONDS)
        w.inbox.offer(sha(node(1)), node(1), w.clock.now())
        w.publisher.publish(HEAD)
    assert (w.index().seq, w.listed()) == (2, [sha(node(1))])
    assert sha(node(2)) not in w.inbox.blobs, "removed from the inbox once out of the index"
    assert node_infos.node_info_path("bank-a", sha(node(2))) in w.own(), "published files stay (others may read)"


def test_the_last_node_gone_publishes_an_empty_index(w: World) -> None:
    w.inbox.offer(sha(node(1)), node(1), T0)
    w.publisher.publish(HEAD)
    w.wait(max(CURRENT, WATCHED))
    assert w.publisher.publish(HEAD) is Publication.PUBLISHED
    assert (w.index().seq, w.listed()) == (2, [])
    assert w.publisher.publish(HEAD) is Publication.UNCHANGED


def test_a_cold_start_or_an_unreadable_inbox_drops_nothing_until_the_nodes_could_refresh(w: World) -> None:
    w.inbox.offer(sha(node(1)), node(1), T0)
    w.publisher.publish(HEAD)
    w.wait(CURRENT + 1)  # the account was down: no node could refresh
    w.inbox.down = True
    assert w.publisher.after_tick(TickOutcome(adopted=1), HEAD) is Publication.UNREACHABLE
    w.inbox.down = False
    w.wait(1)
    assert w.publisher.publish(HEAD) is Publication.UNCHANGED, "watching again only since now"
    assert w.listed() == [sha(node(1))]
    w.wait(WATCHED)  # a whole refresh interval watched, and the node never refreshed: it is gone
    assert w.publisher.publish(HEAD) is Publication.PUBLISHED
    assert w.listed() == []


@pytest.mark.parametrize(
    ("why", "name", "data", "rule"),
    [
        ("bytes that do not hash to the name", sha(b"x"), node(1), "hash"),
        ("bytes without Corda's serialization header", sha(b"<html>garbage"), b"<html>garbage", "shape"),
        ("a name that is not a SHA-256", "nodeInfo-ABC", node(1), "shape"),
        (
            "a file larger than a NodeInfo can be",
            sha(b"corda\x01\x00" + b"x" * node_infos.MAX_NODE_INFO_BYTES),
            b"corda\x01\x00" + b"x" * node_infos.MAX_NODE_INFO_BYTES,
            "shape",
        ),
        ("an empty file", sha(b""), b"", "shape"),
    ],
    ids=["not-its-hash", "no-corda-header", "not-named-by-a-hash", "too-large", "empty"],
)
def test_what_is_not_a_node_info_file_is_refused_recorded_once_and_not_published(
    w: World, why: str, name: str, data: bytes, rule: str
) -> None:
    w.inbox.offer(name, data, T0)
    w.inbox.offer(sha(node(1)), node(1), T0)
    assert w.publisher.publish(HEAD) is Publication.PUBLISHED, why
    assert w.listed() == [sha(node(1))]
    assert w.rejections() == [rule]
    reads = w.inbox.reads
    w.wait(60)
    assert w.publisher.publish(HEAD) is Publication.UNCHANGED
    assert (w.rejections(), w.inbox.reads) == ([rule], reads), "refused once: not read nor recorded again"


def test_a_member_the_verified_chain_does_not_list_publishes_nothing(w: World) -> None:
    w.inbox.offer(sha(node(1)), node(1), T0)
    assert w.publisher.publish(OUTSIDER) is Publication.NOT_A_MEMBER
    assert w.own() == {} and w.key.signed == []


def test_an_empty_inbox_before_any_index_publishes_nothing(w: World) -> None:
    assert w.publisher.publish(HEAD) is Publication.NOTHING
    assert w.own() == {}


def test_the_seq_never_goes_back_even_if_the_index_was_lost(w: World) -> None:
    w.inbox.offer(sha(node(1)), node(1), T0)
    w.publisher.publish(HEAD)
    del w.world.containers[ENDPOINT["bank-a"]][node_infos.index_path("bank-a")]  # a crash before the put
    w.wait(60)
    assert w.publisher.publish(HEAD) is Publication.PUBLISHED
    assert w.index().seq == 2, "the state was written before the index: seq 1 is never handed out again"


def test_the_timer_publishes_at_most_once_a_minute_never_on_a_fork_nor_before_the_genesis(w: World) -> None:
    w.inbox.offer(sha(node(1)), node(1), T0)
    assert w.publisher.after_tick(TickOutcome(), None) is None
    assert w.publisher.after_tick(TickOutcome(fork=True), HEAD) is None
    assert w.publisher.after_tick(TickOutcome(), HEAD) is Publication.PUBLISHED
    w.wait(PUBLISH_SECONDS - 1)
    assert w.publisher.after_tick(TickOutcome(), HEAD) is None
    w.wait(1)
    assert w.publisher.after_tick(TickOutcome(), HEAD) is Publication.UNCHANGED
    w.publisher.due()  # the tick that adopted gave its turn up (an activation was waiting to be delivered)
    assert w.publisher.after_tick(TickOutcome(), HEAD) is Publication.UNCHANGED, (
        "the next tick publishes, within the minute"
    )


def test_the_current_rule_one_row_per_boundary() -> None:
    a, b, c = (hashlib.sha256(bytes([i])).hexdigest() for i in range(3))
    blobs = [
        InboxBlob(a, 10, T0 - timedelta(seconds=CURRENT - 1)),  # refreshed just in time: current
        InboxBlob(b, 10, T0 - timedelta(seconds=CURRENT)),  # not refreshed for INBOX_CURRENT_SECONDS: stale
        InboxBlob(c, 10, T0 - timedelta(days=1)),  # long stale, but published and may not drop yet
    ]
    view = node_infos.sort_inbox(blobs, now=T0, may_drop=True, published=[c])
    assert ([x.name for x in view.current], sorted(x.name for x in view.stale)) == ([a], sorted([b, c]))
    held = node_infos.sort_inbox(blobs, now=T0, may_drop=False, published=[c])
    assert ([x.name for x in held.current], [x.name for x in held.stale]) == ([a, c], [b])
    many = [InboxBlob(hashlib.sha256(str(i).encode()).hexdigest(), 10, T0 - timedelta(seconds=i)) for i in range(120)]
    view = node_infos.sort_inbox(many, now=T0, may_drop=True, published=[])
    assert len(view.current) == node_infos.MAX_NODE_INFOS and view.current[0].modified == T0, "the newest ones"


def test_a_failure_the_operator_must_fix_is_logged_and_the_timer_goes_on(w: World) -> None:
    w.inbox.offer(sha(node(1)), node(1), T0)

    def refuse(kid: str, digest: bytes) -> bytes:
        raise PermanentError("the vault refused: key disabled", reason="keyvault")

    w.key.sign = refuse  # type: ignore[method-assign]
    assert w.publisher.after_tick(TickOutcome(), HEAD) is Publication.FAILED
    assert node_infos.index_path("bank-a") not in w.own()
