"""A model of the members agreeing on one version, checked under an adversarial scheduler.

Each member keeps a persisted record and publishes copies of it; each member reads the others'
published records into its own view. Hypothesis picks the interleaving: which member steps, which
reads happen (a read may return any record the peer published since the last one this reader saw,
so reads are lost, late and repeated), crashes (a step's result lost before it is persisted, or
persisted but never published), clocks that jump. Runs are "swarm" runs: each picks which links
between members are reliable, lossy or cut until the adversary stops, so the rare line-ups that break
a protocol come up often (a broken phase-1 rule, proposing one's own value over an accepted one, is
found this way). Invariants checked after every action:

- **safety**: every member signs at most one document hash for the version, and no two members sign
  different hashes (only one value is ever chosen), so at most one document of the version can carry
  a majority of signatures: no fork from honest members;
- **progress**: once the adversary stops and every member runs with fresh reads, a value that some
  member holds eligible is chosen and signed by every member within a bounded number of rounds
  (votes never deadlock).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from shared.decisions import agreement
from shared.decisions.agreement import Record, Timing, Value

VERSION = 7
BASE = "b" * 64
VALUES = [Value(f"prop-{i}", f"{i:064x}", f"2026-11-28T10:0{i}:00Z") for i in range(1, 4)]
TIMING = Timing(timeout=3.0)


@dataclass
class Member:
    member_id: str
    eligible: frozenset[Value]
    persisted: Record
    published: list[Record] = field(default_factory=list)
    view: dict[str, int] = field(default_factory=dict)  # peer -> index into its published list
    signed: set[str] = field(default_factory=set)


class Agreement(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.members: dict[str, Member] = {}
        self.links: dict[tuple[str, str], int] = {}
        #: Each member's own clock (skewed: they move apart).
        self.clock: dict[str, float] = {}

    @rule(
        size=st.sampled_from([1, 2, 3, 3, 3, 3, 4, 5]),
        eligible=st.lists(st.sets(st.sampled_from(VALUES)), min_size=5, max_size=5),
        links=st.lists(st.sampled_from([0, 0, 1, 2]), min_size=25, max_size=25),
    )
    @precondition(lambda self: not self.members)
    def found(self, size: int, eligible: list[set[Value]], links: list[int]) -> None:
        """``links``: for each (reader, peer), how the reader's reads of that peer fare this run:
        0 always fresh, 1 sometimes lost, 2 lost until the adversary stops (swarm testing: a whole
        run with one bad link finds what independent coin flips per read almost never line up)."""
        ids = [f"bank-{chr(ord('a') + i)}" for i in range(size)]
        self.links = {(r, p): links[(i * 5 + j) % len(links)] for i, r in enumerate(ids) for j, p in enumerate(ids)}
        for i in range(size):
            member_id = f"bank-{chr(ord('a') + i)}"
            record = agreement.fresh(member_id, VERSION, BASE)
            self.members[member_id] = Member(member_id, frozenset(eligible[i]), record, [record])

    def _electorate(self) -> list[str]:
        return sorted(self.members)

    def _jitter(self, member_id: str) -> Timing:
        now = self.clock.get(member_id, 0.0)
        return Timing(TIMING.timeout, TIMING.timeout * agreement.digest_ballot(member_id, int(now)))

    def _view(self, m: Member) -> dict[str, Record]:
        return {p: self.members[p].published[i] for p, i in m.view.items()}

    def _step(self, m: Member, *, persist: bool, publish: bool) -> None:
        result = agreement.step(
            m.persisted, self._view(m), electorate=self._electorate(), version=VERSION, base=BASE,
            eligible=m.eligible, now=self.clock.get(m.member_id, 0.0), timing=self._jitter(m.member_id),
        )  # fmt: skip
        if not persist:
            return  # the instance died before it stored anything: as if the step never ran
        m.persisted = result.record
        if result.record.signed:
            m.signed.add(result.record.signed)
        if publish and m.published[-1] != result.record:
            m.published.append(result.record)

    @rule(
        data=st.data(),
        persist=st.sampled_from([True, True, True, False]),
        publish=st.sampled_from([True, True, False]),
        waited=st.sampled_from([0.0, 0.0, 0.5, 7.0]),
    )
    @precondition(lambda self: self.members)
    def step(self, data: st.DataObject, persist: bool, publish: bool, waited: float) -> None:
        """A member reads some peers (latest, or a record it missed), waits a while on its own clock, steps."""
        m = self.members[data.draw(st.sampled_from(self._electorate()))]
        for peer in self._electorate():
            link = self.links[(m.member_id, peer)]
            if link == 0 or (link == 1 and data.draw(st.booleans())):
                self._read(m, self.members[peer], data)
        self.clock[m.member_id] = self.clock.get(m.member_id, 0.0) + waited
        self._step(m, persist=persist, publish=publish)

    @rule(data=st.data())
    @precondition(lambda self: self.members)
    def publish_late(self, data: st.DataObject) -> None:
        """An instance that persisted but died before publishing is replaced; the new one publishes."""
        m = self.members[data.draw(st.sampled_from(self._electorate()))]
        if m.published[-1] != m.persisted:
            m.published.append(m.persisted)

    @rule(data=st.data())
    @precondition(lambda self: self.members)
    def read(self, data: st.DataObject) -> None:
        """A read returns any record the peer published since the reader's last read (lost, late, repeated)."""
        reader = self.members[data.draw(st.sampled_from(self._electorate()))]
        self._read(reader, self.members[data.draw(st.sampled_from(self._electorate()))], data)

    def _read(self, reader: Member, peer: Member, data: st.DataObject) -> None:
        if peer is reader:
            return
        low = reader.view.get(peer.member_id, 0)
        latest = len(peer.published) - 1
        reader.view[peer.member_id] = data.draw(st.one_of(st.just(latest), st.integers(low, latest)))

    @invariant()
    def a_member_signs_one_document_per_version(self) -> None:
        for m in self.members.values():
            assert len(m.signed) <= 1, f"{m.member_id} signed {m.signed}"

    @invariant()
    def no_two_members_sign_different_documents(self) -> None:
        hashes = set().union(*(m.signed for m in self.members.values())) if self.members else set()
        assert len(hashes) <= 1, f"two documents signed for one version: {hashes}"

    def teardown(self) -> None:
        """Progress: the adversary stops; everyone reads everything fresh and steps, round after round."""
        if not self.members:
            return
        wanted = set().union(*(m.eligible for m in self.members.values()))
        accepted = {r.accepted[1] for m in self.members.values() for r in m.published if r.accepted}
        if not wanted and not accepted:
            return
        for _ in range(40):
            for m in self.members.values():
                m.view = {p: len(self.members[p].published) - 1 for p in self.members if p != m.member_id}
            for m in self.members.values():
                self._step(m, persist=True, publish=True)
            if all(m.signed for m in self.members.values()):
                break
            for member_id in self.members:
                self.clock[member_id] = self.clock.get(member_id, 0.0) + 1.0
        unsigned = [m.member_id for m in self.members.values() if not m.signed]
        assert not unsigned, f"no value chosen after 40 fair rounds; unsigned: {unsigned}"
        (signed,) = set().union(*(m.signed for m in self.members.values()))
        assert signed in {v.hash for v in wanted | accepted}


