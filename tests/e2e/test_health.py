"""Node health end to end: the real app on the local stack (a deployment per member), the emulator's
nodes really listening on their Corda ports, ARM through the real SDK.

Two founders, each checked and repaired by its own deployment only: bank-a with three nodes, bank-b
with a single node. bank-b's single node's RPC port closes while p2p still answers: it is the
member's last answering node, so it is held, never repaired. Two of bank-a's nodes close every port
(ARM still calls them healthy): one at a time, each is restarted after N checks, then reimaged when
the restart did not help, and passes again; every repair is recorded with its reason in bank-a's own
storage and announced as ``node.repair`` on bank-a's own events queue; neither deployment records or
announces anything about the other member's nodes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.services import onboarding as ob
from shared.services.health import STATE_PATH
from shared.services.records import EVENTS_QUEUE
from tests.e2e.conftest import MemberStack
from tests.support.onboarding_world import request
from tools.harness.wait import wait_until

pytestmark = pytest.mark.e2e

SETTINGS = {
    "HEALTH_SCHEDULE": "*/2 * * * * *", "HEALTH_UNHEALTHY_CHECKS": "2", "HEALTH_REIMAGE_AFTER_CHECKS": "2",
    "HEALTH_PROBE_TIMEOUT_SECONDS": "0.5",
}  # fmt: skip


def test_closed_ports_are_restarted_then_reimaged_one_node_per_member_never_the_last_answering_one(
    member_stack_factory,
) -> None:
    big, small = "bank-a", "bank-b"
    s: MemberStack = member_stack_factory((big, small), values=SETTINGS)

    def state(member: str) -> dict[str, Any]:
        doc = s.platform(member).state.read(STATE_PATH)
        return doc.body if doc else {}

    def node(member: str, instance: str) -> dict[str, Any]:
        return dict(state(member).get("nodes", {}).get(f"vmss-{member}/{instance}", {}))

    def repairs(member: str) -> list[dict[str, Any]]:
        return [r for r in state(member).get("recent", []) if r["member_id"] == member]

    def fault(member: str, instance: str, body: dict[str, Any]) -> None:
        s.admin("PUT", f"/_admin/instances/vmss-{member}/{instance}", body)

    for mid, nodes in ((big, 3), (small, 1)):
        s.send(mid, ob.REQUESTS, request(mid, node_count=nodes, scale={"min_nodes": nodes, "max_nodes": nodes}))
    for mid in (big, small):
        s.wait_status(mid, "active")
    wait_until("every node checked healthy", lambda: state(big).get("members", {}).get(big, {}).get("healthy") == 3
               and state(small).get("members", {}).get(small, {}).get("healthy") == 1, timeout=90)  # fmt: skip

    # The single node's RPC port closes; p2p still answers: never taken down.
    fault(small, "0", {"fault": "port_closed", "ports": [10003]})
    wait_until("the last answering node held", lambda: node(small, "0").get("reason") == "last_serving", timeout=60)
    ticks = state(small)["ticks"]
    wait_until("three more checks", lambda: state(small)["ticks"] >= ticks + 3, timeout=60)
    held = node(small, "0")
    assert held["reason"] == "last_serving" and held["failures"] >= 3 and held["repair"] is None
    assert "10003 refused" in held["message"] and held["arm_healthy"] is True
    assert repairs(small) == []

    # Two of the other member's nodes close every port; ARM keeps calling them healthy.
    fault(big, "0", {"fault": "port_closed"})
    fault(big, "1", {"fault": "port_closed"})
    busy_seen: list[bool] = []

    def both_repaired() -> bool:
        busy_seen.append(any(node(big, i).get("reason") == "member_busy" for i in ("0", "1")))
        return len(repairs(big)) >= 4 and all(node(big, i).get("state") == "healthy" for i in ("0", "1"))

    wait_until("both nodes restarted, reimaged and passing", both_repaired, timeout=120)
    done = repairs(big)
    assert [r["action"] for r in done] == ["restart", "reimage", "restart", "reimage"], done
    first, second = done[0]["instance"], done[2]["instance"]
    assert {first, second} == {"0", "1"} and done[1]["instance"] == first and done[3]["instance"] == second, (
        "one node of a member under repair at a time: the second waits until the first passes"
    )
    assert [r["reason"] for r in done] == ["unhealthy", "restart_did_not_help"] * 2
    assert all("refused" in r["message"] for r in done)
    assert any(busy_seen), "the second node was held while the first was under repair"
    assert node(big, "2").get("state") == "healthy" and repairs(small) == []

    # Every repair was announced, on the repairing member's own events queue only.
    def announced(member: str) -> list[dict[str, Any]]:
        queue = s.platform(member).queues
        events = [json.loads(m.content) for m in queue.browse(EVENTS_QUEUE, limit=5000, hide_seconds=1)]
        return [e for e in events if e["type"] == "node.repair"]

    mine = announced(big)
    assert sorted((e["instance"], e["action"]) for e in mine) == sorted((r["instance"], r["action"]) for r in done)
    assert all(e["member_id"] == big and e["reason"] and e["message"] and e["scale_set"] == f"vmss-{big}" for e in mine)
    assert announced(small) == []

    # Each deployment checked its own member's nodes only.
    assert set(state(big)["members"]) == {big} and set(state(small)["members"]) == {small}
    assert all(key.startswith(f"vmss-{big}/") for key in state(big)["nodes"])
    assert all(key.startswith(f"vmss-{small}/") for key in state(small)["nodes"])
