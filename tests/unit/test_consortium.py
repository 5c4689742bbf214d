"""Members agreeing on the chain through their own published containers, on the fakes.

Each test builds a consortium where every member has its own vault, storage and published
container (``consortium_world``), lets the members' services tick, and reads the outcome from what
each member stored: its verified chain, what it signed, what it refused.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from shared.decisions import chain
from shared.decisions import consortium as rules
from shared.services.consortium import HEAD, FastFollow, TickOutcome, chain_path
from shared.services.status import consortium_view
from tests.support.consortium_world import World, chain_time, endpoint


def sign_head(member: Any, kid: str, head: dict[str, Any]) -> str:
    return chain.b64u(member.keys.sign(kid, hashlib.sha256(rules.head_signing_bytes(head)).digest()))


def admitted(world: World, member_id: str, version: int) -> bool:
    return all(v == version for v in world.versions().values()) and (
        world.members[member_id].service.head() is not None
    )


@pytest.fixture
def world() -> World:
    w = World()
    w.found("bank-a", "bank-b")
    w.run(3)
    return w


def test_a_newcomer_follows_the_genesis_from_the_members_it_was_introduced_to(world: World) -> None:
    assert world.versions() == {"bank-a": 0, "bank-b": 0, "bank-c": 0, "bank-d": 0}
    assert world.members["bank-c"].service.head().hash == world.genesis  # type: ignore[union-attr]


def test_a_bank_joins_once_a_majority_approves_and_every_member_adopts_the_version(world: World) -> None:
    proposal_id = world.propose_admission("bank-c")
    world.members["bank-a"].service.decide(proposal_id, "approve")
    world.run(8)
    assert world.versions()["bank-a"] == 0, "one approval of two is not a majority"
    world.members["bank-b"].service.decide(proposal_id, "approve")
    world.run(10, until=lambda: admitted(world, "bank-c", 1))
    assert world.versions() == {"bank-a": 1, "bank-b": 1, "bank-c": 1, "bank-d": 1}
    assert world.members["bank-c"].membership == [("admitted", 1)]
    version_1 = world.members["bank-d"].service.head()
    assert version_1 is not None and version_1.document.member_ids == ("bank-a", "bank-b", "bank-c")
    assert {e["version"] for e in world.members["bank-a"].events("consortium.version_adopted")} == {1}


def test_two_admissions_approved_at_once_both_land_without_anyone_approving_again(world: World) -> None:
    c, d = world.propose_admission("bank-c"), world.propose_admission("bank-d")
    for founder in ("bank-a", "bank-b"):
        world.members[founder].service.decide(c, "approve")
        world.members[founder].service.decide(d, "approve")
    world.run(30, until=lambda: admitted(world, "bank-d", 2))
    head = world.members["bank-a"].service.head()
    assert head is not None and head.version == 2
    assert head.document.member_ids == ("bank-a", "bank-b", "bank-c", "bank-d")
    assert {world.members[m].service.head().hash for m in world.members} == {head.hash}  # type: ignore[union-attr]


def test_a_proposal_refused_by_enough_members_is_rejected_and_never_lands(world: World) -> None:
    proposal_id = world.propose_admission("bank-d")
    world.members["bank-a"].service.decide(proposal_id, "reject")
    world.run(6)
    view = consortium_view(world.members["bank-d"].service)
    (proposal,) = view["proposals"]
    assert proposal["status"] == "rejected" and proposal["rejected_by"] == ["bank-a"]
    assert world.versions()["bank-a"] == 0


def test_the_same_decision_twice_changes_nothing_and_a_changed_mind_is_refused(world: World) -> None:
    proposal_id = world.propose_admission("bank-c")
    service = world.members["bank-a"].service
    assert service.decide(proposal_id, "approve") == "approve"
    assert service.decide(proposal_id, "approve") == "approve"
    with pytest.raises(Exception, match="already decided approve"):
        service.decide(proposal_id, "reject")


def signed_by(world: World, base: chain.Trusted, unsigned: dict[str, Any], *members: str) -> dict[str, Any]:
    """``unsigned`` signed by ``members``, each with its own vault's key as ``base`` lists it."""
    digest = bytes.fromhex(chain.document_hash(unsigned))
    signatures = []
    for m in members:
        kid = base.document.member(m).governance_key.kid  # type: ignore[union-attr]
        signatures.append({"member_id": m, "kid": kid, "sig": chain.b64u(world.members[m].keys.sign(kid, digest))})
    return chain.with_signatures(unsigned, signatures)


