"""Any duplication and reordering of deliveries ends in the same state, and bad input changes nothing.

The property: two founders (in the genesis) and a newcomer voted in by both, each member's deployment
working on its own queues, with every message delivered in an order hypothesis picks, any of them
delivered again (at least once, as queues do) and consortium ticks in between. However the deliveries
fall, the end state is the one a clean sequential run reaches: every member active once, one key
version per key in each member's own vault, each member's own scale set at its requested capacity,
one chain (genesis, then the admission) held by all, each member announced active once (by event id).
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.services import onboarding as ob
from shared.services.status import consortium_view
from tests.support.onboarding_world import Consortium, request

MEMBERS = ("bank-a", "bank-b", "bank-c")


def end_state(world: Consortium) -> dict[str, Any]:
    head = world.members["bank-a"].service.head()
    return {
        "statuses": {m: world.deployments[m].status() for m in MEMBERS},
        "key_versions": {
            m: [
                len(world.deployments[m].member.keys.list_versions(f"{m}-{k}"))
                for k in ("identity", "tls", "governance")
            ]
            for m in MEMBERS
        },
        "capacities": {m: world.deployments[m].capacity() for m in MEMBERS},
        "chain": [t.document.member_ids for t in world.members["bank-a"].service.verified()],
        "same_head": len({getattr(world.members[m].service.head(), "hash", None) for m in MEMBERS}) == 1,
        "activated": {m: len({e["event_id"] for e in world.events(m, "member.activated")}) for m in MEMBERS},
        "head_members": head.document.member_ids if head else (),
    }


def run(schedule: st.DataObject | None) -> Consortium:
    """Founders' requests and bank-c's, every message delivered in an order hypothesis picks, any of them
    again later (at least once, as queues do), ticks between; both founders approve bank-c once they
    can see its proposal."""
    world = Consortium(("bank-a", "bank-b", "bank-c"))
    world.found("bank-a", "bank-b")
    for member in MEMBERS:
        world.post(member, ob.REQUESTS, request(member))
    voted: set[str] = set()
    for _ in range(3000):
        for approver in ("bank-a", "bank-b"):
            open_ = [p for p in consortium_view(world.members[approver].service)["proposals"] if p["status"] == "open"]
            if approver not in voted and open_:
                world.deployments[approver].queues.send(
                    ob.APPROVALS, json.dumps({"proposal_id": open_[0]["proposal_id"], "decision": "approve"})
                )
                voted.add(approver)
        work = [(m, s) for m in MEMBERS for s in world.work(m)]
        if not work:
            if end_state(world)["statuses"] == dict.fromkeys(MEMBERS, "active") and end_state(world)["same_head"]:
                return world
            world.tick()
            continue
        if schedule is None:
            (owner, chosen), again = work[0], False
        else:
            owner, chosen = schedule.draw(st.sampled_from(work), label="deliver")
            again = schedule.draw(st.booleans(), label="deliver again later")
            if schedule.draw(st.booleans(), label="tick first"):
                world.tick()
        if not again:
            world.deployments[owner].queues.sent.remove(chosen)
        world.handle(owner, chosen)
    raise AssertionError("deliveries never settled")


REFERENCE = end_state(run(None))


def test_the_reference_run_admits_everyone_once() -> None:
    assert REFERENCE["statuses"] == dict.fromkeys(MEMBERS, "active")
    assert REFERENCE["head_members"] == MEMBERS
    assert REFERENCE["chain"] == [("bank-a", "bank-b"), MEMBERS]
    assert REFERENCE["key_versions"] == {m: [1, 1, 1] for m in MEMBERS}
    assert REFERENCE["capacities"] == dict.fromkeys(MEMBERS, 2)
    assert REFERENCE["activated"] == dict.fromkeys(MEMBERS, 1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_duplication_and_reordering_ends_in_the_same_state(data: st.DataObject) -> None:
    assert end_state(run(data)) == REFERENCE


# ------------------------------------------------------------------ bad input

GOOD = json.loads(request("bank-c"))

HANDWRITTEN: list[tuple[str, str]] = [
    ("", "not_json"),
    ("not json", "not_json"),
    ("{", "not_json"),
    ("null", "schema"),
    ("[]", "schema"),
    ('"text"', "schema"),
    ("42", "schema"),
    (b"\xff\xfe\x00".decode("latin-1"), "not_json"),
    ("{}", "schema"),
    (json.dumps({**GOOD, "member_id": "../../etc/passwd"}), "schema"),
    (json.dumps({**GOOD, "member_id": "bank-c/../bank-a"}), "schema"),
    (json.dumps({**GOOD, "member_id": "Bank-C"}), "schema"),
    (json.dumps({**GOOD, "member_id": "b"}), "schema"),
    (json.dumps({**GOOD, "member_id": "bank-"}), "schema"),
    (json.dumps({**GOOD, "member_id": "a" * 40}), "schema"),
    (json.dumps({**GOOD, "member_id": 7}), "schema"),
    (json.dumps({**GOOD, "request_id": "../x"}), "schema"),
    (json.dumps({**GOOD, "request_id": ""}), "schema"),
    (json.dumps({**GOOD, "node_count": "2"}), "schema"),
    (json.dumps({**GOOD, "node_count": 0}), "schema"),
    (json.dumps({**GOOD, "node_count": 2.5}), "schema"),
    (json.dumps({**GOOD, "node_count": True}), "schema"),
    (json.dumps({**GOOD, "node_count": 1000}), "schema"),
    (json.dumps({**GOOD, "legal_name": "Bank C"}), "schema"),
    (json.dumps({**GOOD, "legal_name": "O=Bank C, L=Amsterdam"}), "schema"),
    (json.dumps({**GOOD, "legal_name": "O=Bank C, L=Amsterdam, C=XX"}), "schema"),
    (json.dumps({**GOOD, "legal_name": "O=Bank C, L=Amsterdam, C=NL, O=Other"}), "schema"),
    (json.dumps({**GOOD, "legal_name": "O=Bank C, L=Amsterdam, C=NL, X=1"}), "schema"),
    (json.dumps({**GOOD, "legal_name": "O=B, L=Amsterdam, C=NL"}), "schema"),
    (json.dumps({**GOOD, "legal_name": 'O=Bank "C", L=Amsterdam, C=NL'}), "schema"),
    (json.dumps({**GOOD, "region": "West Europe"}), "schema"),
    (json.dumps({**GOOD, "contact_email": "nobody"}), "schema"),
    (json.dumps({**GOOD, "scale": {"min_nodes": 4, "max_nodes": 2}}), "schema"),
    (json.dumps({**GOOD, "scale": {"min_nodes": 0, "max_nodes": 2}}), "schema"),
    (json.dumps({**GOOD, "scale": {"min_nodes": 3, "max_nodes": 6}}), "schema"),  # node_count outside
    (json.dumps({**GOOD, "scale": {"min_nodes": 1, "max_nodes": 6, "x": 1}}), "schema"),
    (json.dumps({**GOOD, "admin": True}), "schema"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "legal_name"}), "schema"),
    (json.dumps({**GOOD, "legal_name": "O=" + "B" * 20_000 + ", L=Amsterdam, C=NL"}), "oversize"),
]


def fresh() -> Consortium:
    world = Consortium(("bank-a", "bank-b", "bank-c"))
    world.found("bank-a", "bank-b")
    world.settle(rounds=2)
    for m in MEMBERS:
        world.deployments[m].queues.take()
    return world


def snapshot(world: Consortium) -> dict[str, Any]:
    state = world.deployments["bank-c"].member.state
    paths = [p for p in state.list_paths("") if not p.startswith("rejections/")]
    return {p: state.read(p).body for p in paths}  # type: ignore[union-attr]


def rejections(world: Consortium) -> list[dict[str, Any]]:
    return [d.body for d in world.deployments["bank-c"].member.state.read_all("rejections/")]


def test_every_handwritten_bad_request_is_rejected_once_with_its_reason_and_changes_nothing() -> None:
    world = fresh()
    before = snapshot(world)
    for raw, reason in HANDWRITTEN:
        outcome = world.post("bank-c", ob.REQUESTS, raw)
        assert outcome.action == "rejected", raw[:80]
        assert outcome.message.startswith(reason), (raw[:80], outcome.message)
    assert snapshot(world) == before
    assert world.work("bank-c") == []
    recorded = rejections(world)
    assert len(recorded) == len({raw for raw, _ in HANDWRITTEN})
    assert all(r["reason"] and r["message"] for r in recorded)


def test_the_rejection_names_the_field_and_the_rule() -> None:
    world = fresh()
    world.post("bank-c", ob.REQUESTS, json.dumps({**GOOD, "node_count": 0}))
    world.post("bank-c", ob.REQUESTS, json.dumps({**GOOD, "admin": True}))
    by_field = {r["field"]: r["message"] for r in rejections(world)}
    assert "greater than or equal to 1" in by_field["node_count"]
    assert by_field["admin"] == "admin: unknown field"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    queue=st.sampled_from([ob.REQUESTS, ob.APPROVALS, ob.OFFBOARDING, *ob.STEP_QUEUES.values()]),
    field=st.sampled_from([*GOOD, "proposal_id", "decision", "step", "reason", "polls", "extra"]),
    value=json_values,
    noise=st.text(alphabet=string.printable, max_size=60),
    shape=st.sampled_from(["field", "raw", "replace"]),
)
def test_generated_bad_input_never_raises_and_never_changes_state(
    queue: str, field: str, value: Any, noise: str, shape: str
) -> None:
    world = WORLD
    before = snapshot(world)
    if shape == "raw":
        raw = noise
    elif shape == "replace":
        raw = json.dumps(value)
    else:
        raw = json.dumps({**GOOD, field: value})
    outcome = world.post("bank-c", queue, raw)
    if outcome.action != "rejected":  # a generated message that happens to be valid must still be harmless here
        return
    assert snapshot(world) == before
    assert outcome.message


WORLD = fresh()
