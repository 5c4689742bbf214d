"""Onboarding and offboarding on the fakes: every transition, duplicates, rejections, poison and resume."""

from __future__ import annotations

import json

import pytest

from shared.decisions.onboarding import Intake, Vote, approvals_needed, decide_intake, decide_vote
from shared.errors import BusyError
from shared.services import onboarding as ob
from shared.services.network_map import verify_map
from tests.unit.onboarding_world import World, request


@pytest.fixture
def world() -> World:
    return World()


def founded(world: World) -> World:
    world.onboard("bank-a")
    world.onboard("bank-b")
    return world


# ---------------------------------------------------------------- pure decisions


@pytest.mark.parametrize(
    ("record", "founders", "expected"),
    [
        (None, ("bank-c",), Intake.CREATE_FOUNDER),
        (None, (), Intake.CREATE_PENDING),
        ({"request_id": "r1", "status": "provisioning"}, (), Intake.RESUME),
        ({"request_id": "r0", "status": "active"}, (), Intake.CONFLICT),
        ({"request_id": "r0", "status": "pending_approval"}, (), Intake.CONFLICT),
        ({"request_id": "r0", "status": "failed"}, (), Intake.CONFLICT),
        ({"request_id": "r0", "status": "rejected"}, (), Intake.CREATE_PENDING),
        ({"request_id": "r0", "status": "offboarded"}, ("bank-c",), Intake.CREATE_FOUNDER),
    ],
)
def test_intake_decisions(record: dict | None, founders: tuple[str, ...], expected: Intake) -> None:
    assert decide_intake(record, "r1", "bank-c", founders).outcome is expected


@pytest.mark.parametrize(
    ("active", "rule", "needed"),
    [(0, "majority", 1), (1, "majority", 1), (2, "majority", 2), (3, "majority", 2), (4, "majority", 3),
     (5, "all", 5), (5, "2", 2), (2, "3", 2)],
)  # fmt: skip
def test_quorum(active: int, rule: str, needed: int) -> None:
    assert approvals_needed(active, rule) == needed


def test_quorum_rule_is_validated() -> None:
    with pytest.raises(ValueError, match="APPROVAL_QUORUM"):
        approvals_needed(3, "most")


PENDING = {"request_id": "r1", "status": "pending_approval", "votes": {}}


@pytest.mark.parametrize(
    ("record", "approver", "decision", "active", "outcome", "reason"),
    [
        (None, "bank-a", "approve", ("bank-a",), Vote.REFUSED, "unknown_request"),
        ({**PENDING, "request_id": "r0"}, "bank-a", "approve", ("bank-a",), Vote.REFUSED, "unknown_request"),
        (PENDING, "bank-z", "approve", ("bank-a",), Vote.REFUSED, "not_a_member"),
        ({**PENDING, "status": "active"}, "bank-a", "approve", ("bank-a",), Vote.REFUSED, "closed"),
        ({**PENDING, "votes": {"bank-a": {"decision": "approve", "signature": "s"}}}, "bank-a", "approve",
         ("bank-a", "bank-b"), Vote.DUPLICATE, "duplicate"),
        ({**PENDING, "votes": {"bank-a": {"decision": "approve", "signature": "other"}}}, "bank-a", "reject",
         ("bank-a", "bank-b"), Vote.REFUSED, "replayed"),
        (PENDING, "bank-a", "approve", ("bank-a",), Vote.ADMITTED, "quorum"),
        (PENDING, "bank-a", "approve", ("bank-a", "bank-b"), Vote.RECORDED, "counted"),
        (PENDING, "bank-a", "reject", ("bank-a", "bank-b"), Vote.REJECTED, "quorum_impossible"),
        (PENDING, "bank-a", "reject", ("bank-a", "bank-b", "bank-c"), Vote.RECORDED, "counted"),
        ({**PENDING, "votes": {"bank-x": {"decision": "approve", "signature": "t"}}}, "bank-a", "approve",
         ("bank-a", "bank-b"), Vote.RECORDED, "counted"),  # a vote of a member that has since left counts no more
    ],
)  # fmt: skip
def test_vote_decisions(
    record: dict | None, approver: str, decision: str, active: tuple[str, ...], outcome: Vote, reason: str
) -> None:
    result = decide_vote(
        record, request_id="r1", approver_id=approver, decision=decision, signature="s", active_members=active,
        rule="majority",
    )  # fmt: skip
    assert (result.outcome, result.reason) == (outcome, reason)


