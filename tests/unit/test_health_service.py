"""The health check on the fakes: what the scale sets, the state and the events hold after each tick.

The fleet's nodes fail as the emulator's do: ``crashed`` (ARM unhealthy, ports closed; a restart fixes
it), ``hung`` (ARM healthy, ports time out; a restart fixes it), ``port_closed`` (ARM healthy, ports
refused; only a reimage fixes it), ``rpc_closed`` (one port refused; only a reimage fixes it).
"""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest

from shared.decisions.health import HealthPolicy
from shared.errors import FencedError, TransientError
from shared.fakes.clock import FakeClock
from shared.fakes.leases import FakeLeaseStore
from shared.fakes.queues import FakeQueues
from shared.fakes.scalesets import FakeScaleSets
from shared.fakes.state import FakeStateStore
from shared.ports.scalesets import Instance, ScaleSetSpec
from shared.services.health import STATE_PATH, HealthMonitor, health_view, parse_ports, tcp_probe
from shared.services.leadership import COORDINATOR
from shared.settings import TEMPLATE

PORTS = (10002, 10003)
FIXED_BY = {"crashed": "restart", "hung": "restart", "port_closed": "reimage", "rpc_closed": "reimage"}


class FailingScaleSets(FakeScaleSets):
    """The fake with node faults that a restart or a reimage fixes, and a throttle on repairs."""

    def __init__(self) -> None:
        super().__init__()
        self.faults: dict[tuple[str, str], str] = {}
        self.throttled = False

    def fail(self, name: str, instance_id: str, kind: str) -> None:
        self.faults[(name, instance_id)] = kind
        self.set_health(name, instance_id, kind != "crashed")

    def list_instances(self, name: str, *, addresses: bool = False) -> list[Instance]:
        # A repaired node reports healthy again on the next listing (the fake boots at once).
        return [i if i.healthy is not None else replace(i, healthy=(name, i.instance_id) not in self.faults
                                                         or self.faults[(name, i.instance_id)] != "crashed")
                for i in super().list_instances(name, addresses=addresses)]  # fmt: skip

    def _repair(self, name: str, instance_id: str, action: str) -> None:
        if self.throttled:
            raise TransientError("429 Too Many Requests", retry_after=1)
        kind = self.faults.get((name, instance_id))
        if kind and FIXED_BY[kind] in (action, "restart" if action == "reimage" else ""):
            del self.faults[(name, instance_id)]

    def restart(self, name: str, instance_id: str) -> None:
        self._repair(name, instance_id, "restart")
        super().restart(name, instance_id)

    def reimage(self, name: str, instance_id: str) -> None:
        self._repair(name, instance_id, "reimage")
        super().reimage(name, instance_id)


class Fleet:
    def __init__(self, members: int = 2, nodes: int = 3, *, n: int = 3, k: int = 2):
        self.clock = FakeClock()
        self.state, self.sets, self.queues = FakeStateStore(), FailingScaleSets(), FakeQueues()
        self.leases = FakeLeaseStore(self.clock.now)
        grant = self.leases.try_acquire(COORDINATOR, "test/1", 15)
        assert grant is not None
        self.token = grant.fencing_token
        self.probed: list[tuple[str, int]] = []
        self.monitor = HealthMonitor(
            state=self.state, scalesets=self.sets, queues=self.queues, leases=self.leases, clock=self.clock,
            policy=HealthPolicy(unhealthy_checks=n, reimage_after_checks=k), corda_ports=PORTS, probe_timeout=0.5,
            probe=self.probe,
        )  # fmt: skip
        self.address: dict[str, tuple[str, str]] = {}
        for m in range(members):
            mid = f"bank-{m:04d}"
            self.state.create(f"members/{mid}.json", {"member_id": mid, "status": "active"})
            spec = ScaleSetSpec.from_template(TEMPLATE, name=f"vmss-{mid}", location="westeurope", capacity=nodes,
                                              tags={"member_id": mid})  # fmt: skip
            self.sets.poll(self.sets.begin_create_or_update(spec))
            for i in self.sets.instances[f"vmss-{mid}"]:
                assert i.private_ip is not None
                self.address[i.private_ip] = (f"vmss-{mid}", i.instance_id)

    def node(self, member: int, index: int) -> tuple[str, str]:
        """The scale set and instance id of the member's index-th node (the fake numbers instances fleet-wide)."""
        name = f"vmss-bank-{member:04d}"
        return name, self.sets.instances[name][index].instance_id

    def key(self, member: int, index: int) -> str:
        return "/".join(self.node(member, index))

    def fail(self, member: int, index: int, kind: str) -> None:
        self.sets.fail(*self.node(member, index), kind)

    def probe(self, address: str, port: int, timeout: float) -> str | None:
        self.probed.append((address, port))
        kind = self.sets.faults.get(self.address[address])
        if kind is None or (kind == "rpc_closed" and port != 10003):
            return None
        return f"timed out after {timeout:g}s" if kind == "hung" else "refused"

    def tick(self, seconds: float = 60):  # type: ignore[no-untyped-def]
        self.clock.advance(seconds)
        return self.monitor.tick(self.token)

    def events(self, type_: str = "node.repair") -> list[dict[str, object]]:
        return [e for e in self.queues.events() if e["type"] == type_]

    def body(self) -> dict[str, object]:
        doc = self.state.read(STATE_PATH)
        assert doc is not None
        return doc.body


