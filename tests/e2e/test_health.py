"""Node health end to end: the real app on the local host, the emulator's nodes really listening on their
Corda ports, ARM through the real SDK.

Two founders: one with three nodes, one with a single node. The single node's RPC port closes while
p2p still answers: it is the member's last answering node, so it is held, never repaired. Two of the
other member's nodes close every port (ARM still calls them healthy): one at a time, each is
restarted after N checks, then reimaged when the restart did not help, and passes again; every
repair is recorded with its reason and announced as ``node.repair``.
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

import pytest

from shared.bootstrap import Platform
from shared.services import onboarding as ob
from shared.services.health import STATE_PATH
from shared.services.records import EVENTS_QUEUE
from shared.settings import Settings
from tests.conftest import admin
from tests.e2e.test_onboarding import Consortium, wait_until
from tests.unit.onboarding_world import request

pytestmark = pytest.mark.e2e


def member_id() -> str:
    return secrets.choice(string.ascii_lowercase) + "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))


def test_closed_ports_are_restarted_then_reimaged_one_node_per_member_never_the_last_answering_one(
    run_app, azure_settings: Settings, emulator_instance
) -> None:
    big, small = member_id(), member_id()
    values = {
        **azure_settings.values, "CONSORTIUM_FOUNDERS": f"{big},{small}", "HEALTH_SCHEDULE": "*/2 * * * * *",
        "HEALTH_UNHEALTHY_CHECKS": "2", "HEALTH_REIMAGE_AFTER_CHECKS": "2", "HEALTH_PROBE_TIMEOUT_SECONDS": "0.5",
    }  # fmt: skip
    run_app("health-e2e", **values)
    world = Consortium(Platform(Settings(values)))

    def state() -> dict[str, Any]:
        doc = world.p.state.read(STATE_PATH)
        return doc.body if doc else {}

    def node(member: str, instance: str) -> dict[str, Any]:
        return dict(state().get("nodes", {}).get(f"vmss-{member}/{instance}", {}))

    def repairs(member: str) -> list[dict[str, Any]]:
        return [r for r in state().get("recent", []) if r["member_id"] == member]

    def fault(member: str, instance: str, body: dict[str, Any]) -> None:
        admin(emulator_instance, "PUT", f"/_admin/instances/vmss-{member}/{instance}", body)

    try:
        for mid, nodes in ((big, 3), (small, 1)):
            world.p.queues.send(
                ob.REQUESTS, request(mid, node_count=nodes, scale={"min_nodes": nodes, "max_nodes": nodes})
            )
        for mid in (big, small):
            world.wait_status(mid, "active")
        wait_until("every node checked healthy", lambda: state().get("members", {}).get(big, {}).get("healthy") == 3
                   and state()["members"].get(small, {}).get("healthy") == 1, timeout=90)  # fmt: skip

        # The single node's RPC port closes; p2p still answers: never taken down.
        fault(small, "0", {"fault": "port_closed", "ports": [10003]})
        wait_until("the last answering node held", lambda: node(small, "0").get("reason") == "last_serving", timeout=60)
        ticks = state()["ticks"]
        wait_until("three more checks", lambda: state()["ticks"] >= ticks + 3, timeout=60)
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

        # Every repair was announced.
        events = [json.loads(m.content) for m in world.p.queues.browse(EVENTS_QUEUE, limit=5000, hide_seconds=1)]
        announced = [e for e in events if e["type"] == "node.repair" and e["member_id"] in (big, small)]
        assert sorted((e["instance"], e["action"]) for e in announced) == sorted(
            (r["instance"], r["action"]) for r in done
        )
        assert all(e["reason"] and e["message"] and e["scale_set"] == f"vmss-{big}" for e in announced)
    finally:
        # The test Azurite lives for the whole session: members left active would change the quorum
        # that later tests' votes must reach.
        for mid in (big, small):
            if world.status(mid) is not None:
                off = {"request_id": f"off-{mid}", "member_id": mid, "reason": "end of the health test"}
                world.p.queues.send(ob.OFFBOARDING, json.dumps(off))
        for mid in (big, small):
            if world.status(mid) is not None:
                world.wait_status(mid, "offboarded")