def join(world: World, member_id: str, approvers: tuple[str, ...]) -> None:
    proposal_id = world.propose_admission(member_id)
    target = (world.members["bank-a"].version or 0) + 1
    for approver in approvers:
        world.members[approver].service.decide(proposal_id, "approve")
    world.run(20, until=lambda: admitted(world, member_id, target))
    assert world.members[member_id].membership[-1] == ("admitted", target)


def test_a_member_leaves_without_anyone_approving_and_is_out_of_the_next_version(world: World) -> None:
    join(world, "bank-c", ("bank-a", "bank-b"))
    world.members["bank-c"].service.propose(rules.Proposal(
        proposal_id="prop-leave-bank-c", kind=chain.Kind.LEAVE, member_id="bank-c", proposer="bank-c",
        proposed_at=chain_time(world.clock), reason="merger",
    ))  # fmt: skip
    world.run(20, until=lambda: world.members["bank-a"].version == 2 and world.members["bank-c"].version == 2)
    head = world.members["bank-a"].service.head()
    assert head is not None and head.document.member_ids == ("bank-a", "bank-b")
    assert world.members["bank-c"].membership[-1] == ("left", 2)


def test_a_removal_needs_a_majority_without_the_member_removed(world: World) -> None:
    join(world, "bank-c", ("bank-a", "bank-b"))
    join(world, "bank-d", ("bank-a", "bank-b"))
    remove = rules.Proposal(
        proposal_id="prop-remove-bank-d", kind=chain.Kind.REMOVE, member_id="bank-d", proposer="bank-a",
        proposed_at=chain_time(world.clock), reason="unpaid fees",
    )  # fmt: skip
    world.members["bank-a"].service.propose(remove)
    world.members["bank-b"].service.decide(remove.proposal_id, "approve")
    world.run(10)
    assert world.versions()["bank-a"] == 2, "two of the three others is not more than half of four"
    world.members["bank-c"].service.decide(remove.proposal_id, "approve")
    world.run(20, until=lambda: all(v == 3 for v in world.versions().values()))
    head = world.members["bank-d"].service.head()
    assert head is not None and head.version == 3 and "bank-d" not in head.document.member_ids
    assert world.members["bank-d"].membership[-1] == ("removed", 3)


def test_an_admission_lands_while_the_first_leader_is_down() -> None:
    world = World(("bank-a", "bank-b", "bank-c", "bank-d"))
    world.found("bank-a", "bank-b", "bank-c")
    world.run(3)
    world.down = {"bank-b"}  # the turn leader of version 1 among a, b, c
    world.published.down.add(endpoint("bank-b"))
    proposal_id = world.propose_admission("bank-d")
    world.members["bank-a"].service.decide(proposal_id, "approve")
    world.members["bank-c"].service.decide(proposal_id, "approve")
    rounds = world.run(60, until=lambda: world.members["bank-d"].version == 1 and world.members["bank-a"].version == 1)
    assert world.members["bank-d"].membership == [("admitted", 1)], f"not admitted in {rounds} rounds"


def test_each_member_signs_at_most_one_document_per_version_and_records_it_first(world: World) -> None:
    join(world, "bank-c", ("bank-a", "bank-b"))
    join(world, "bank-d", ("bank-a", "bank-b", "bank-c"))
    for member in world.members.values():
        signed = [d.body for d in member.state.read_all("signed/")]
        versions = [s["version"] for s in signed]
        assert len(versions) == len(set(versions))
        for s in signed:
            adopted = member.service.verified()[s["version"]]
            assert adopted.hash == s["hash"], "a member signed something other than what was adopted"


# --- dishonest members and storage -------------------------------------------------------------


