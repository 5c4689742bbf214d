"""Any duplication and reordering of deliveries ends in the same state, and bad input changes nothing.

The property: two founders and a newcomer voted in by both, with every work message delivered in an
order hypothesis picks and any of them delivered again (at least once, as queues do). However the
deliveries fall, the end state is the one a clean sequential run reaches: every member active once,
one key version per key, one scale set each at its requested capacity, the map holding each member
exactly once and verifying, each member announced active once (by event id).
"""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.services import onboarding as ob
from shared.services.network_map import verify_map
from tests.unit.onboarding_world import World, request

MEMBERS = ("bank-a", "bank-b", "bank-c")


def end_state(world: World) -> dict[str, Any]:
    current = world.network_map() or {"members": []}
    return {
        "statuses": {m: world.status(m) for m in MEMBERS},
        "key_versions": {
            m: [len(world.keys.list_versions(f"{m}-{k}")) for k in ("identity", "tls", "governance")] for m in MEMBERS
        },
        "capacities": {m: world.scalesets.get(f"vmss-{m}").capacity for m in MEMBERS},
        "map_members": [e["member_id"] for e in current["members"]],
        "map_keys": {e["member_id"]: sorted(e["keys"]) for e in current["members"]},
        "activated": sorted({e["event_id"] for e in world.events("member.activated")}),
        "votes": sorted(world.record("bank-c")["votes"]),
    }


def run(schedule: st.DataObject | None) -> World:
    world = World()
    for member in MEMBERS:
        world.queues.send(ob.REQUESTS, request(member))
    voted = False
    for _ in range(2000):
        work = world.pending_work()
        if (
            not voted
            and world.status_or_none("bank-c") == "pending_approval"
            and all(world.status_or_none(m) == "active" for m in ("bank-a", "bank-b"))
        ):
            for approver in ("bank-a", "bank-b"):
                world.queues.send(ob.APPROVALS, world.vote_body("req-bank-c-001", "bank-c", approver))
            voted = True
            continue
        if not work:
            return world
        if schedule is None:
            chosen, again = work[0], False
        else:
            chosen = schedule.draw(st.sampled_from(work), label="deliver")
            again = schedule.draw(st.booleans(), label="deliver again later")
        if not again:
            world.queues.sent.remove(chosen)
        world.deliver(chosen)
    raise AssertionError("deliveries never settled")


REFERENCE = end_state(run(None))


def test_the_reference_run_admits_everyone_once() -> None:
    assert REFERENCE["statuses"] == dict.fromkeys(MEMBERS, "active")
    assert REFERENCE["map_members"] == list(MEMBERS)
    assert REFERENCE["key_versions"] == {m: [1, 1, 1] for m in MEMBERS}
    assert REFERENCE["capacities"] == dict.fromkeys(MEMBERS, 2)
    assert len(REFERENCE["activated"]) == 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_duplication_and_reordering_ends_in_the_same_state(data: st.DataObject) -> None:
    world = run(data)
    assert end_state(world) == REFERENCE
    assert verify_map(world.network_map(), world.keys)


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


def fresh() -> World:
    world = World()
    world.onboard("bank-a")
    world.onboard("bank-b")
    world.queues.take()
    return world


def snapshot(world: World) -> dict[str, Any]:
    paths = [p for p in world.state.list_paths("") if not p.startswith("rejections/")]
    return {p: world.state.read(p).body for p in paths}


def test_every_handwritten_bad_request_is_rejected_once_with_its_reason_and_changes_nothing() -> None:
    world = fresh()
    before = snapshot(world)
    for raw, reason in HANDWRITTEN:
        outcome = world.post(ob.REQUESTS, raw)
        assert outcome.action == "rejected", raw[:80]
        assert outcome.message.startswith(reason), (raw[:80], outcome.message)
    assert snapshot(world) == before
    assert world.pending_work() == []
    recorded = world.rejections()
    assert len(recorded) == len({raw for raw, _ in HANDWRITTEN})
    assert all(r["reason"] and r["message"] for r in recorded)


def test_the_rejection_names_the_field_and_the_rule() -> None:
    world = fresh()
    world.post(ob.REQUESTS, json.dumps({**GOOD, "node_count": 0}))
    world.post(ob.REQUESTS, json.dumps({**GOOD, "admin": True}))
    by_field = {r["field"]: r["message"] for r in world.rejections()}
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
    field=st.sampled_from([*GOOD, "signature", "approver_id", "decision", "step", "reason", "polls", "extra"]),
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
    outcome = world.post(queue, raw)
    if outcome.action != "rejected":  # a generated message that happens to be valid must still be harmless here
        return
    assert snapshot(world) == before
    assert outcome.message


WORLD = fresh()
