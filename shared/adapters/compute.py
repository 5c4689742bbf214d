"""The ScaleSets port over ARM Compute (azure-mgmt-compute).

Writes are absolute capacities guarded by the ETag that was read (If-Match), never increments.
Long-running operations are started with ``polling=False`` and checked later through the scale set's
provisioning state, so a queue step never holds a worker while ARM provisions.
"""

from __future__ import annotations

import json
from typing import Any

from azure.core import MatchConditions
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import (
    Sku,
    VirtualMachineScaleSet,
    VirtualMachineScaleSetUpdate,
    VirtualMachineScaleSetVM,
)

from shared.adapters.azure_common import client_options, credential, translate
from shared.errors import NotFoundError, PermanentError
from shared.ports.scalesets import Instance, Operation, ScaleSet, ScaleSetSpec
from shared.settings import Settings


def _scale_set(vmss: VirtualMachineScaleSet) -> ScaleSet:
    return ScaleSet(
        id=str(vmss.id),
        name=str(vmss.name),
        location=str(vmss.location),
        capacity=int(vmss.sku.capacity or 0) if vmss.sku else 0,
        etag=str(vmss.etag or ""),
        provisioning_state=str(vmss.properties.provisioning_state if vmss.properties else "Unknown"),
        tags=dict(vmss.tags or {}),
    )


def _instance(vm: VirtualMachineScaleSetVM) -> Instance:
    props: Any = vm.properties
    view = props.instance_view if props else None
    health_code = view.vm_health.status.code if view and view.vm_health and view.vm_health.status else None
    power = (
        next(
            (s.code for s in (view.statuses or []) if s.code and s.code.startswith("PowerState/")), "PowerState/unknown"
        )
        if view
        else "PowerState/unknown"
    )
    healthy = {"HealthState/healthy": True, "HealthState/unhealthy": False}.get(str(health_code))
    protected = bool(props.protection_policy.protect_from_scale_in) if props and props.protection_policy else False
    return Instance(
        instance_id=str(vm.instance_id),
        healthy=healthy,
        power_state=str(power).removeprefix("PowerState/"),
        provisioning_state=str(props.provisioning_state if props else "Unknown"),
        protected_from_scale_in=protected,
    )