def test_a_forged_version_published_by_a_member_is_refused_and_changes_nothing(world: World) -> None:
    join(world, "bank-c", ("bank-a", "bank-b"))
    dishonest = world.members["bank-c"]
    base = dishonest.service.head()
    assert base is not None
    # bank-c writes a version 2 that expels bank-a, signed by itself alone, and a head announcing it
    forged = chain.unsigned_next(base, {"kind": "remove", "member_id": "bank-a", "proposal_id": "prop-coup"},
                                 issued_at=chain_time(world.clock))  # fmt: skip
    kid = base.document.member("bank-c").governance_key.kid  # type: ignore[union-attr]
    sig = chain.b64u(dishonest.keys.sign(kid, bytes.fromhex(chain.document_hash(forged))))
    forged = chain.with_signatures(forged, [{"member_id": "bank-c", "kid": kid, "sig": sig}])
    world.published.write(endpoint("bank-c"), chain_path(2), chain.published_bytes(forged))
    head = rules.parse_head(world.published.containers[endpoint("bank-c")][HEAD][0])
    head = {**head, "chain": {"version": 2, "hash": chain.document_hash(forged)}, "seq": head["seq"] + 1}
    head["sig"] = chain.b64u(dishonest.keys.sign(kid, hashlib.sha256(rules.head_signing_bytes(head)).digest()))
    world.published.write(endpoint("bank-c"), HEAD, chain.canonical(head))
    world.tick("bank-a", "bank-b", "bank-d")
    assert {world.members[m].version for m in ("bank-a", "bank-b", "bank-d")} == {1}
    refused = [d.body for d in world.members["bank-a"].state.read_all("rejections/")]
    assert any("version 2 from bank-c" in r["message"] and r["reason"] == "signatures" for r in refused)


def test_a_head_signed_with_a_key_the_chain_does_not_list_is_refused(world: World) -> None:
    eve = world.members["bank-d"]  # not a member: mints a key named like bank-b's in its own vault
    fake = eve.keys.create_key("bank-b-governance", "EC", tags={})
    head = rules.parse_head(world.published.containers[endpoint("bank-b")][HEAD][0])
    head = {**head, "kid": fake.kid, "approvals": {"prop-anything": "approve"}, "seq": head["seq"] + 1}
    head["sig"] = chain.b64u(eve.keys.sign(fake.kid, hashlib.sha256(rules.head_signing_bytes(head)).digest()))
    world.published.write(endpoint("bank-b"), HEAD, chain.canonical(head))
    world.tick("bank-a")
    refused = [d.body["message"] for d in world.members["bank-a"].state.read_all("rejections/")]
    assert any("head of bank-b" in m and "does not list" in m for m in refused)
    assert "prop-anything" not in world.members["bank-a"].service.memory.heads["bank-b"].approvals


def test_two_valid_documents_of_one_version_are_a_fork_naming_the_members_who_signed_both(world: World) -> None:
    join(world, "bank-c", ("bank-a", "bank-b"))
    join(world, "bank-d", ("bank-a", "bank-b"))
    base = world.members["bank-a"].service.verified()[1]
    # bank-a and bank-b (a majority of version 1) also sign another version 2: a removal of bank-c
    other = chain.unsigned_next(base, {"kind": "remove", "member_id": "bank-c", "proposal_id": "prop-other"},
                                issued_at=chain_time(world.clock))  # fmt: skip
    other = signed_by(world, base, other, "bank-a", "bank-b")
    world.published.write(endpoint("bank-b"), chain_path(2), chain.published_bytes(other))
    dishonest = world.members["bank-b"]
    kid = base.document.member("bank-b").governance_key.kid  # type: ignore[union-attr]
    head = rules.parse_head(world.published.containers[endpoint("bank-b")][HEAD][0])
    head = {**head, "chain": {"version": 2, "hash": chain.document_hash(other)}, "seq": head["seq"] + 1}
    head["sig"] = chain.b64u(dishonest.keys.sign(kid, hashlib.sha256(rules.head_signing_bytes(head)).digest()))
    world.published.write(endpoint("bank-b"), HEAD, chain.canonical(head))
    world.tick("bank-c")
    fork = consortium_view(world.members["bank-c"].service)["chain"]["fork"]
    assert fork is not None and fork["version"] == 2 and fork["signed_both"] == ["bank-a", "bank-b"]
    assert world.members["bank-c"].events("consortium.fork")[0]["signed_both"] == ["bank-a", "bank-b"]
    # and it applies no further change
    assert world.members["bank-c"].service.tick() == TickOutcome(fork=True)