Agreement.TestCase.settings = settings(
    max_examples=600, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestAgreement = Agreement.TestCase


def test_the_first_ballot_of_a_version_goes_straight_to_accept_at_its_turn_leader() -> None:
    electorate = ["bank-a", "bank-b", "bank-c"]
    leader = agreement.leader_of(VERSION, electorate)
    mine = agreement.fresh(leader, VERSION, BASE)
    first = agreement.step(mine, {}, electorate=electorate, version=VERSION, base=BASE, eligible=[VALUES[0]], now=0)
    assert first.reason == agreement.Reason.LEADING
    assert first.record.phase == agreement.Phase.ACCEPT and first.record.accepted == ((0, leader), VALUES[0])


def test_a_follower_with_nothing_eligible_waits_and_accepts_what_the_leader_asks() -> None:
    electorate = ["bank-a", "bank-b", "bank-c"]
    leader = agreement.leader_of(VERSION, electorate)
    follower = next(m for m in electorate if m != leader)
    led = agreement.step(
        agreement.fresh(leader, VERSION, BASE), {}, electorate=electorate, version=VERSION, base=BASE,
        eligible=[VALUES[1]], now=0,
    ).record  # fmt: skip
    answer = agreement.step(
        agreement.fresh(follower, VERSION, BASE), {leader: led}, electorate=electorate, version=VERSION,
        base=BASE, eligible=[], now=0.2,
    )  # fmt: skip
    assert answer.reason == agreement.Reason.SIGNED  # its acceptance made the majority: it signs at once
    assert answer.record.signed == VALUES[1].hash


def test_a_change_eligible_after_a_quiet_spell_is_left_to_ballot_0s_leader() -> None:
    """Records made long ago (the last adoption) and a value that only now became eligible everywhere:
    the members that do not lead ballot 0 wait for it, as if the agreement had just started (before,
    every one of them started a phase 1 at once, duelling, and the fast path was never taken)."""
    electorate = ["bank-a", "bank-b", "bank-c", "bank-d"]
    kw = {"electorate": electorate, "version": VERSION, "base": BASE}
    leader = agreement.leader_of(VERSION, electorate)
    quiet = {m: agreement.Record(m, VERSION, BASE, moved_at=0.0) for m in electorate}
    steps = {m: agreement.step(quiet[m], {}, eligible=[VALUES[0]], now=100.0, **kw) for m in electorate}
    assert steps[leader].reason == agreement.Reason.LEADING and steps[leader].record.leading == (0, leader)
    for m in electorate:
        if m != leader:
            assert steps[m].reason == agreement.Reason.WAITING and steps[m].record.leading is None
            assert steps[m].record.engaged and steps[m].record.moved_at == 100.0
    # and if ballot 0's leader is gone, a follower starts ballot 1 once the timeout has passed since then
    follower = next(m for m in electorate if m != leader)
    later = agreement.step(steps[follower].record, {}, eligible=[VALUES[0]], now=100.0 + 3.0, **kw)
    assert later.reason == agreement.Reason.LEADING and later.record.leading == (1, follower)


def test_a_record_about_an_older_base_starts_over_for_the_new_one() -> None:
    old = agreement.Record("bank-a", VERSION - 1, "a" * 64, signed="f" * 64)
    moved = agreement.step(old, {}, electorate=["bank-a"], version=VERSION, base=BASE, eligible=[], now=5)
    assert moved.reason == agreement.Reason.NEW_BASE and moved.record.signed is None


def test_a_higher_ballot_carries_the_value_a_majority_already_accepted() -> None:
    """bank-b's v1 is chosen at ballot (0, bank-b) (bank-a and bank-b accepted it), bank-c never saw
    that and wants v2: its ballot (1, bank-c) gets bank-a's promise, which reports v1 accepted, so
    bank-c must ask for v1, never v2 (Paxos's phase 1); bank-b then signs v1 as bank-a did."""
    electorate = ["bank-a", "bank-b", "bank-c"]
    kw = {"electorate": electorate, "version": VERSION, "base": BASE}
    b = agreement.step(agreement.fresh("bank-b", VERSION, BASE), {}, eligible=[VALUES[0]], now=0, **kw).record
    a = agreement.step(agreement.fresh("bank-a", VERSION, BASE), {"bank-b": b}, eligible=[], now=1, **kw)
    assert a.record.signed == VALUES[0].hash
    waiting = agreement.step(agreement.fresh("bank-c", VERSION, BASE), {}, eligible=[VALUES[1]], now=5, **kw)
    assert waiting.reason == agreement.Reason.WAITING  # its stall clock starts when it has v2 to agree on
    c = agreement.step(waiting.record, {}, eligible=[VALUES[1]], now=9, **kw).record
    assert c.phase == agreement.Phase.PREPARE and c.leading == (1, "bank-c")
    a2 = agreement.step(a.record, {"bank-b": b, "bank-c": c}, eligible=[], now=10, **kw).record
    assert a2.promised == (1, "bank-c") and a2.accepted == ((0, "bank-b"), VALUES[0])
    c2 = agreement.step(c, {"bank-a": a2}, eligible=[VALUES[1]], now=11, **kw).record
    assert c2.phase == agreement.Phase.ACCEPT and c2.proposal == VALUES[0]
    b2 = agreement.step(b, {"bank-c": c2}, eligible=[VALUES[0]], now=12, **kw).record
    assert b2.signed == VALUES[0].hash
