"""One member's own onboarding: intake rules, then founders, a joiner, leavers and failures on the fakes.

Every deployment acts only on its own member's fakes; the chain decides membership. Each scenario
reads the outcome from what the member's own fakes hold afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from shared.decisions import corda_pki
from shared.decisions.onboarding import Intake, Membership, Status, decide_intake, decide_membership, membership_due
from shared.services import onboarding as ob
from shared.services.consortium import Follow
from shared.services.status import consortium_view
from tests.support.onboarding_world import Consortium, request


@dataclass(frozen=True)
class IntakeRow:
    why: str
    record: dict[str, Any] | None
    member_id: str
    expected: Intake


INTAKE = [
    IntakeRow("a first request of this deployment's member is taken in", None, "bank-c", Intake.CREATE),
    IntakeRow("a request for another member is never this deployment's to make", None, "bank-a",
              Intake.NOT_THIS_MEMBER),
    IntakeRow("the same request again resumes", {"request_id": "r1", "status": "pending"}, "bank-c", Intake.RESUME),
    IntakeRow("another request while one is under way conflicts", {"request_id": "r0", "status": "pending"},
              "bank-c", Intake.CONFLICT),
    IntakeRow("a member that left may ask again", {"request_id": "r0", "status": "left"}, "bank-c", Intake.CREATE),
    IntakeRow("a refused member may ask again", {"request_id": "r0", "status": "rejected"}, "bank-c", Intake.CREATE),
]  # fmt: skip


@pytest.mark.parametrize("row", INTAKE, ids=[r.why for r in INTAKE])
def test_intake_rules(row: IntakeRow) -> None:
    assert decide_intake(row.record, "r1", row.member_id, "bank-c").outcome is row.expected


@pytest.mark.parametrize(
    ("member_id", "asked", "listed", "expected", "why"),
    [
        ("bank-c", "O=Bank C", None, Intake.CREATE, "a newcomer the chain does not list names itself"),
        ("bank-c", "O=Bank C", "O=Bank C", Intake.CREATE, "a founder asks under the name its genesis entry gives"),
        ("bank-c", "O=Bank Sea", "O=Bank C", Intake.NAME_MISMATCH, "a founder under another name is refused"),
        ("bank-a", "O=Bank Sea", "O=Bank C", Intake.NOT_THIS_MEMBER, "another member's request: refused for that"),
    ],
)
def test_a_member_the_chain_lists_asks_under_the_legal_name_it_lists(
    member_id: str, asked: str, listed: str | None, expected: Intake, why: str
) -> None:
    decision = decide_intake(None, "r1", member_id, "bank-c", asked_name=asked, listed_name=listed)
    assert decision.outcome is expected, why
    if expected is Intake.NAME_MISMATCH:
        assert decision.message == (
            "legal_name 'O=Bank Sea' is not the one the verified chain lists for bank-c ('O=Bank C'): "
            "a member asks under the legal name the chain gives it"
        )


@pytest.mark.parametrize(
    ("change", "action", "status"),
    [("admitted", Membership.ACTIVATE, Status.ACTIVE), ("left", Membership.RETIRE, Status.LEFT),
     ("removed", Membership.RETIRE, Status.REMOVED), ("rotated", Membership.NOTHING, None)],
)  # fmt: skip
def test_what_a_version_about_this_member_means_here(change: str, action: Membership, status: Status | None) -> None:
    decision = decide_membership(change, 4)
    assert (decision.action, decision.status) == (action, status)


# --- scenarios ---------------------------------------------------------------------------------


PROVISIONED = {"keys": "t", "provision": "t"}


@pytest.mark.parametrize(
    ("record", "listed", "about_me", "due"),
    [
        (None, True, [(0, "genesis")], None),
        ({"status": "pending", "steps": PROVISIONED}, True, [(0, "genesis")], ("genesis", 0)),
        ({"status": "pending", "steps": PROVISIONED}, True, [(3, "admit"), (5, "rotate")], ("admitted", 3)),
        ({"status": "pending", "steps": {"keys": "t"}}, True, [(3, "admit")], None),  # its own steps go on
        ({"status": "active", "steps": PROVISIONED}, True, [(3, "admit")], None),
        ({"status": "failed", "steps": PROVISIONED}, True, [(3, "admit")], None),  # the operator's to replay
        ({"status": "active", "steps": PROVISIONED}, False, [(3, "admit"), (6, "leave")], ("left", 6)),
        ({"status": "active", "steps": PROVISIONED}, False, [(3, "admit"), (7, "remove")], ("removed", 7)),
        ({"status": "left", "steps": PROVISIONED}, False, [(3, "admit"), (6, "leave")], None),
        ({"status": "pending", "steps": PROVISIONED}, False, [(3, "admit"), (6, "leave")], None),  # asked again
        ({"status": "active", "steps": PROVISIONED}, False, [], None),
    ],
)
def test_what_a_record_behind_the_chain_is_missing(
    record: dict[str, Any] | None, listed: bool, about_me: list[tuple[int, str]], due: tuple[str, int] | None
) -> None:
    assert membership_due(record, listed=listed, about_me=about_me) == due


@pytest.fixture
def world() -> Consortium:
    w = Consortium()
    w.found("bank-a", "bank-b")
    for founder in ("bank-a", "bank-b"):
        w.post(founder, ob.REQUESTS, request(founder))
    w.settle(rounds=6)
    return w


def test_a_founder_in_the_genesis_goes_active_with_its_own_keys_and_scale_set(world: Consortium) -> None:
    a = world.deployments["bank-a"]
    assert a.status() == "active" and a.capacity() == 2
    record = a.service.record()
    assert record is not None
    genesis = world.members["bank-a"].service.verified()[0]
    listed = genesis.document.member("bank-a")
    assert listed is not None and record["keys"]["governance"]["kid"] == listed.governance_key.kid
    assert len(a.member.keys.list_versions("bank-a-governance")) == 1, "the ceremony's key is kept, not replaced"
    assert world.deployments["bank-b"].scalesets.get("vmss-bank-a") is None, "no member touches another's scale sets"
    assert len(world.events("bank-a", "member.activated")) == 1


def test_a_bank_joins_by_vote_and_goes_active_once_a_version_admits_it(world: Consortium) -> None:
    c = world.deployments["bank-c"]
    world.post("bank-c", ob.REQUESTS, request("bank-c"))
    world.drain("bank-c")
    assert c.status() == "pending" and c.capacity() == 0, "set up at capacity 0 until admitted"
    world.settle(rounds=3)
    (proposal,) = consortium_view(world.members["bank-a"].service)["proposals"]
    assert proposal["change"] == {"kind": "admit", "member_id": "bank-c"} and proposal["status"] == "open"
    for approver in ("bank-a", "bank-b"):
        decided = world.post(approver, ob.APPROVALS, json.dumps({"proposal_id": proposal["proposal_id"],
                                                                 "decision": "approve"}))  # fmt: skip
        assert decided.action == "decided", decided.message
    world.settle(rounds=20, until=lambda: c.status() == "active")
    assert c.status() == "active" and c.capacity() == 2
    world.settle(rounds=3, until=lambda: {world.members[m].version for m in world.members} == {1})
    assert {world.members[m].version for m in world.members} == {1}
    assert len(world.events("bank-c", "member.activated")) == 1
    # contract v3: the newcomer's entry carries its own Corda root, made from its own vault's key
    head = world.members["bank-a"].service.head()
    entry = head.document.member("bank-c") if head else None
    root_key = c.member.keys.get_key("bank-c-corda-root")
    assert entry is not None and entry.corda_root is not None and root_key is not None
    assert corda_pki.check_root(entry.corda_root, "bank-c", entry.legal_name).accepted


def test_the_same_request_again_changes_nothing(world: Consortium) -> None:
    world.post("bank-c", ob.REQUESTS, request("bank-c"))
    world.drain("bank-c")
    keys = [v.kid for v in world.deployments["bank-c"].member.keys.list_versions("bank-c-governance")]
    outcome = world.post("bank-c", ob.REQUESTS, request("bank-c"))
    world.drain("bank-c")
    assert outcome.action in ("waiting", "resumed")
    assert [v.kid for v in world.deployments["bank-c"].member.keys.list_versions("bank-c-governance")] == keys
    assert len(world.members["bank-c"].service.own()["proposals"]) == 1


def test_a_request_for_another_member_is_refused_and_recorded(world: Consortium) -> None:
    outcome = world.post("bank-c", ob.REQUESTS, request("bank-a", "req-sneaky"))
    assert outcome.action == "rejected" and outcome.reason == "not_this_member"
    recorded = [d.body for d in world.deployments["bank-c"].member.state.read_all("rejections/")]
    assert recorded[0]["reason"] == "not_this_member" and "asks only for its own member" in recorded[0]["message"]
    assert world.deployments["bank-c"].service.record() is None


def test_a_founder_asking_under_another_legal_name_than_its_genesis_entry_is_refused_and_may_ask_again() -> None:
    """The genesis lists bank-b as 'O=Banque Générale, L=Paris, C=FR': its Corda root and its nodes'
    identities carry that name. A request as 'O=Bank B' is refused at once, recorded, and claims nothing:
    the same request id under the right name is then taken in."""
    w = Consortium()
    w.found("bank-a", "bank-b")
    wrong = w.post("bank-b", ob.REQUESTS, request("bank-b", legal_name="O=Bank B, L=Paris, C=FR"))
    assert wrong.action == "rejected" and wrong.reason == "legal_name"
    (recorded,) = [d.body for d in w.deployments["bank-b"].member.state.read_all("rejections/")]
    assert recorded["field"] == "legal_name" and "('O=Banque Générale, L=Paris, C=FR')" in recorded["message"]
    assert w.deployments["bank-b"].service.record() is None
    right = w.post("bank-b", ob.REQUESTS, request("bank-b"))
    assert right.action == "accepted", right.message
    w.settle(rounds=6, until=lambda: w.deployments["bank-b"].status() == "active")
    assert w.deployments["bank-b"].status() == "active"


def test_a_decision_on_an_unknown_proposal_is_refused_at_once(world: Consortium) -> None:
    outcome = world.post("bank-a", ob.APPROVALS, json.dumps({"proposal_id": "prop-nothing", "decision": "approve"}))
    assert outcome.action == "rejected" and outcome.reason == "unknown_proposal"


def test_a_refused_admission_leaves_the_newcomer_outside_the_chain(world: Consortium) -> None:
    world.post("bank-c", ob.REQUESTS, request("bank-c"))
    world.settle(rounds=3)
    (proposal,) = consortium_view(world.members["bank-a"].service)["proposals"]
    world.post("bank-a", ob.APPROVALS, json.dumps({"proposal_id": proposal["proposal_id"], "decision": "reject"}))
    world.settle(rounds=4)
    (seen,) = consortium_view(world.members["bank-c"].service)["proposals"]
    assert seen["status"] == "rejected"
    assert world.deployments["bank-c"].capacity() == 0


def join(world: Consortium, member_id: str) -> None:
    c = world.deployments[member_id]
    world.post(member_id, ob.REQUESTS, request(member_id))
    world.settle(rounds=3)
    head = world.members["bank-a"].service.head()
    assert head is not None
    proposal = next(p for p in consortium_view(world.members["bank-a"].service)["proposals"] if p["status"] == "open")
    for approver in head.document.member_ids:
        world.post(approver, ob.APPROVALS, json.dumps({"proposal_id": proposal["proposal_id"], "decision": "approve"}))
    world.settle(rounds=20, until=lambda: c.status() == "active")
    assert c.status() == "active"
    world.settle(rounds=5, until=lambda: len({world.members[m].version for m in world.members}) == 1)


def test_a_member_leaves_scales_its_own_set_to_zero_and_disables_its_own_keys(world: Consortium) -> None:
    join(world, "bank-c")
    outcome = world.post("bank-c", ob.OFFBOARDING, json.dumps({"request_id": "off-1", "reason": "merger"}))
    assert outcome.action == "proposed"
    c = world.deployments["bank-c"]
    world.settle(rounds=20, until=lambda: c.status() == "left")
    assert c.status() == "left" and c.capacity() == 0
    assert not any(v.enabled for k in ("identity", "tls", "governance", "corda-root")
                   for v in c.member.keys.list_versions(f"bank-c-{k}"))  # fmt: skip
    assert len(c.member.keys.list_versions("bank-c-governance")) == 1, "disabled, never deleted"
    head = world.members["bank-a"].service.head()
    assert head is not None and "bank-c" not in head.document.member_ids


def test_a_member_that_left_keeps_following_and_may_join_again_with_new_keys(world: Consortium) -> None:
    """Its proposals already in the chain are never signed again: their keys are disabled now."""
    join(world, "bank-c")
    world.post("bank-c", ob.OFFBOARDING, json.dumps({"request_id": "off-1", "reason": "merger"}))
    c = world.deployments["bank-c"]
    world.settle(rounds=20, until=lambda: c.status() == "left")
    join(world, "bank-d")  # the chain moves on after bank-c's keys were disabled
    world.settle(rounds=3)
    assert world.members["bank-c"].version == 3
    world.post("bank-c", ob.REQUESTS, request("bank-c", request_id="req-bank-c-002"))
    world.settle(rounds=3)
    record = c.service.record()
    assert record is not None and record["status"] == "pending"
    pid = record["proposal_id"]
    assert pid in {p["proposal_id"] for p in consortium_view(world.members["bank-a"].service)["proposals"]}
    for approver in ("bank-a", "bank-b", "bank-d"):
        world.post(approver, ob.APPROVALS, json.dumps({"proposal_id": pid, "decision": "approve"}))
    world.settle(rounds=20, until=lambda: c.status() == "active")
    assert c.status() == "active" and c.capacity() == 2
    head = world.members["bank-a"].service.head()
    assert head is not None and head.version == 4 and "bank-c" in head.document.member_ids
    assert len(c.member.keys.list_versions("bank-c-governance")) == 2, "a new key; the old one disabled, kept"


def test_a_member_that_left_does_not_sign_its_old_admission_again(world: Consortium) -> None:
    """Found by the chaos suite: after bank-c left, its own admit proposal (done: version 1 carries it)
    applied again over the new base, so every tick presigned it with bank-c's disabled governance key
    and failed (403 from Key Vault); and once its head changed, the tick signed it with that key too."""
    join(world, "bank-c")
    world.post("bank-c", ob.OFFBOARDING, json.dumps({"request_id": "off-1", "reason": "merger"}))
    c = world.deployments["bank-c"]
    world.settle(rounds=20, until=lambda: c.status() == "left")
    assert c.status() == "left"
    service = world.members["bank-c"].service
    head = service.head()
    assert head is not None and "bank-c" not in head.document.member_ids

    service.tick()  # raised ForbiddenError (a disabled key) before the fix

    assert all(p["base"] != head.hash for p in service.own().get("presigned", [])), "nothing signed over the new head"
    service.decide("prop-after-leaving", "approve")  # its head's content changes: it would be signed again
    assert service.publish_head() is None, "no head signed with a disabled key (it raised a 403 before the fix)"


def test_a_member_is_removed_by_the_others_and_retires_itself(world: Consortium) -> None:
    join(world, "bank-c")
    join(world, "bank-d")
    outcome = world.post("bank-a", ob.OFFBOARDING, json.dumps({"request_id": "rm-1", "reason": "unpaid fees",
                                                               "member_id": "bank-d"}))  # fmt: skip
    assert outcome.action == "proposed"
    world.settle(rounds=3)
    proposal = next(
        p for p in consortium_view(world.members["bank-b"].service)["proposals"] if p["change"]["kind"] == "remove"
    )
    for approver in ("bank-b", "bank-c"):
        world.post(approver, ob.APPROVALS, json.dumps({"proposal_id": proposal["proposal_id"], "decision": "approve"}))
    d = world.deployments["bank-d"]
    world.settle(rounds=20, until=lambda: d.status() == "removed")
    assert d.status() == "removed" and d.capacity() == 0


def lose_steps(world: Consortium, member_id: str, step: str, *, until: Any, rounds: int = 30) -> int:
    """Settle while every ``step`` message posted at ``member_id`` is lost (its host died before the
    timer's output binding was sent); returns how many were lost."""
    lost = 0
    for _ in range(rounds):
        queue = world.deployments[member_id].queues.sent
        gone = [s for s in queue if s.queue == ob.STEP_QUEUES[step]]
        lost += len(gone)
        for s in gone:
            queue.remove(s)
        if until():
            return lost
        world.drain()
        world.tick()
    raise AssertionError(f"{member_id}: never got there")


def in_chain(world: Consortium, member_id: str) -> bool:
    """Whether ``member_id``'s own deployment has adopted a version that lists it."""
    head = world.members[member_id].service.head()
    return head is not None and member_id in head.document.member_ids


def restart(world: Consortium, member_id: str) -> None:
    """A new process for ``member_id``'s deployment: its services' memories start empty."""
    world.members[member_id].service.memory = Follow()
    sync = world.deployments[member_id].service.membership
    sync.settled = sync.recheck = None


def test_a_retirement_lost_with_its_host_is_carried_out_by_the_next_process(world: Consortium) -> None:
    """The leave version is adopted and the record says it is retiring, but the retire step never
    reached its queue: the next process finds the record behind the chain and hands it on again."""
    join(world, "bank-c")
    world.post("bank-c", ob.OFFBOARDING, json.dumps({"request_id": "off-1", "reason": "merger"}))
    c = world.deployments["bank-c"]
    assert lose_steps(world, "bank-c", "retire", until=lambda: not in_chain(world, "bank-c")) == 1
    world.settle(rounds=5)
    assert c.status() == "active" and c.capacity() == 2, "nothing else posts it: the member would stay up"
    restart(world, "bank-c")
    world.settle(rounds=5, until=lambda: c.status() == "left")
    assert c.status() == "left" and c.capacity() == 0
    assert not any(v.enabled for v in c.member.keys.list_versions("bank-c-governance"))


def test_an_activation_lost_is_posted_again_in_the_same_process_after_a_while(world: Consortium) -> None:
    c = world.deployments["bank-c"]
    world.post("bank-c", ob.REQUESTS, request("bank-c"))
    world.settle(rounds=3)
    proposal = next(p for p in consortium_view(world.members["bank-a"].service)["proposals"] if p["status"] == "open")
    for approver in ("bank-a", "bank-b"):
        world.post(approver, ob.APPROVALS, json.dumps({"proposal_id": proposal["proposal_id"], "decision": "approve"}))
    lose_steps(world, "bank-c", "activate", until=lambda: in_chain(world, "bank-c"))
    world.settle(rounds=3)
    assert c.status() == "pending" and c.capacity() == 0
    world.clock.advance(ob.RECHECK_SECONDS)
    world.settle(rounds=3, until=lambda: c.status() == "active")
    assert c.status() == "active" and c.capacity() == 2
    assert len(world.events("bank-c", "member.activated")) == 1


def test_a_member_whose_record_agrees_with_the_chain_is_read_once_per_version(world: Consortium) -> None:
    a = world.deployments["bank-a"]
    reads: list[int] = []
    record = a.service.records.read  # what every onboarding part reads the member record with

    def counted() -> dict[str, Any] | None:
        reads.append(1)
        return record()

    a.service.records.read = counted  # type: ignore[method-assign]
    for _ in range(10):
        world.tick("bank-a")
    assert reads == [], "settled at this version: no read per tick"
    restart(world, "bank-a")
    for _ in range(10):
        world.tick("bank-a")
    assert len(reads) == 1, "a new process checks once"


def test_offboarding_a_member_not_in_the_chain_is_refused(world: Consortium) -> None:
    outcome = world.post("bank-a", ob.OFFBOARDING, json.dumps({"request_id": "rm-x", "reason": "x",
                                                               "member_id": "bank-d"}))  # fmt: skip
    assert outcome.action == "rejected" and outcome.reason == "not_a_member"


def test_a_poisoned_step_fails_the_member_and_a_replay_resumes_it(world: Consortium) -> None:
    c = world.deployments["bank-c"]
    world.post("bank-c", ob.REQUESTS, request("bank-c"))
    keys_step = next(s for s in c.queues.sent if s.queue == ob.STEP_QUEUES["keys"])
    c.queues.sent.remove(keys_step)
    outcome = c.service.record_poison(ob.STEP_QUEUES["keys"], keys_step.body, "m-1", 5)
    assert outcome.action == "failed" and c.status() == "failed"
    assert c.service.record_poison(ob.STEP_QUEUES["keys"], keys_step.body, "m-1", 5).action == "known"
    world.post("bank-c", ob.STEP_QUEUES["keys"], keys_step.body)
    world.drain("bank-c")
    assert c.status() == "pending" and c.capacity() == 0


def test_a_step_for_another_member_is_refused(world: Consortium) -> None:
    body = json.dumps({"request_id": "req-bank-a-001", "member_id": "bank-a", "step": "keys"})
    outcome = world.post("bank-c", ob.STEP_QUEUES["keys"], body)
    assert outcome.action == "rejected" and outcome.reason == "wrong_queue"


def test_a_late_copy_of_a_done_step_resumes_a_failed_member_where_its_record_stands(world: Consortium) -> None:
    """Issue 19: the provision message was poisoned (the member failed) and a late copy of the keys step,
    done long before, arrived: the resumed member must go on at provision, not be left with nothing queued."""
    c = world.deployments["bank-c"]
    world.post("bank-c", ob.REQUESTS, request("bank-c"))
    keys_step = next(s for s in c.queues.sent if s.queue == ob.STEP_QUEUES["keys"])
    c.queues.sent.remove(keys_step)
    world.post("bank-c", ob.STEP_QUEUES["keys"], keys_step.body)
    provision = next(s for s in c.queues.sent if s.queue == ob.STEP_QUEUES["provision"])
    c.queues.sent.remove(provision)
    assert c.service.record_poison(ob.STEP_QUEUES["provision"], provision.body, "m-9", 5).action == "failed"
    outcome = world.post("bank-c", ob.STEP_QUEUES["keys"], keys_step.body)  # the late copy
    assert outcome.action == "resumed", outcome.message
    world.settle(rounds=4)
    assert c.status() == "pending" and c.capacity() == 0, "it went on to provision and propose"
    assert consortium_view(world.members["bank-a"].service)["proposals"], "its admission was proposed"


def test_a_poison_record_does_not_fail_a_member_that_went_active_since_it_was_read(world: Consortium) -> None:
    a = world.deployments["bank-a"]
    assert a.status() == "active"
    body = json.dumps({"request_id": "req-bank-a-001", "member_id": "bank-a", "step": "activate"})
    outcome = a.service.record_poison(ob.STEP_QUEUES["activate"], body, "m-late", 5)
    assert outcome.action == "recorded" and a.status() == "active"