def test_a_healthy_fleet_is_probed_on_every_corda_port_and_nothing_is_repaired() -> None:
    fleet = Fleet()
    check = fleet.tick()
    assert len(check.decisions) == 6 and not check.repairs and check.probes == 12
    assert sorted({p for _, p in fleet.probed}) == [10002, 10003]
    assert check.arm_reads == 1 + 2 * 2, "one listing, then the instances and their NICs of each member"
    view = health_view(fleet.state)
    assert view["members"]["bank-0000"] == {"at": view["updated_at"], "nodes": 3, "healthy": 3, "starting": 0,
                                            "suspect": 0, "unhealthy": 0, "repairing": 0}  # fmt: skip
    assert fleet.body()["fencing_token"] == fleet.token and fleet.body()["nodes"][fleet.key(0, 0)]["failures"] == 0


def test_a_hung_node_arm_calls_healthy_is_restarted_after_n_checks_and_the_repair_is_recorded_and_announced() -> None:
    fleet = Fleet()
    fleet.fail(0, 1, "hung")
    states = [fleet.tick().decisions[fleet.key(0, 1)].state.value for _ in range(3)]
    assert states == ["suspect", "suspect", "repair"]
    assert fleet.sets.restarts == [fleet.node(0, 1)] and not fleet.sets.reimages
    [event] = fleet.events()
    assert (event["member_id"], event["instance"], event["action"], event["reason"]) == (
        "bank-0000",
        fleet.node(0, 1)[1],
        "restart",
        "unhealthy",
    )
    assert "timed out" in str(event["message"])
    [recorded] = health_view(fleet.state)["recent"]
    assert recorded["reason"] == "unhealthy" and recorded["failures"] == 3
    assert fleet.tick().decisions[fleet.key(0, 1)].reason.value == "recovered"
    assert len(fleet.sets.restarts) == 1 and len(fleet.events()) == 1


def test_a_closed_port_a_restart_does_not_fix_is_reimaged_after_k_more_checks_then_recovers() -> None:
    fleet = Fleet(n=2, k=2)
    fleet.fail(1, 0, "port_closed")
    actions = []
    for _ in range(6):
        actions.append(fleet.tick().decisions[fleet.key(1, 0)].reason.value)
    assert actions == ["probe_failed", "unhealthy", "waiting_for_repair", "restart_did_not_help", "recovered",
                       "passing"]  # fmt: skip
    assert [e["action"] for e in fleet.events()] == ["restart", "reimage"]
    assert [r["reason"] for r in health_view(fleet.state)["recent"]] == ["unhealthy", "restart_did_not_help"]


def test_a_node_neither_repair_fixes_is_left_to_an_operator_and_announced_once() -> None:
    fleet = Fleet(n=1, k=1)
    fleet.fail(0, 2, "port_closed")
    fleet.sets.faults[fleet.node(0, 2)] = "forever"  # fixed by nothing
    FIXED_BY["forever"] = "nothing"
    try:
        reasons = [fleet.tick().decisions[fleet.key(0, 2)].reason.value for _ in range(5)]
    finally:
        del FIXED_BY["forever"]
    assert reasons == ["unhealthy", "restart_did_not_help", "repairs_exhausted", "repairs_exhausted",
                       "repairs_exhausted"]  # fmt: skip
    assert len(fleet.events("node.unrepaired")) == 1 and len(fleet.events()) == 2


