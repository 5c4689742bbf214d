"""The ScaleSets port over ARM Compute (azure-mgmt-compute).

Writes are absolute capacities guarded by the ETag that was read (If-Match), never increments.
Long-running operations are started with ``polling=False`` and checked later through the scale set's
provisioning state, so a queue step never holds a worker while ARM provisions.

Where a node is reached: a VMSS VM names its NICs (``properties.networkProfile.networkInterfaces``),
but their IP addresses belong to the Network resource provider, which serves a scale set's NICs at
``.../virtualMachineScaleSets/{name}/networkInterfaces`` (``NetworkInterfaces_ListVirtualMachineScaleSet
NetworkInterfaces``). The project does not carry azure-mgmt-network for one read, so that listing goes
through the Compute client's own pipeline (``send_request``: same credential, retries and endpoint)
and only the fields read here are parsed. The emulator serves every node on 127.0.0.1 and tags each
NIC ``corda-ports`` (``10002=41234,10003=41235``) with the ports it serves them on; in Azure no NIC
carries that tag and each Corda port is reached at the NIC's address on that same port.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from azure.core import MatchConditions
from azure.core.rest import HttpRequest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import (
    Sku,
    VirtualMachineScaleSet,
    VirtualMachineScaleSetUpdate,
    VirtualMachineScaleSetVM,
)

from shared.adapters.azure_common import client_options, credential, translate
from shared.errors import NotFoundError, PermanentError, TransientError
from shared.ports.scalesets import Instance, Operation, ScaleSet, ScaleSetSpec
from shared.reasons import Reason
from shared.settings import Settings

#: api-version of the Network resource provider's scale-set NIC listing.
NETWORK_API_VERSION = "2024-05-01"
#: NIC tag the emulator sets: where each Corda port of a node is served (see the module docstring).
PORTS_TAG = "corda-ports"
#: Pages of a NIC listing followed at most (a page holds many NICs; this only stops a loop).
MAX_PAGES = 100


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


def _ports(tag: str | None, where: str) -> tuple[tuple[int, int], ...] | None:
    """The ``corda-ports`` tag, ``10002=41234,10003=41235``, as (Corda port, port) pairs."""
    if tag is None:
        return None
    pairs = []
    for part in filter(None, (p.strip() for p in tag.split(","))):
        corda, _, reached = part.partition("=")
        if not (corda.isdigit() and reached.isdigit()):
            raise PermanentError(f"{where}: tag {PORTS_TAG}={tag!r} must read like 10002=41234,10003=41235")
        pairs.append((int(corda), int(reached)))
    return tuple(pairs)


def _addresses(
    nics: list[dict[str, Any]], where: str
) -> dict[str, tuple[str | None, tuple[tuple[int, int], ...] | None]]:
    """Instance id → (primary private IP, port map) from a scale set's NIC listing."""
    found: dict[str, tuple[str | None, tuple[tuple[int, int], ...] | None]] = {}
    for nic in nics:
        props = nic.get("properties") or {}
        vm_id = str((props.get("virtualMachine") or {}).get("id") or "")
        if "/virtualMachines/" not in vm_id:
            continue
        instance_id = vm_id.rstrip("/").rsplit("/", 1)[-1]
        if instance_id in found and not props.get("primary"):
            continue  # a VM's secondary NIC never hides its primary one
        configs = props.get("ipConfigurations") or []
        primary = next(
            (c for c in configs if (c.get("properties") or {}).get("primary")), configs[0] if configs else {}
        )
        address = (primary.get("properties") or {}).get("privateIPAddress")
        found[instance_id] = (str(address) if address else None, _ports((nic.get("tags") or {}).get(PORTS_TAG), where))
    return found


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
    initializing = str(health_code) == "HealthState/initializing"
    protected = bool(props.protection_policy.protect_from_scale_in) if props and props.protection_policy else False
    return Instance(
        instance_id=str(vm.instance_id),
        healthy=healthy,
        power_state=str(power).removeprefix("PowerState/"),
        provisioning_state=str(props.provisioning_state if props else "Unknown"),
        protected_from_scale_in=protected,
        initializing=initializing,
    )