def test_garbage_oversize_and_truncated_heads_are_refused_and_recorded(world: World) -> None:
    for _label, data in [("garbage", b"\x00\x01garbage"), ("truncated", b'{"member_id":"bank-b"'),
                        ("oversize", b"{" + b" " * (rules.MAX_HEAD_BYTES + 10) + b"}")]:  # fmt: skip
        world.published.write(endpoint("bank-b"), HEAD, data)
        world.tick("bank-a")
    refused = [d.body for d in world.members["bank-a"].state.read_all("rejections/")]
    assert len([r for r in refused if "head of bank-b" in r["message"]]) == 3
    assert world.members["bank-a"].version == 0


def _claim(world: World, member_id: str, version: int, digest: str) -> None:
    """``member_id`` publishes a head, signed with its own key, that claims ``version`` with ``digest``."""
    member = world.members[member_id]
    kid = member.keys.get_key(f"{member_id}-governance").kid  # type: ignore[union-attr]
    head = rules.parse_head(world.published.containers[endpoint(member_id)][HEAD][0])
    head = {**head, "chain": {"version": version, "hash": digest}, "seq": head["seq"] + 1}
    head["sig"] = sign_head(member, kid, head)
    world.published.write(endpoint(member_id), HEAD, chain.canonical(head))


def test_a_head_naming_another_genesis_is_refused_and_recorded(world: World) -> None:
    # bank-b publishes a genesis of its own (valid signature, not the genesis everyone was given)
    dishonest = world.members["bank-b"]
    own = chain.unsigned_genesis("credit-consortium", [dishonest.entry()], convener="bank-b",
                                 issued_at="2027-01-01T00:00:00Z")  # fmt: skip
    kid = dishonest.keys.get_key("bank-b-governance").kid  # type: ignore[union-attr]
    sig = chain.b64u(dishonest.keys.sign(kid, bytes.fromhex(chain.document_hash(own))))
    own = chain.with_signatures(own, [{"member_id": "bank-b", "kid": kid, "sig": sig}])
    world.published.write(endpoint("bank-b"), chain_path(0), chain.published_bytes(own))
    _claim(world, "bank-b", 0, chain.document_hash(own))
    world.tick("bank-a")
    assert world.members["bank-a"].service.head().hash == world.genesis  # type: ignore[union-attr]
    refused = [d.body for d in world.members["bank-a"].state.read_all("rejections/")]
    assert any("version 0 from bank-b" in r["message"] and r["reason"] == "genesis_hash" for r in refused)


def test_an_oversize_version_is_refused_and_recorded_and_each_oversize_refusal_has_its_own_record(
    world: World,
) -> None:
    join(world, "bank-c", ("bank-a", "bank-b"))
    for member_id in ("bank-b", "bank-c"):
        world.published.write(endpoint(member_id), chain_path(2), b" " * (chain.MAX_DOCUMENT_BYTES + 1))
        _claim(world, member_id, 2, "ab" * 32)
    world.tick("bank-a")
    world.published.write(endpoint("bank-c"), HEAD, b" " * (rules.MAX_HEAD_BYTES + 1))
    world.published.write(endpoint("bank-b"), HEAD, b" " * (rules.MAX_HEAD_BYTES + 1))
    world.tick("bank-a")
    assert world.members["bank-a"].version == 1
    refused = [d.body for d in world.members["bank-a"].state.read_all("rejections/")]
    for source in ("version 2 from bank-b", "version 2 from bank-c", "head of bank-b", "head of bank-c"):
        assert [r["reason"] for r in refused if r["message"].startswith(source)] == ["oversize"], source


def test_an_idle_tick_lists_its_own_chain_a_fixed_number_of_times_whatever_the_number_of_members() -> None:
    """Following N members that change nothing costs one conditional read per member; listing this
    member's own chain must not be repeated per member (the idle cost a deployment pays every tick)."""

    def lists_per_idle_tick(ids: tuple[str, ...]) -> int:
        world = World(ids)
        world.found(*ids)
        world.run(rounds=3)
        me = world.members[ids[0]]
        calls: list[str] = []
        listing = me.state.list_paths

        def counted(prefix: str) -> list[str]:
            calls.append(prefix)
            return listing(prefix)

        me.state.list_paths = counted  # type: ignore[method-assign]
        me.service.tick()
        return calls.count("chain/")

    few = lists_per_idle_tick(("bank-a", "bank-b", "bank-c"))
    many = lists_per_idle_tick(tuple(f"bank-{c}" for c in "abcdefghijkl"))
    assert many == few, f"{few} lists of chain/ with 3 members, {many} with 12"