def test_a_members_last_answering_node_is_never_taken_down_and_one_node_per_member_is_repaired_at_a_time() -> None:
    fleet = Fleet(members=1, nodes=2, n=1, k=3)
    fleet.fail(0, 0, "rpc_closed")  # still answers on p2p
    fleet.fail(0, 1, "port_closed")  # answers on nothing
    first = fleet.tick()
    assert first.decisions[fleet.key(0, 0)].reason.value == "last_serving"
    assert first.decisions[fleet.key(0, 1)].action.value == "restart"
    second = fleet.tick()
    assert second.decisions[fleet.key(0, 0)].reason.value in ("member_busy", "last_serving")
    assert fleet.sets.restarts == [fleet.node(0, 1)]
    assert all(e["instance"] == fleet.node(0, 1)[1] for e in fleet.events())


def test_at_most_a_fifth_of_the_fleet_is_repaired_in_one_tick() -> None:
    fleet = Fleet(members=10, nodes=2, n=1)
    for m in range(10):
        fleet.fail(m, 0, "crashed")
    check = fleet.tick()
    assert len(check.repairs) == 4, "20 nodes: four repairs a tick"
    assert sum(d.reason.value == "fleet_budget" for d in check.decisions.values()) == 6
    assert len(fleet.tick().repairs) == 4 and len(fleet.tick().repairs) == 2


def test_a_throttled_repair_is_not_recorded_and_is_tried_again_next_tick() -> None:
    fleet = Fleet(n=1)
    fleet.fail(0, 0, "crashed")
    fleet.sets.throttled = True
    check = fleet.tick()
    assert not check.repairs and not fleet.events() and not health_view(fleet.state)["recent"]
    assert "429" in check.decisions[fleet.key(0, 0)].message
    assert fleet.body()["nodes"][fleet.key(0, 0)]["repair"] is None
    fleet.sets.throttled = False
    assert [r["action"] for r in fleet.tick().repairs] == ["restart"]


def test_instance_reads_are_bounded_and_members_take_turns() -> None:
    fleet = Fleet(members=120, nodes=1)
    seen: set[str] = set()
    for _ in range(3):
        check = fleet.tick()
        assert check.arm_reads <= 1 + 100 and len(check.members) == 50
        seen |= set(check.members)
    assert len(seen) == 120
    assert len(fleet.body()["nodes"]) == 120, "heartbeats of members not read this tick are kept"


def test_a_failed_instance_listing_leaves_that_members_heartbeats_alone() -> None:
    fleet = Fleet(members=2, n=2)
    fleet.fail(0, 0, "crashed")
    fleet.tick()
    del fleet.sets.sets["vmss-bank-0001"]  # listing it now fails; it is no longer listed either
    fleet.tick()
    nodes = fleet.body()["nodes"]
    assert all(key.startswith("vmss-bank-0000/") for key in nodes)
    assert fleet.sets.restarts == [fleet.node(0, 0)]


def test_a_deposed_coordinator_is_refused_before_it_touches_anything() -> None:
    fleet = Fleet(n=1)
    fleet.fail(0, 0, "crashed")
    fleet.clock.advance(16)
    assert fleet.leases.try_acquire(COORDINATOR, "test/2", 15) is not None
    with pytest.raises(FencedError):
        fleet.monitor.tick(fleet.token)
    assert not fleet.sets.restarts and fleet.state.read(STATE_PATH) is None


def test_the_tcp_probe_tells_open_refused_and_timed_out_apart() -> None:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(0)
    port = listening.getsockname()[1]
    try:
        assert tcp_probe("127.0.0.1", port, 1.0) is None
        listening.accept()[0].close()  # take the probe's connection off the backlog
        filler = socket.create_connection(("127.0.0.1", port), timeout=1)  # the backlog of 0 is now full
        try:
            assert tcp_probe("127.0.0.1", port, 0.3) == "timed out after 0.3s"
        finally:
            filler.close()
    finally:
        listening.close()
    assert tcp_probe("127.0.0.1", port, 1.0) == "refused"


def test_corda_ports_are_parsed_and_nonsense_is_refused_by_name() -> None:
    assert parse_ports(" 10002, 10003 ") == (10002, 10003)
    for bad in ("", "10002,", "p2p", "70000", "10002,10002"):
        with pytest.raises(ValueError):
            parse_ports(bad)