# ---------------------------------------------------------------- founders


def test_a_founder_goes_active_through_every_step(world: World) -> None:
    world.onboard("bank-a")
    record = world.record("bank-a")
    assert record["status"] == "active"
    assert set(record["steps"]) == {"keys", "provision", "publish", "activate"}
    assert set(record["keys"]) == {"identity", "tls", "governance"}
    assert all(world.keys.get_key(f"bank-a-{k}") for k in ("identity", "tls", "governance"))
    assert world.scalesets.get("vmss-bank-a").capacity == 2
    assert record["scale_set_id"].endswith("/virtualMachineScaleSets/vmss-bank-a")
    assert world.map_members() == ["bank-a"]
    assert verify_map(world.network_map(), world.keys)
    assert [e["type"] for e in world.events()] == [
        "member.requested", "member.approved", "network_map.published", "member.activated",
    ]  # fmt: skip
    assert [h["status"] for h in record["history"]] == ["provisioning", "active"]


def test_the_map_lists_each_active_member_once_and_grows_by_one_version_per_change(world: World) -> None:
    founded(world)
    current = world.network_map()
    assert world.map_members() == ["bank-a", "bank-b"]
    assert current["version"] == 2
    assert current["signing_key_id"].startswith("https://")
    assert verify_map(current, world.keys)


def test_the_same_request_again_changes_nothing(world: World) -> None:
    founded(world)
    before = (world.record("bank-a"), world.network_map(), len(world.keys.list_versions("bank-a-tls")))
    world.onboard("bank-a")
    world.onboard("bank-a")
    after = (world.record("bank-a"), world.network_map(), len(world.keys.list_versions("bank-a-tls")))
    assert after == before


# ---------------------------------------------------------------- votes


def test_a_newcomer_is_admitted_by_a_strict_majority(world: World) -> None:
    founded(world)
    assert world.post(ob.REQUESTS, request("bank-c")).action == "accepted"
    assert world.status("bank-c") == "pending_approval"
    assert world.vote("req-bank-c-001", "bank-c", "bank-a").action == "counted"
    assert world.status("bank-c") == "pending_approval"
    assert world.vote("req-bank-c-001", "bank-c", "bank-b").action == "admitted"
    world.drain()
    assert world.status("bank-c") == "active"
    assert world.map_members() == ["bank-a", "bank-b", "bank-c"]
    assert set(world.record("bank-c")["votes"]) == {"bank-a", "bank-b"}


def test_one_rejection_of_two_makes_admission_impossible(world: World) -> None:
    founded(world)
    world.post(ob.REQUESTS, request("bank-c"))
    assert world.vote("req-bank-c-001", "bank-c", "bank-a", "reject").action == "rejected"
    assert world.status("bank-c") == "rejected"
    rejected = world.events("member.rejected")
    assert rejected[-1]["scope"] == "request" and rejected[-1]["member_id"] == "bank-c"
    assert world.vote("req-bank-c-001", "bank-c", "bank-b").action == "rejected"  # closed
    assert world.rejections()[0]["reason"] == "closed"
    assert "bank-c" not in world.map_members()


def test_a_rejected_member_may_ask_again_under_a_new_request(world: World) -> None:
    founded(world)
    world.post(ob.REQUESTS, request("bank-c"))
    world.vote("req-bank-c-001", "bank-c", "bank-a", "reject")
    assert world.post(ob.REQUESTS, request("bank-c", request_id="req-bank-c-002")).action == "accepted"
    assert world.status("bank-c") == "pending_approval"