def test_a_tick_reads_its_own_state_and_lists_its_chain_once_however_many_proposals_are_open(world: World) -> None:
    """Each open proposal once cost a read of this member's own state per tick (and each head() a
    listing of its chain): with a dozen proposals in the heads, a tick took a second on Azurite and
    admissions slowed as proposals piled up (make bench, onboarding)."""
    for i in range(12):
        member = world.members["bank-c"]
        member.service.propose(rules.Proposal(
            proposal_id=f"prop-admit-bank-c-{i}", kind=chain.Kind.ADMIT, member_id="bank-c",
            entry=chain.Member.model_validate(member.entry()), proposer="bank-c", proposed_at=chain_time(world.clock),
        ))  # fmt: skip
    world.run(3)
    me = world.members["bank-a"]
    assert len(consortium_view(me.service)["proposals"]) >= 12
    reads: list[str] = []
    read, listing = me.state.read, me.state.list_paths
    me.state.read = lambda path: (reads.append(path), read(path))[1]  # type: ignore[method-assign]
    me.state.list_paths = lambda prefix: (reads.append("list " + prefix), listing(prefix))[1]  # type: ignore[method-assign]
    me.service.tick()
    assert reads.count("consortium/self.json") == 1, reads
    assert reads.count("list chain/") == 1, reads


# --- following closely while a change is in flight (CONSORTIUM_FAST_FOLLOW_*) --------------------


def close_follower(world: World, member_id: str, quiet: float = 5.0) -> Any:
    service = world.members[member_id].service
    service.fast = FastFollow(interval=0.25, quiet=quiet, budget=60.0)
    return service


def test_an_idle_consortium_is_read_once_per_timer_occurrence(world: World) -> None:
    service = close_follower(world, "bank-a")
    outcome = service.follow_closely(lambda: True, sleep=world.clock.advance)
    assert (outcome.ticks, outcome.in_flight) == (1, False)


def test_an_admission_under_way_is_followed_to_its_version_within_one_timer_occurrence(world: World) -> None:
    proposal_id = world.propose_admission("bank-c")
    for founder in ("bank-a", "bank-b"):
        world.members[founder].service.decide(proposal_id, "approve")
    world.tick("bank-b", "bank-c", "bank-d")  # their heads now carry the approval and the pre-signature
    service = close_follower(world, "bank-a")

    def others_act_meanwhile(seconds: float) -> None:
        world.clock.advance(seconds)
        for member_id in ("bank-b", "bank-c", "bank-d"):
            world.members[member_id].service.tick()

    outcome = service.follow_closely(lambda: True, sleep=others_act_meanwhile)
    assert outcome.adopted == 1, outcome
    assert 1 < outcome.ticks <= 60 / 0.25
    assert world.members["bank-a"].version == 1


def test_the_approval_that_completes_the_majority_is_followed_without_waiting_for_the_next_timer(
    world: World,
) -> None:
    """While a proposal gathers approvals and the members are moving, a tick goes on reading: the
    approval that completes the majority is picked up within the same timer occurrence."""
    proposal_id = world.propose_admission("bank-c")
    world.members["bank-a"].service.decide(proposal_id, "approve")
    world.tick("bank-c", "bank-d")  # the proposal and its subject's pre-signature are out
    service = close_follower(world, "bank-a")
    slept: list[float] = []

    def bank_b_decides_meanwhile(seconds: float) -> None:
        slept.append(seconds)
        world.clock.advance(seconds)
        if len(slept) == 2:
            world.members["bank-b"].service.decide(proposal_id, "approve")
        for member_id in ("bank-b", "bank-c", "bank-d"):
            world.members[member_id].service.tick()

    outcome = service.follow_closely(lambda: True, sleep=bank_b_decides_meanwhile)
    assert outcome.adopted == 1, outcome


