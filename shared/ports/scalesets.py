"""Virtual machine scale sets: the Corda nodes of each member.

Writes are absolute ("capacity = N", guarded by the ETag that was read), never increments, so a
redelivered step or a repeated tick converges instead of drifting. Creating a scale set is a
long-running operation; ``begin_create_or_update`` returns at once with a token that a later step
polls, so no worker is held while ARM provisions.

The control plane is the one owner of a member's scale set definition: the Bicep creates none (a PUT
replaces the whole model, so two writers with different bodies would each strip what the other set).
It passes what differs per deployment as the SCALE_SET_TEMPLATE setting, and the onboarding's
provision step creates ``vmss-{member}`` in full from it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field, replace
from typing import Protocol

#: Fields of the SCALE_SET_TEMPLATE setting, each with the JSON type it must have. What varies by
#: deployment lives here (infra/main.bicep fills it); what every member's scale set has alike (trusted
#: launch, encryption at host, the health extension, scale-in and repair policies, the OS disk) is fixed
#: in the adapter's body (shared/adapters/compute.py ``template_body``).
TEMPLATE_FIELDS: dict[str, type] = {
    "vm_size": str,
    "image": str,
    "zones": list,
    "subnet_id": str,
    "backend_pool_id": str,
    "identity_id": str,
    "admin_ssh_public_key": str,
    "custom_data": str,
    "health_port": int,
}
#: Optional fields of the SCALE_SET_TEMPLATE setting (absent: the default).
OPTIONAL_FIELDS: dict[str, type] = {"node_identity_client_id": str}
#: The placeholders of the node agent's config in the cloud-init (infra/corda-node.cloud-init.yaml),
#: filled when the scale set is created: ``node_config``.
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


@dataclass(frozen=True)
class ScaleSetSpec:
    """What a member's scale set should look like; built from the template in settings."""

    name: str
    location: str
    capacity: int
    vm_size: str
    image: str
    subnet_id: str
    backend_pool_id: str
    identity_id: str
    custom_data: str
    tags: dict[str, str] = field(default_factory=dict)
    #: Availability zones the instances spread over (empty: a region without zones).
    zones: tuple[str, ...] = ()
    #: The nodes' admin (``corda``) SSH public key; password login is always disabled.
    admin_ssh_public_key: str = ""
    #: The Corda port the application health extension probes (TCP): the load balancer probes it too.
    health_port: int = 10002
    #: The client id of the nodes' user-assigned identity, for the node agent's config.
    node_identity_client_id: str = ""

    @classmethod
    def from_template(
        cls, template: str, *, name: str, location: str, capacity: int, tags: dict[str, str]
    ) -> ScaleSetSpec:
        """A spec from the JSON template in the SCALE_SET_TEMPLATE setting; errors name the missing field."""
        try:
            fields = json.loads(template)
        except json.JSONDecodeError as e:
            raise ValueError(f"setting SCALE_SET_TEMPLATE is not valid JSON: {e}") from None
        if not isinstance(fields, dict):
            raise ValueError("setting SCALE_SET_TEMPLATE must be a JSON object")
        wrong = [
            f"{k} ({kind.__name__})"
            for k, kind in TEMPLATE_FIELDS.items()
            if not isinstance(fields.get(k), kind) or (kind is int and isinstance(fields.get(k), bool))
        ]
        if wrong:
            raise ValueError(f"setting SCALE_SET_TEMPLATE needs field(s) {', '.join(wrong)}")
        if not all(isinstance(z, str) for z in fields["zones"]):
            raise ValueError('setting SCALE_SET_TEMPLATE: zones must be a list of strings, e.g. ["1", "2", "3"]')
        if capacity < 0:
            raise ValueError(f"capacity {capacity} must not be negative")
        values = {k: fields[k] for k in TEMPLATE_FIELDS}
        values["zones"] = tuple(values["zones"])
        for k, kind in OPTIONAL_FIELDS.items():
            if k in fields:
                if not isinstance(fields[k], kind):
                    raise ValueError(f"setting SCALE_SET_TEMPLATE: {k} must be a {kind.__name__}")
                values[k] = fields[k]
        return cls(name=name, location=location, capacity=capacity, tags=dict(tags), **values)

    def node_config(
        self, *, member_id: str, genesis_hash: str, public_container_url: str, inbox_container_url: str = ""
    ) -> ScaleSetSpec:
        """This spec with the node agent's placeholders in its cloud-init filled: ``${MEMBER_ID}``,
        ``${GENESIS_HASH}``, ``${PUBLIC_CONTAINER_URL}`` (without a query string: the nodes read it with
        their identity), ``${NODES_IDENTITY_CLIENT_ID}`` and ``${INBOX_CONTAINER_URL}`` (the private
        ``node-infos-inbox`` container of the app's own storage account, where the nodes offer their
        ``NodeInfo`` files; also without a query string). A placeholder it cannot fill, or one it does
        not know, is a ValueError naming it: a node must never start with an unfilled config."""
        if not self.custom_data:
            return self
        try:
            text = base64.b64decode(self.custom_data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise ValueError(f"setting SCALE_SET_TEMPLATE: custom_data is not base64 of UTF-8 text: {e}") from None
        values = {
            "MEMBER_ID": member_id, "GENESIS_HASH": genesis_hash,
            "PUBLIC_CONTAINER_URL": public_container_url.split("?", 1)[0],
            "NODES_IDENTITY_CLIENT_ID": self.node_identity_client_id,
            "INBOX_CONTAINER_URL": inbox_container_url.split("?", 1)[0],
        }  # fmt: skip
        needs = {"MEMBER_ID": "CONSORTIUM_MEMBER_ID", "GENESIS_HASH": "CONSORTIUM_GENESIS_HASH",
                 "PUBLIC_CONTAINER_URL": "CONSORTIUM_PUBLIC_ENDPOINT",
                 "NODES_IDENTITY_CLIENT_ID": "SCALE_SET_TEMPLATE's node_identity_client_id",
                 "INBOX_CONTAINER_URL": "AzureWebJobsStorage (the app's own storage account)"}  # fmt: skip
        for name in dict.fromkeys(PLACEHOLDER.findall(text)):
            if name not in values:
                raise ValueError(f"the cloud-init names ${{{name}}}, which the control plane does not fill")
            if not values[name]:
                raise ValueError(f"the cloud-init needs ${{{name}}}: set {needs[name]}")
        filled = PLACEHOLDER.sub(lambda m: values[m.group(1)], text)
        return replace(self, custom_data=base64.b64encode(filled.encode("utf-8")).decode("ascii"))


@dataclass(frozen=True)
class ScaleSet:
    id: str
    name: str
    location: str
    capacity: int
    etag: str
    provisioning_state: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
    instance_id: str
    #: True healthy, False unhealthy, None unknown (no health signal yet, e.g. still booting).
    healthy: bool | None
    power_state: str
    provisioning_state: str
    protected_from_scale_in: bool
    #: The primary NIC's private IP address, where the node's Corda ports are reached (None: not known).
    private_ip: str | None = None
    #: None: each Corda port is reached at ``private_ip`` on that same port (Azure). Otherwise the only
    #: (Corda port, port it is reached on) pairs the node serves: the emulator serves every node on
    #: 127.0.0.1, so each node's Corda ports are remapped to ports of its own.
    ports: tuple[tuple[int, int], ...] | None = None
    #: ARM's health extension is still in its grace period (``HealthState/initializing``): a node booting.
    initializing: bool = False

    def endpoint(self, port: int) -> tuple[str, int] | None:
        """Where Corda port ``port`` of this node is reached, or None when it has no address or no such port."""
        if self.private_ip is None:
            return None
        if self.ports is None:
            return self.private_ip, port
        reached = dict(self.ports).get(port)
        return None if reached is None else (self.private_ip, reached)


@dataclass(frozen=True)
class Operation:
    """A long-running ARM operation: poll it with ``ScaleSets.poll``."""

    token: str
    status: str  # "InProgress" | "Succeeded" | "Failed" | "Canceled"
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("Succeeded", "Failed", "Canceled")


class ScaleSets(Protocol):
    def get(self, name: str) -> ScaleSet | None: ...

    def list_all(self) -> list[ScaleSet]:
        """Every scale set in the resource group, in one paged listing (not a GET each)."""
        ...

    def begin_create_or_update(self, spec: ScaleSetSpec) -> Operation: ...

    def poll(self, operation: Operation) -> Operation: ...

    def set_capacity(self, name: str, capacity: int, *, etag: str) -> ScaleSet:
        """Absolute capacity with If-Match; ``ConflictError`` when the ETag is stale."""
        ...

    def list_instances(self, name: str, *, addresses: bool = False) -> list[Instance]:
        """Every instance with its health and power state; with ``addresses``, also where its Corda ports
        are reached (in Azure a second read: the addresses belong to the Network provider's NICs)."""
        ...

    def set_protection(self, name: str, instance_id: str, *, protect_from_scale_in: bool) -> None: ...

    def restart(self, name: str, instance_id: str) -> None: ...

    def reimage(self, name: str, instance_id: str) -> None: ...