def test_the_same_vote_twice_counts_once(world: World) -> None:
    founded(world)
    world.post(ob.REQUESTS, request("bank-c"))
    body = world.vote_body("req-bank-c-001", "bank-c", "bank-a")
    world.post(ob.APPROVALS, body)
    assert world.post(ob.APPROVALS, body).action == "counted"
    assert world.status("bank-c") == "pending_approval"
    assert world.rejections() == []


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda w, b: {**b, "approver_id": "bank-z"}, "not_a_member"),
        (lambda w, b: {**b, "request_id": "req-nobody"}, "unknown_request"),
        (lambda w, b: {**b, "decision": "reject"}, "bad_signature"),  # signed "approve": forged
        (lambda w, b: {**b, "signature": json.loads(w.vote_body("req-bank-c-001", "bank-c", "bank-b"))["signature"]},
         "bad_signature"),  # bank-b's signature presented as bank-a's
        (lambda w, b: {**b, "signature": "A" * 86}, "bad_signature"),
        (lambda w, b: {**b, "signature": "not base64!"}, "schema"),
        (lambda w, b: {**b, "extra": 1}, "schema"),
    ],
)  # fmt: skip
def test_bad_votes_are_rejected_with_their_reason_and_change_nothing(world: World, mutate, reason: str) -> None:
    founded(world)
    world.post(ob.REQUESTS, request("bank-c"))
    before = world.record("bank-c")
    body = json.loads(world.vote_body("req-bank-c-001", "bank-c", "bank-a"))
    assert world.post(ob.APPROVALS, json.dumps(mutate(world, body))).action == "rejected"
    assert world.record("bank-c") == before
    assert world.rejections()[0]["reason"] == reason
    assert world.pending_work() == []


def test_a_second_vote_by_the_same_member_with_another_decision_is_a_replay(world: World) -> None:
    founded(world)
    world.onboard("bank-c", node_count=1)
    world.post(ob.REQUESTS, request("bank-d"))
    world.vote("req-bank-d-001", "bank-d", "bank-a", "approve")
    assert world.vote("req-bank-d-001", "bank-d", "bank-a", "reject").action == "rejected"
    assert world.rejections()[0]["reason"] == "replayed"


# ---------------------------------------------------------------- intake rejections


def test_a_request_id_reused_for_another_member_is_rejected(world: World) -> None:
    founded(world)
    outcome = world.post(ob.REQUESTS, request("bank-c", request_id="req-bank-a-001"))
    assert outcome.action == "rejected"
    assert world.rejections()[0]["reason"] == "duplicate_request_id"


def test_a_member_id_held_by_another_request_is_rejected(world: World) -> None:
    founded(world)
    world.post(ob.REQUESTS, request("bank-c"))
    assert world.post(ob.REQUESTS, request("bank-c", request_id="req-bank-c-002")).action == "rejected"
    assert world.rejections()[0]["reason"] == "member_taken"
    assert world.record("bank-c")["request_id"] == "req-bank-c-001"


def test_a_rejection_is_recorded_once_however_often_it_is_delivered(world: World) -> None:
    for _ in range(3):
        world.post(ob.REQUESTS, '{"request_id": "r1"')
    assert len(world.rejections()) == 1
    assert world.rejections()[0]["reason"] == "not_json"


# ---------------------------------------------------------------- provisioning


def test_provisioning_waits_without_holding_a_worker(world: World) -> None:
    slow = World(polls=3)
    slow.post(ob.REQUESTS, request("bank-a"))
    outcomes = slow.drain()
    waits = [o for o in outcomes if o.action == "waiting"]
    assert len(waits) == 3
    assert slow.status("bank-a") == "active"