def test_a_change_that_stops_moving_falls_back_to_the_timers_pace(world: World) -> None:
    proposal_id = world.propose_admission("bank-c")
    for founder in ("bank-a", "bank-b"):
        world.members[founder].service.decide(proposal_id, "approve")
    world.tick()
    world.down = {"bank-b", "bank-c", "bank-d"}  # nobody else answers: the vote cannot complete
    service = close_follower(world, "bank-a", quiet=2.0)
    first = service.follow_closely(lambda: True, sleep=world.clock.advance)
    assert first.in_flight and first.adopted is None
    assert first.ticks <= 2.0 / 0.25 + 1, "it stops once nothing moved for CONSORTIUM_FAST_FOLLOW_SECONDS"
    world.clock.advance(10)
    again = service.follow_closely(lambda: True, sleep=world.clock.advance)
    assert again.ticks == 1, "a change that is stuck costs one read per timer occurrence"


def test_following_closely_stops_when_the_deployment_is_no_longer_coordinator(world: World) -> None:
    proposal_id = world.propose_admission("bank-c")
    for founder in ("bank-a", "bank-b"):
        world.members[founder].service.decide(proposal_id, "approve")
    world.tick()
    service = close_follower(world, "bank-a")
    outcome = service.follow_closely(lambda: False, sleep=world.clock.advance)
    assert outcome.ticks == 1


def test_an_outcome_to_hand_on_ends_following_without_waiting_for_another_interval(world: World) -> None:
    """The timer's activation or retirement is delivered when its invocation returns: once it holds
    one (``active()`` turns false), following stops before sleeping, not one interval later."""
    proposal_id = world.propose_admission("bank-c")
    for founder in ("bank-a", "bank-b"):
        world.members[founder].service.decide(proposal_id, "approve")
    world.tick()
    service = close_follower(world, "bank-a")
    slept: list[float] = []
    outcome = service.follow_closely(lambda: False, sleep=slept.append)
    assert outcome.in_flight and outcome.ticks == 1 and slept == []


def test_fast_following_off_reads_once_per_timer_occurrence_even_with_a_change_in_flight(world: World) -> None:
    proposal_id = world.propose_admission("bank-c")
    for founder in ("bank-a", "bank-b"):
        world.members[founder].service.decide(proposal_id, "approve")
    world.tick()
    service = close_follower(world, "bank-a", quiet=0.0)
    assert service.follow_closely(lambda: True, sleep=world.clock.advance).ticks == 1


def test_a_parameters_version_signed_by_a_majority_elsewhere_is_adopted_and_changes_no_membership(
    world: World,
) -> None:
    """Contract v3: this control plane cannot propose a parameters change yet, but a version of that kind
    that verifies (a majority, the epoch stepping) is adopted like any other and leaves every member as it
    was, its proposer included."""
    join(world, "bank-c", ("bank-a", "bank-b"))
    base = world.members["bank-a"].service.verified()[1]
    network = {"epoch": 1, "parameters_sha256": "c" * 64, "switch_at": chain_time(world.clock)}
    change = {"kind": "parameters", "member_id": "bank-c", "proposal_id": "prop-params-1"}
    moved = chain.unsigned_next(base, change, issued_at=chain_time(world.clock), network=network)
    moved = signed_by(world, base, moved, "bank-a", "bank-c")
    world.published.write(endpoint("bank-c"), chain_path(2), chain.published_bytes(moved))
    _claim(world, "bank-c", 2, chain.document_hash(moved))
    memberships = {m: list(world.members[m].membership) for m in world.members}
    world.run(10, until=lambda: all(world.members[m].version == 2 for m in ("bank-a", "bank-b", "bank-c")))
    for m in ("bank-a", "bank-b", "bank-c"):
        head = world.members[m].service.head()
        assert head is not None and head.document.network is not None and head.document.network.epoch == 1, m
    assert {m: list(world.members[m].membership) for m in world.members} == memberships


def test_a_parameters_proposal_is_refused_as_bad_input_naming_why() -> None:
    with pytest.raises(ValueError, match="a parameters change is not proposed this way yet"):
        rules.Proposal.model_validate({"proposal_id": "prop-p", "kind": "parameters", "member_id": "bank-a",
                                       "proposer": "bank-a", "proposed_at": "2026-12-01T10:00:00Z"})  # fmt: skip