class ArmScaleSets:
    def __init__(self, client: ComputeManagementClient, resource_group: str):
        self.client, self.rg = client, resource_group

    @classmethod
    def from_settings(cls, settings: Settings) -> ArmScaleSets:
        endpoint = settings.text("AZURE_ARM_ENDPOINT").rstrip("/")
        client = ComputeManagementClient(
            credential(settings),
            settings.text("AZURE_SUBSCRIPTION_ID"),
            base_url=endpoint,
            credential_scopes=["https://management.azure.com/.default"],
            **client_options(settings, "arm"),
        )
        return cls(client, settings.text("AZURE_RESOURCE_GROUP"))

    def get(self, name: str) -> ScaleSet | None:
        try:
            return _scale_set(self.client.virtual_machine_scale_sets.get(self.rg, name))
        except Exception as e:
            error = translate(e, f"get scale set {name}")
            if isinstance(error, NotFoundError):
                return None
            raise error from e

    def list_all(self) -> list[ScaleSet]:
        try:
            return [_scale_set(v) for v in self.client.virtual_machine_scale_sets.list(self.rg)]
        except Exception as e:
            raise translate(e, f"list scale sets of {self.rg}") from e

    def begin_create_or_update(self, spec: ScaleSetSpec) -> Operation:
        body = template_body(spec)
        try:
            self.client.virtual_machine_scale_sets.begin_create_or_update(
                self.rg, spec.name, body, polling=False
            ).result()
        except Exception as e:
            raise translate(e, f"create or update scale set {spec.name}") from e  # noqa: S608 - not SQL  # nosec B608
        return Operation(token=spec.name, status="InProgress")

    def poll(self, operation: Operation) -> Operation:
        current = self.get(operation.token)
        if current is None:
            return Operation(operation.token, "Failed", error=f"scale set {operation.token} does not exist")
        state = current.provisioning_state
        if state == "Succeeded":
            return Operation(operation.token, "Succeeded")
        if state in ("Failed", "Canceled"):
            return Operation(operation.token, state, error=f"provisioning state {state}")
        return Operation(operation.token, "InProgress")

    def set_capacity(self, name: str, capacity: int, *, etag: str) -> ScaleSet:
        if capacity < 0:
            raise PermanentError(f"capacity {capacity} must not be negative", reason="capacity")
        try:
            result = self.client.virtual_machine_scale_sets.begin_update(
                self.rg, name, VirtualMachineScaleSetUpdate(sku=Sku(capacity=capacity)),
                etag=etag, match_condition=MatchConditions.IfNotModified, polling=False,
            ).result()  # fmt: skip
        except Exception as e:
            raise translate(e, f"set capacity of {name} to {capacity}") from e
        return _scale_set(result)

    def list_instances(self, name: str) -> list[Instance]:
        try:
            return [
                _instance(vm)
                for vm in self.client.virtual_machine_scale_set_vms.list(self.rg, name, expand="instanceView")
            ]
        except Exception as e:
            raise translate(e, f"list instances of {name}") from e

    def set_protection(self, name: str, instance_id: str, *, protect_from_scale_in: bool) -> None:
        try:
            vm = self.client.virtual_machine_scale_set_vms.get(self.rg, name, instance_id)
            body = VirtualMachineScaleSetVM(
                {
                    "location": vm.location,
                    "properties": {"protectionPolicy": {"protectFromScaleIn": protect_from_scale_in}},
                }
            )
            self.client.virtual_machine_scale_set_vms.begin_update(
                self.rg, name, instance_id, body, polling=False
            ).result()
        except Exception as e:
            raise translate(e, f"protect instance {instance_id} of {name}") from e

    def restart(self, name: str, instance_id: str) -> None:
        try:
            self.client.virtual_machine_scale_set_vms.begin_restart(self.rg, name, instance_id, polling=False).result()
        except Exception as e:
            raise translate(e, f"restart instance {instance_id} of {name}") from e

    def reimage(self, name: str, instance_id: str) -> None:
        try:
            self.client.virtual_machine_scale_set_vms.begin_reimage(self.rg, name, instance_id, polling=False).result()
        except Exception as e:
            raise translate(e, f"reimage instance {instance_id} of {name}") from e


def template_body(spec: ScaleSetSpec) -> VirtualMachineScaleSet:
    """The ARM body of a member's scale set, from the template held in settings (SCALE_SET_TEMPLATE)."""
    image = spec.image.split(":")
    image_reference = ({"publisher": image[0], "offer": image[1], "sku": image[2], "version": image[3]}
                       if len(image) == 4 else {"id": spec.image})  # fmt: skip
    body: dict[str, Any] = {
        "location": spec.location,
        "tags": spec.tags,
        "sku": {"name": spec.vm_size, "tier": "Standard", "capacity": spec.capacity},
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {spec.identity_id: {}}}
        if spec.identity_id
        else None,
        "properties": {
            "upgradePolicy": {"mode": "Manual"},
            "scaleInPolicy": {"rules": ["NewestVM"], "forceDeletion": False},
            "automaticRepairsPolicy": {"enabled": False},
            "virtualMachineProfile": {
                "osProfile": {
                    "computerNamePrefix": spec.name[:9],
                    "adminUsername": "corda",
                    "customData": spec.custom_data,
                    "linuxConfiguration": {"disablePasswordAuthentication": True},
                },
                "storageProfile": {
                    "imageReference": image_reference,
                    "osDisk": {"createOption": "FromImage", "managedDisk": {"storageAccountType": "Premium_LRS"}},
                },
                "networkProfile": {
                    "networkInterfaceConfigurations": [
                        {
                            "name": "nic",
                            "properties": {
                                "primary": True,
                                "ipConfigurations": [
                                    {
                                        "name": "ipconfig",
                                        "properties": {
                                            "subnet": {"id": spec.subnet_id},
                                            "loadBalancerBackendAddressPools": [{"id": spec.backend_pool_id}]
                                            if spec.backend_pool_id
                                            else [],
                                        },
                                    }
                                ],
                            },
                        }
                    ]
                },
            },
        },
    }
    if body["identity"] is None:
        del body["identity"]
    return VirtualMachineScaleSet(json.loads(json.dumps(body)))