def test_a_bad_template_fails_the_member_with_the_reason(world: World) -> None:
    world.service.template = '{"vm_size": "Standard_D2s_v5"}'
    world.post(ob.REQUESTS, request("bank-a"))
    assert world.drain()[-1].action == "failed"
    record = world.record("bank-a")
    assert record["status"] == "failed"
    assert "SCALE_SET_TEMPLATE needs string field(s) image" in record["status_reason"]
    assert world.events("member.failed")[-1]["reason"] == record["status_reason"]
    assert world.scalesets.get("vmss-bank-a") is None


# ---------------------------------------------------------------- offboarding


def test_offboarding_takes_the_member_out_of_the_map_drains_and_disables_keys(world: World) -> None:
    founded(world)
    version = world.network_map()["version"]
    body = json.dumps({"request_id": "off-bank-b-1", "member_id": "bank-b", "reason": "leaves the consortium"})
    assert world.post(ob.OFFBOARDING, body).action == "offboarded"
    assert world.status("bank-b") == "offboarded"
    assert world.map_members() == ["bank-a"]
    assert world.network_map()["version"] == version + 1
    assert world.scalesets.get("vmss-bank-b").capacity == 0
    for kind in ("identity", "tls", "governance"):
        versions = world.keys.list_versions(f"bank-b-{kind}")
        assert versions and not any(v.enabled for v in versions)  # disabled, never deleted
    assert world.events("member.offboarded")[-1]["member_id"] == "bank-b"
    world.post(ob.OFFBOARDING, body)  # again: nothing more happens
    assert world.network_map()["version"] == version + 1


def test_an_offboarded_member_can_come_back_with_new_keys(world: World) -> None:
    founded(world)
    world.post(ob.OFFBOARDING, json.dumps({"request_id": "off-b", "member_id": "bank-b", "reason": "pause"}))
    world.onboard("bank-b", request_id="req-bank-b-002")
    assert world.status("bank-b") == "active"
    assert len(world.keys.list_versions("bank-b-tls")) == 2
    assert world.keys.get_key("bank-b-tls").enabled
    assert world.scalesets.get("vmss-bank-b").capacity == 2


def test_offboarding_an_unknown_member_is_rejected(world: World) -> None:
    body = json.dumps({"request_id": "off-x", "member_id": "bank-x", "reason": "?"})
    assert world.post(ob.OFFBOARDING, body).action == "rejected"
    assert world.rejections()[0]["reason"] == "unknown_member"


# ---------------------------------------------------------------- poison and resume


def test_a_poisoned_step_fails_the_member_and_a_replay_finishes_it(world: World) -> None:
    world.post(ob.REQUESTS, request("bank-a"))
    keys_step = world.queues.take(ob.STEP_QUEUES["keys"])[0]
    world.service.note_failure(keys_step.body, TimeoutError("Key Vault timed out"))
    outcome = world.service.record_poison("onboarding-keys", keys_step.body, "m-1", 5)
    assert outcome.action == "failed"
    record = world.record("bank-a")
    assert record["status"] == "failed" and "Key Vault timed out" in record["status_reason"]
    assert world.events("member.failed")[-1]["reason"] == record["status_reason"]
    assert world.service.record_poison("onboarding-keys", keys_step.body, "m-1", 5).action == "known"
    world.deliver(keys_step)  # replay-poison puts it back
    world.drain()
    assert world.status("bank-a") == "active"
    assert world.map_members() == ["bank-a"]


def test_a_poisoned_intake_resumes_from_the_record(world: World) -> None:
    founded(world)
    body = request("bank-c")
    world.post(ob.REQUESTS, body)
    world.service.record_poison(ob.REQUESTS, body, "m-2", 5)
    assert world.status("bank-c") == "failed"
    world.post(ob.REQUESTS, body)
    assert world.status("bank-c") == "pending_approval"
    world.vote("req-bank-c-001", "bank-c", "bank-a")
    world.vote("req-bank-c-001", "bank-c", "bank-b")
    world.drain()
    assert world.status("bank-c") == "active"


