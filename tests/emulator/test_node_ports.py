"""The emulated nodes' Corda ports: each running instance listens on 127.0.0.1, where the real SDK (through
the ScaleSets adapter) says it does; faults close or hang them while ARM may still call the node healthy."""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Callable

import pytest

from shared.adapters.compute import ArmScaleSets
from shared.ports.scalesets import Instance
from shared.services.health import tcp_probe
from shared.settings import Settings
from tests.emulator.test_emulator import make_scale_set
from tools.emulator import EmulatorHandle
from tools.harness.stack import admin

pytestmark = pytest.mark.integration
PORTS = (10002, 10003)


def wait_for(what: str, done: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def probes(instance: Instance, timeout: float = 0.5) -> dict[int, str | None]:
    """Each Corda port of the node: None when it accepts, else what happened."""
    results: dict[int, str | None] = {}
    for port in PORTS:
        endpoint = instance.endpoint(port)
        results[port] = "no endpoint" if endpoint is None else tcp_probe(*endpoint, timeout)
    return results


def nodes(scalesets: ArmScaleSets, name: str) -> dict[str, Instance]:
    return {i.instance_id: i for i in scalesets.list_instances(name, addresses=True)}


def serving(scalesets: ArmScaleSets, name: str, instance_id: str) -> bool:
    found = nodes(scalesets, name).get(instance_id)
    return found is not None and set(probes(found).values()) == {None}


def test_every_running_node_serves_its_corda_ports_where_its_nic_says_and_scale_in_closes_them(
    azure_settings: Settings,
) -> None:
    scalesets, name, _ = make_scale_set(azure_settings, 2)
    wait_for("both nodes serve", lambda: all(serving(scalesets, name, i) for i in ("0", "1")))
    first, second = nodes(scalesets, name).values()
    assert first.private_ip == second.private_ip == "127.0.0.1"
    assert first.ports is not None and second.ports is not None
    assert [p for p, _ in first.ports] == list(PORTS), "one listening port per Corda port"
    assert not {p for _, p in first.ports} & {p for _, p in second.ports}, "nodes sharing 127.0.0.1 share no port"
    assert scalesets.list_instances(name)[0].private_ip is None, "without addresses, one read and no address"
    current = scalesets.get(name)
    assert current is not None
    scalesets.set_capacity(name, 1, etag=current.etag)
    wait_for("the removed node's ports close", lambda: set(probes(second).values()) == {"refused"})
    assert set(probes(first).values()) == {None}


def test_a_closed_port_leaves_arm_healthy_refuses_connections_survives_a_restart_and_a_reimage_reopens_it(
    azure_settings: Settings, emulator_instance: EmulatorHandle
) -> None:
    scalesets, name, _ = make_scale_set(azure_settings, 1)
    wait_for("the node serves", lambda: serving(scalesets, name, "0"))
    admin(emulator_instance, "PUT", f"/_admin/instances/{name}/0", {"fault": "port_closed", "ports": [10003]})
    wait_for("RPC refuses", lambda: probes(nodes(scalesets, name)["0"])[10003] == "refused")
    node = nodes(scalesets, name)["0"]
    assert node.healthy is True and probes(node)[10002] is None, "ARM and p2p still look fine"
    admin(emulator_instance, "PUT", f"/_admin/instances/{name}/0", {"fault": "port_closed"})
    wait_for("every port refuses", lambda: set(probes(nodes(scalesets, name)["0"]).values()) == {"refused"})
    scalesets.restart(name, "0")
    wait_for("the restart done", lambda: nodes(scalesets, name)["0"].power_state == "running")
    assert set(probes(nodes(scalesets, name)["0"]).values()) == {"refused"}, "a restart does not fix a closed port"
    scalesets.reimage(name, "0")
    wait_for("a reimage reopens the ports", lambda: serving(scalesets, name, "0"))


def test_a_hung_node_arm_calls_healthy_accepts_nothing_until_it_is_restarted(
    azure_settings: Settings, emulator_instance: EmulatorHandle
) -> None:
    scalesets, name, _ = make_scale_set(azure_settings, 1)
    wait_for("the node serves", lambda: serving(scalesets, name, "0"))
    admin(emulator_instance, "PUT", f"/_admin/instances/{name}/0", {"fault": "hung"})
    wait_for("connections time out", lambda: set(probes(nodes(scalesets, name)["0"], 0.3).values()) == {
        "timed out after 0.3s"})  # fmt: skip
    assert nodes(scalesets, name)["0"].healthy is True
    scalesets.restart(name, "0")
    wait_for("the restart brings it back", lambda: serving(scalesets, name, "0"))


def test_a_crashed_node_is_unhealthy_in_arm_and_its_ports_refuse(
    azure_settings: Settings, emulator_instance: EmulatorHandle
) -> None:
    scalesets, name, _ = make_scale_set(azure_settings, 1)
    wait_for("the node serves", lambda: serving(scalesets, name, "0"))
    admin(emulator_instance, "PUT", f"/_admin/instances/{name}/0", {"fault": "crashed"})
    wait_for("its ports refuse", lambda: set(probes(nodes(scalesets, name)["0"]).values()) == {"refused"})
    assert nodes(scalesets, name)["0"].healthy is False


@pytest.mark.parametrize(
    "body",
    [{"fault": "melted"}, {"fault": "hung", "ports": [10002]}, {"fault": "port_closed", "ports": [22]},
     {"fault": "port_closed", "ports": []}, {"fault": "port_closed", "ports": "10002"}],
)  # fmt: skip
def test_a_bad_instance_fault_is_refused_with_what_is_allowed(
    azure_settings: Settings, emulator_instance: EmulatorHandle, body: dict[str, object]
) -> None:
    _, name, _ = make_scale_set(azure_settings, 1)
    with pytest.raises(urllib.error.HTTPError) as refused:
        admin(emulator_instance, "PUT", f"/_admin/instances/{name}/0", body)
    assert refused.value.code == 400
    message = refused.value.read().decode()
    expected = "fault must be" if body["fault"] == "melted" else "ports is only for port_closed"
    assert expected in message, message
