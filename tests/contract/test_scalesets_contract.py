"""The ScaleSets contract: the fake and ARM Compute (through the emulator, with the real SDK) agree."""

from __future__ import annotations

import time
import uuid

import pytest

from shared.errors import ConflictError, TransientError
from shared.ports.scalesets import Operation, ScaleSets, ScaleSetSpec


def spec(capacity: int = 2) -> ScaleSetSpec:
    return ScaleSetSpec(
        name=f"vmss-t{uuid.uuid4().hex[:10]}", location="westeurope", capacity=capacity, vm_size="Standard_D2s_v5",
        image="Canonical:ubuntu-24_04-lts:server:latest", subnet_id="/subnets/nodes", backend_pool_id="/pools/corda",
        identity_id="", custom_data="", tags={"member_id": "bank-z"},
    )  # fmt: skip


def settle(scalesets: ScaleSets, op: Operation) -> Operation:
    for _ in range(100):
        op = scalesets.poll(op)
        if op.done:
            return op
        time.sleep(0.1)
    raise AssertionError("the operation never finished")


def test_a_scale_set_is_created_by_a_long_running_operation_polled_to_success(scalesets: ScaleSets) -> None:
    s = spec(2)
    op = scalesets.begin_create_or_update(s)
    assert op.status == "InProgress", "creating returns at once, without waiting for ARM"
    assert settle(scalesets, op).status == "Succeeded"
    created = scalesets.get(s.name)
    assert created is not None and created.capacity == 2 and created.provisioning_state == "Succeeded"
    assert created.tags == {"member_id": "bank-z"} and created.id.endswith(f"/virtualMachineScaleSets/{s.name}")
    assert s.name in [x.name for x in scalesets.list_all()]
    assert len(scalesets.list_instances(s.name)) == 2


def test_capacity_is_set_absolutely_and_only_with_the_current_etag(scalesets: ScaleSets) -> None:
    s = spec(1)
    settle(scalesets, scalesets.begin_create_or_update(s))
    current = scalesets.get(s.name)
    assert current is not None
    updated = scalesets.set_capacity(s.name, 3, etag=current.etag)
    assert updated.capacity == 3 and updated.etag != current.etag
    with pytest.raises(ConflictError):
        scalesets.set_capacity(s.name, 5, etag=current.etag)
    assert scalesets.get(s.name).capacity == 3  # type: ignore[union-attr]
    assert len(scalesets.list_instances(s.name)) == 3


def test_scale_in_never_removes_a_protected_instance(scalesets: ScaleSets) -> None:
    s = spec(3)
    settle(scalesets, scalesets.begin_create_or_update(s))
    newest = scalesets.list_instances(s.name)[-1]
    scalesets.set_protection(s.name, newest.instance_id, protect_from_scale_in=True)
    current = scalesets.get(s.name)
    assert current is not None
    scalesets.set_capacity(s.name, 1, etag=current.etag)
    remaining = scalesets.list_instances(s.name)
    assert newest.instance_id in [i.instance_id for i in remaining]
    assert [i.protected_from_scale_in for i in remaining if i.instance_id == newest.instance_id] == [True]


def test_instances_can_be_restarted_and_reimaged(scalesets: ScaleSets) -> None:
    s = spec(1)
    settle(scalesets, scalesets.begin_create_or_update(s))
    instance = scalesets.list_instances(s.name)[0]
    scalesets.restart(s.name, instance.instance_id)
    scalesets.reimage(s.name, instance.instance_id)
    assert [i.instance_id for i in scalesets.list_instances(s.name)] == [instance.instance_id]


def test_a_missing_scale_set_reads_as_absent(scalesets: ScaleSets) -> None:
    assert scalesets.get("vmss-nobody-here") is None


def test_arm_throttling_surfaces_as_transient_with_its_retry_after(
    backend: str, scalesets: ScaleSets, request: pytest.FixtureRequest
) -> None:
    if backend == "fake":
        pytest.skip("faults are injected by the emulator")
    from tools.harness.stack import admin

    handle = request.getfixturevalue("emulator_instance")
    admin(handle, "PUT", "/_admin/faults/compute", {"status": 429, "count": 20, "retry_after": 1})
    try:
        with pytest.raises(TransientError) as raised:
            scalesets.list_all()
        assert raised.value.retry_after == 1.0
    finally:
        admin(handle, "DELETE", "/_admin/faults")


def test_instances_listed_with_addresses_say_where_they_are_reached_and_without_cost_one_read(
    scalesets: ScaleSets,
) -> None:
    s = spec(2)
    settle(scalesets, scalesets.begin_create_or_update(s))
    with_addresses = scalesets.list_instances(s.name, addresses=True)
    assert [i.instance_id for i in with_addresses] == [i.instance_id for i in scalesets.list_instances(s.name)]
    assert all(i.private_ip for i in with_addresses)
    assert all(i.private_ip is None and i.endpoint(10002) is None for i in scalesets.list_instances(s.name))