class ArmScaleSets:
    def __init__(self, client: ComputeManagementClient, resource_group: str, subscription_id: str = ""):
        self.client, self.rg, self.subscription_id = client, resource_group, subscription_id

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
        return cls(client, settings.text("AZURE_RESOURCE_GROUP"), settings.text("AZURE_SUBSCRIPTION_ID"))

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
            raise PermanentError(f"capacity {capacity} must not be negative", reason=Reason.CAPACITY)
        try:
            result = self.client.virtual_machine_scale_sets.begin_update(
                self.rg, name, VirtualMachineScaleSetUpdate(sku=Sku(capacity=capacity)),
                etag=etag, match_condition=MatchConditions.IfNotModified, polling=False,
            ).result()  # fmt: skip
        except Exception as e:
            raise translate(e, f"set capacity of {name} to {capacity}") from e
        return _scale_set(result)

    def list_instances(self, name: str, *, addresses: bool = False) -> list[Instance]:
        try:
            found = [
                _instance(vm)
                for vm in self.client.virtual_machine_scale_set_vms.list(self.rg, name, expand="instanceView")
            ]
        except Exception as e:
            raise translate(e, f"list instances of {name}") from e
        if not addresses:
            return found
        where = f"network interfaces of {name}"
        reached = _addresses(self._network_interfaces(name, where), where)
        return [replace(i, private_ip=reached.get(i.instance_id, (None, None))[0],
                        ports=reached.get(i.instance_id, (None, None))[1]) for i in found]  # fmt: skip

    def _network_interfaces(self, name: str, where: str) -> list[dict[str, Any]]:
        """The scale set's NICs from the Network RP, every page (see the module docstring)."""
        url: str | None = (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.rg}/providers/Microsoft.Compute"
            f"/virtualMachineScaleSets/{name}/networkInterfaces?api-version={NETWORK_API_VERSION}"
        )
        nics: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return nics
            try:
                response = self.client.send_request(HttpRequest("GET", url))
                response.raise_for_status()
                page = response.json()
            except ValueError as e:
                raise TransientError(f"{where}: the answer is not JSON: {e}") from e
            except Exception as e:
                raise translate(e, where) from e
            if not isinstance(page, dict) or not isinstance(page.get("value"), list):
                raise PermanentError(f"{where}: the answer has no 'value' list", reason=Reason.SHAPE)
            nics += [n for n in page["value"] if isinstance(n, dict)]
            url = page.get("nextLink") or None
        raise TransientError(f"{where}: more than {MAX_PAGES} pages")

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


#: The nodes' admin user: SSH key only, its home where the key is installed.
ADMIN_USER = "corda"


def computer_name_prefix(name: str) -> str:
    """Instances' host name prefix: the scale set's name without dashes, at most 9 characters."""
    return name.replace("-", "")[:9]


def template_body(spec: ScaleSetSpec) -> VirtualMachineScaleSet:
    """The whole ARM body of a member's scale set: the deployment's values from the template held in settings
    (SCALE_SET_TEMPLATE), the rest the same for every member.

    A PUT replaces the model, so everything the scale set must keep is here: zones, trusted launch (secure
    boot, vTPM) with encryption at host, the nodes' user-assigned identity, SSH-key-only login, the Premium
    ZRS OS disk, accelerated networking in the load balancer's backend pool, the application health
    extension on the Corda port, Manual upgrades with automatic OS image upgrades, automatic repairs off
    (the control plane repairs, within a budget) and scale-in of the newest VM first.
    tests/contract/test_scaleset_body.py reads back what ARM received and checks each of them.
    """
    image = spec.image.split(":")
    image_reference = ({"publisher": image[0], "offer": image[1], "sku": image[2], "version": image[3]}
                       if len(image) == 4 else {"id": spec.image})  # fmt: skip
    linux: dict[str, Any] = {"disablePasswordAuthentication": True, "provisionVMAgent": True}
    if spec.admin_ssh_public_key:  # empty only against the local emulator, which has no VMs to log in to
        linux["ssh"] = {
            "publicKeys": [{"path": f"/home/{ADMIN_USER}/.ssh/authorized_keys", "keyData": spec.admin_ssh_public_key}]
        }
    ip_configuration: dict[str, Any] = {"subnet": {"id": spec.subnet_id}}
    if spec.backend_pool_id:
        ip_configuration["loadBalancerBackendAddressPools"] = [{"id": spec.backend_pool_id}]
    body: dict[str, Any] = {
        "location": spec.location,
        "tags": spec.tags,
        "sku": {"name": spec.vm_size, "tier": "Standard", "capacity": spec.capacity},
        "properties": {
            "orchestrationMode": "Uniform",
            "upgradePolicy": {
                "mode": "Manual",
                "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True, "disableAutomaticRollback": False},
            },
            "automaticRepairsPolicy": {"enabled": False},
            "scaleInPolicy": {"rules": ["NewestVM"], "forceDeletion": False},
            "virtualMachineProfile": {
                "securityProfile": {
                    "encryptionAtHost": True,
                    "securityType": "TrustedLaunch",
                    "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
                },
                "osProfile": {
                    "computerNamePrefix": computer_name_prefix(spec.name),
                    "adminUsername": ADMIN_USER,
                    "customData": spec.custom_data,
                    "linuxConfiguration": linux,
                },
                "storageProfile": {
                    "imageReference": image_reference,
                    "osDisk": {
                        "createOption": "FromImage",
                        "caching": "ReadWrite",
                        "managedDisk": {"storageAccountType": "Premium_ZRS"},
                    },
                },
                "networkProfile": {
                    "networkInterfaceConfigurations": [
                        {
                            "name": "nic",
                            "properties": {
                                "primary": True,
                                "enableAcceleratedNetworking": True,
                                "ipConfigurations": [{"name": "ipconfig", "properties": ip_configuration}],
                            },
                        }
                    ]
                },
                "extensionProfile": {
                    "extensions": [
                        {
                            "name": "health",
                            "properties": {
                                "publisher": "Microsoft.ManagedServices",
                                "type": "ApplicationHealthLinux",
                                "typeHandlerVersion": "2.0",
                                "autoUpgradeMinorVersion": True,
                                "enableAutomaticUpgrade": True,
                                "settings": {"protocol": "tcp", "port": spec.health_port},
                            },
                        }
                    ]
                },
            },
        },
    }
    if spec.zones:
        body["zones"] = list(spec.zones)
    if spec.identity_id:  # empty only against the local emulator, which has no identity resources
        body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {spec.identity_id: {}}}
    return VirtualMachineScaleSet(json.loads(json.dumps(body)))
