"""The scale set the control plane creates carries everything the deployment's own Bicep used to set.

Until the control plane became the scale set's one owner, ``infra/modules/scaleset.bicep`` declared
``vmss-{member}``; an ARM PUT replaces the whole model, so each of its settings now has to be in the body
the app sends. Each row below is one of them, read back from what ARM received: the spec is built from a
SCALE_SET_TEMPLATE shaped as infra/main.bicep fills it, created with the real azure-mgmt-compute client
against the emulator, which keeps the body it was sent and returns it on GET. A change that drops or
alters one fails its row.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from azure.core.rest import HttpRequest

from shared.adapters.compute import ArmScaleSets, template_body
from shared.ports.scalesets import TEMPLATE_FIELDS, ScaleSetSpec
from shared.settings import Settings

SUB = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-bank-z/providers"
SUBNET = f"{SUB}/Microsoft.Network/virtualNetworks/vnet-bank-z/subnets/nodes"
POOL = f"{SUB}/Microsoft.Network/loadBalancers/lb-bank-z/backendAddressPools/corda-nodes"
IDENTITY = f"{SUB}/Microsoft.ManagedIdentity/userAssignedIdentities/id-corda-bank-z"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q corda@bank-z"
CLOUD_INIT = base64.b64encode(b"#cloud-config\npackages: [openjdk-17-jre-headless]\n").decode()
#: SCALE_SET_TEMPLATE as infra/main.bicep writes it (tests/infra/test_scaleset_owner.py checks the fields).
TEMPLATE = json.dumps(
    {
        "vm_size": "Standard_D4s_v5",
        "image": "Canonical:ubuntu-24_04-lts:server:latest",
        "zones": ["1", "2", "3"],
        "subnet_id": SUBNET,
        "backend_pool_id": POOL,
        "identity_id": IDENTITY,
        "admin_ssh_public_key": SSH_KEY,
        "custom_data": CLOUD_INIT,
        "health_port": 10002,
    }
)
PROFILE = "properties.virtualMachineProfile"
NIC = f"{PROFILE}.networkProfile.networkInterfaceConfigurations.0.properties"
HEALTH = f"{PROFILE}.extensionProfile.extensions.0"


@dataclass(frozen=True)
class Row:
    why: str
    path: str  # dotted, list items by index
    expected: Any


ROWS = [
    Row("the instances spread over zones 1, 2 and 3", "zones", ["1", "2", "3"]),
    Row("the VM size and tier come from the template", "sku.name", "Standard_D4s_v5"),
    Row("standard tier", "sku.tier", "Standard"),
    Row("created at capacity 0: no node runs before a version admits the member", "sku.capacity", 0),
    Row("Uniform orchestration", "properties.orchestrationMode", "Uniform"),
    Row("the nodes run as their own user-assigned identity", "identity.type", "UserAssigned"),
    Row("that identity is the nodes' one", "identity.userAssignedIdentities", {IDENTITY: {}}),
    Row("trusted launch", f"{PROFILE}.securityProfile.securityType", "TrustedLaunch"),
    Row("secure boot", f"{PROFILE}.securityProfile.uefiSettings.secureBootEnabled", True),
    Row("vTPM", f"{PROFILE}.securityProfile.uefiSettings.vTpmEnabled", True),
    Row("encryption at host", f"{PROFILE}.securityProfile.encryptionAtHost", True),
    Row("the admin user is corda", f"{PROFILE}.osProfile.adminUsername", "corda"),
    Row("password login is disabled", f"{PROFILE}.osProfile.linuxConfiguration.disablePasswordAuthentication", True),
    Row(
        "the VM agent is provisioned (extensions need it)",
        f"{PROFILE}.osProfile.linuxConfiguration.provisionVMAgent",
        True,
    ),
    Row(
        "the admin's SSH key, in corda's authorized_keys",
        f"{PROFILE}.osProfile.linuxConfiguration.ssh.publicKeys",
        [{"path": "/home/corda/.ssh/authorized_keys", "keyData": SSH_KEY}],
    ),
    Row("the cloud-init that installs and starts the node", f"{PROFILE}.osProfile.customData", CLOUD_INIT),
    Row("host names from the scale set's name without dashes", f"{PROFILE}.osProfile.computerNamePrefix", "vmsstbody"),
    Row(
        "Ubuntu 24.04 from Canonical, always the latest version",
        f"{PROFILE}.storageProfile.imageReference",
        {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"},
    ),
    Row("the OS disk is made from the image", f"{PROFILE}.storageProfile.osDisk.createOption", "FromImage"),
    Row("the OS disk caches reads and writes", f"{PROFILE}.storageProfile.osDisk.caching", "ReadWrite"),
    Row(
        "the OS disk is zone-redundant premium SSD",
        f"{PROFILE}.storageProfile.osDisk.managedDisk.storageAccountType",
        "Premium_ZRS",
    ),
    Row("one primary NIC", f"{NIC}.primary", True),
    Row("with accelerated networking", f"{NIC}.enableAcceleratedNetworking", True),
    Row("in the nodes' subnet", f"{NIC}.ipConfigurations.0.properties.subnet.id", SUBNET),
    Row(
        "in the load balancer's backend pool",
        f"{NIC}.ipConfigurations.0.properties.loadBalancerBackendAddressPools",
        [{"id": POOL}],
    ),
    Row("the application health extension", f"{HEALTH}.properties.type", "ApplicationHealthLinux"),
    Row("from its publisher", f"{HEALTH}.properties.publisher", "Microsoft.ManagedServices"),
    Row("version 2.0", f"{HEALTH}.properties.typeHandlerVersion", "2.0"),
    Row("kept up to date", f"{HEALTH}.properties.autoUpgradeMinorVersion", True),
    Row("automatically", f"{HEALTH}.properties.enableAutomaticUpgrade", True),
    Row("probing the Corda P2P port over TCP", f"{HEALTH}.properties.settings", {"protocol": "tcp", "port": 10002}),
    Row(
        "upgrades are Manual: the control plane decides when a node restarts", "properties.upgradePolicy.mode", "Manual"
    ),
    Row(
        "with automatic OS image upgrades",
        "properties.upgradePolicy.automaticOSUpgradePolicy.enableAutomaticOSUpgrade",
        True,
    ),
    Row(
        "rolled back when they fail",
        "properties.upgradePolicy.automaticOSUpgradePolicy.disableAutomaticRollback",
        False,
    ),
    Row(
        "automatic repairs are off: the control plane repairs, within a budget",
        "properties.automaticRepairsPolicy.enabled",
        False,
    ),
    Row("scale-in removes the newest VM first", "properties.scaleInPolicy.rules", ["NewestVM"]),
    Row("and never forces a deletion", "properties.scaleInPolicy.forceDeletion", False),
    Row("tagged with its member", "tags.member_id", "bank-z"),
]


def at(body: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(body, list):
            body = body[int(part)] if part.isdigit() and int(part) < len(body) else KeyError(path)
        elif isinstance(body, dict):
            body = body.get(part, KeyError(path))
        else:
            return KeyError(path)
        if isinstance(body, KeyError):
            return body
    return body


@pytest.fixture(scope="module")
def received(azure_settings: Settings) -> dict[str, Any]:
    """What ARM holds after the control plane created a scale set from the Bicep-shaped template."""
    scalesets = ArmScaleSets.from_settings(azure_settings)
    name = f"vmss-t-body-{uuid.uuid4().hex[:6]}"
    spec = ScaleSetSpec.from_template(
        TEMPLATE, name=name, location="westeurope", capacity=0, tags={"member_id": "bank-z"}
    )
    scalesets.begin_create_or_update(spec)
    path = (
        f"/subscriptions/{scalesets.subscription_id}/resourceGroups/{scalesets.rg}/providers/Microsoft.Compute"
        f"/virtualMachineScaleSets/{name}?api-version=2024-07-01"
    )
    response = scalesets.client.send_request(HttpRequest("GET", path))
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("row", ROWS, ids=[r.why for r in ROWS])
def test_the_created_scale_set_keeps_what_the_bicep_set(received: dict[str, Any], row: Row) -> None:
    assert at(received, row.path) == row.expected, row.why


def test_the_health_extension_is_the_only_extension(received: dict[str, Any]) -> None:
    extensions = at(received, f"{PROFILE}.extensionProfile.extensions")
    assert [e["name"] for e in extensions] == ["health"]


#: Another value for each template field.
OTHER = {
    "vm_size": "Standard_D8s_v5",
    "image": "Canonical:ubuntu-24_04-lts:server:24.04.202611010",
    "zones": ["2"],
    "subnet_id": f"{SUBNET}2",
    "backend_pool_id": f"{POOL}2",
    "identity_id": f"{IDENTITY}2",
    "admin_ssh_public_key": f"{SSH_KEY}2",
    "custom_data": base64.b64encode(b"#cloud-config\n").decode(),
    "health_port": 10003,
}


@pytest.mark.parametrize("field", sorted(TEMPLATE_FIELDS))
def test_every_template_field_changes_the_body(field: str) -> None:
    """A template field the adapter ignored would be a setting that silently does nothing."""

    def body(template: dict[str, Any]) -> dict[str, Any]:
        spec = ScaleSetSpec.from_template(
            json.dumps(template), name="vmss-x", location="westeurope", capacity=0, tags={}
        )
        return dict(template_body(spec).as_dict())

    assert set(OTHER) == set(TEMPLATE_FIELDS)
    base = json.loads(TEMPLATE)
    assert body({**base, field: OTHER[field]}) != body(base), f"{field} does not reach the body"