def test_a_step_for_a_superseded_request_does_nothing(world: World) -> None:
    world.onboard("bank-a")
    stale = json.dumps({"request_id": "req-old", "member_id": "bank-a", "step": "keys"})
    assert world.post(ob.STEP_QUEUES["keys"], stale).action == "stale"
    assert world.pending_work() == []


def _offboard(world: World, member_id: str) -> None:
    body = json.dumps({"request_id": f"off-{member_id}-1", "member_id": member_id, "reason": "leaves"})
    assert world.post(ob.OFFBOARDING, body).action == "offboarded"


def test_a_pending_request_is_admitted_when_a_leaving_member_brings_the_quorum_within_reach() -> None:
    world = World(founders=("bank-a", "bank-b", "bank-d", "bank-e"))
    for founder in ("bank-a", "bank-b", "bank-d", "bank-e"):
        world.onboard(founder)
    world.post(ob.REQUESTS, request("bank-c"))
    world.vote("req-bank-c-001", "bank-c", "bank-a")
    world.vote("req-bank-c-001", "bank-c", "bank-b")
    assert world.status("bank-c") == "pending_approval", "2 of 4 approve; 3 are needed"
    _offboard(world, "bank-e")  # 2 of 3 is a strict majority now
    assert world.status("bank-c") == "provisioning"
    assert "recounted after a member left" in world.record("bank-c")["status_reason"]
    world.drain()
    assert world.status("bank-c") == "active"
    assert world.events("member.approved")[-1]["member_id"] == "bank-c"


def test_a_pending_request_is_rejected_when_a_leaving_member_puts_the_quorum_out_of_reach() -> None:
    world = World(founders=("bank-a", "bank-b", "bank-d"))
    for founder in ("bank-a", "bank-b", "bank-d"):
        world.onboard(founder)
    world.post(ob.REQUESTS, request("bank-c"))
    world.vote("req-bank-c-001", "bank-c", "bank-a", "reject")
    assert world.status("bank-c") == "pending_approval", "1 of 3 rejects: 2 approvals are still possible"
    _offboard(world, "bank-d")  # 2 remain, both must approve, one has rejected
    assert world.status("bank-c") == "rejected"
    assert world.events("member.rejected")[-1]["reason"] == "quorum_impossible"
    _offboard(world, "bank-b")  # nothing pending: nothing more changes
    assert world.status("bank-c") == "rejected"


def test_a_copy_of_a_step_posts_the_next_only_while_the_next_is_not_done() -> None:
    world = World()
    world.post(ob.REQUESTS, request("bank-a"))
    [keys] = [s for s in world.pending_work() if s.queue == ob.STEP_QUEUES["keys"]]
    world.drain()
    assert world.status("bank-a") == "active"
    world.queues.sent.clear()
    assert world.deliver(keys).action == "keys", "the copy still finds its effect"
    assert world.pending_work() == [], "provision is done: posting it again would only start a chain of copies"


def test_a_busy_copy_of_a_followed_step_is_dropped_and_a_busy_step_with_work_left_is_retried() -> None:
    world = World()
    world.post(ob.REQUESTS, request("bank-a"))
    [keys] = [s for s in world.pending_work() if s.queue == ob.STEP_QUEUES["keys"]]
    world.queues.sent.remove(keys)
    assert world.leases.try_acquire("members/bank-a", "another-step", 15) is not None
    with pytest.raises(BusyError):
        world.deliver(keys)  # nothing done yet: the host retries it
    world.clock.advance(16)  # the other step's lease lapses
    world.queues.sent.append(keys)
    world.drain()
    assert world.status("bank-a") == "active"
    assert world.leases.try_acquire("members/bank-a", "another-step", 15) is not None
    outcome = world.deliver(keys)
    assert outcome.action == "duplicate" and world.pending_work() == []
