"""ARM Compute for scale sets: PUT (201 + an async operation polled to Succeeded), GET, PATCH of
capacity, list, ETags with If-Match (412 on a mismatch), VM instances with their instance view,
scale-in protection, restart and reimage.

Instances follow the capacity: new ones boot for ``boot_delay_seconds`` (health ``initializing``)
before they serve; scale-in removes the newest unprotected instances and never a protected one.

Instance faults (set through the admin API): ``crashed`` (ARM unhealthy; a restart fixes it),
``broken`` (ARM unhealthy; only a reimage does), ``hung`` (ARM still healthy, its Corda ports accept
nothing; a restart fixes it) and ``port_closed`` (ARM still healthy, all or some Corda ports refuse;
only a reimage fixes it). ``nodes.py`` makes each running node's Corda ports really listen.

Where a node is reached: each VM names its NIC in ``properties.networkProfile.networkInterfaces``
(as ARM does), and the scale set's NICs are listed at ``.../virtualMachineScaleSets/{name}/
networkInterfaces`` (and per VM at ``.../virtualMachines/{id}/networkInterfaces``) in the Network
provider's shape, with ``ipConfigurations[].properties.privateIPAddress``. Two differences from
Azure: every NIC's address is 127.0.0.1, and each carries the tag ``corda-ports``
(``10002=41234,10003=41235``) naming where its Corda ports are served, since nodes sharing one address
cannot share ports; Azure serves that listing from the Network provider (api-version 2024-05-01
and others), here it is the Compute emulator.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from .server import Request, Response, Router, error
from .state import State

DEFAULTS = {"boot_delay_seconds": 90.0, "operation_seconds": 2.0, "node_capacity_tpm": 1000.0, "restart_seconds": 10.0}
#: The Corda ports each node serves unless the emulator is started with others (p2p, RPC).
CORDA_PORTS = (10002, 10003)
NODE_ADDRESS = "127.0.0.1"
FAULTS = ("crashed", "broken", "hung", "port_closed")
PREFIX = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/virtualMachineScaleSets"
)


class Compute:
    def __init__(self, state: State):
        self.state = state
        self.corda_ports: tuple[int, ...] = CORDA_PORTS
        #: Called after instances change (created, removed, restarted, faulted): the node ports follow.
        self.on_change: Callable[[], None] = lambda: None

    # -- model -----------------------------------------------------------------------------------
    @property
    def sets(self) -> dict[str, Any]:
        return self.state.section("compute").setdefault("sets", {})  # type: ignore[no-any-return]

    @property
    def operations(self) -> dict[str, Any]:
        return self.state.section("compute").setdefault("operations", {})  # type: ignore[no-any-return]

    def config(self, key: str) -> float:
        return float(self.state.section("load").get("config", {}).get(key, DEFAULTS[key]))

    def key(self, r: Request) -> str:
        return f"{r.params['sub']}/{r.params['rg']}/{r.params['name']}".lower()

    def find(self, name: str) -> dict[str, Any] | None:
        """A scale set by name (any resource group), for the load model and the admin API."""
        for key, vmss in self.sets.items():
            if key.rsplit("/", 1)[-1] == name.lower():
                return vmss  # type: ignore[no-any-return]
        return None

    def find_id(self, resource_id: str) -> dict[str, Any] | None:
        """A scale set by its ARM id (subscription, resource group and name), for the metrics API."""
        parts = [p for p in resource_id.split("/") if p]
        lower = [p.lower() for p in parts]
        if len(parts) != 8 or lower[0] != "subscriptions" or lower[2] != "resourcegroups" or lower[4] != "providers":
            return None
        if lower[5:7] != ["microsoft.compute", "virtualmachinescalesets"]:
            return None
        return self.sets.get(f"{parts[1]}/{parts[3]}/{parts[7]}".lower())

    def _operation(self, r: Request, location: str) -> tuple[str, dict[str, str]]:
        op_id = uuid.uuid4().hex
        self.operations[op_id] = {"started": time.time(), "done_at": time.time() + self.config("operation_seconds")}
        url = f"{r.base_url}/subscriptions/{r.params['sub']}/providers/Microsoft.Compute/locations/{location}/operations/{op_id}?api-version={r.query.get('api-version', '')}"
        return op_id, {"Azure-AsyncOperation": url, "Location": url, "Retry-After": "1"}

    def _set_capacity(self, vmss: dict[str, Any], capacity: int) -> None:
        instances: list[dict[str, Any]] = vmss["instances"]
        now = time.time()
        while len(instances) < capacity:
            instances.append(
                {
                    "id": str(vmss["next_instance"]),
                    "created": now,
                    "protected": False,
                    "fault": None,
                    "restarting_until": 0,
                }
            )
            vmss["next_instance"] += 1
        removable = [i for i in reversed(instances) if not i["protected"]]
        while len(instances) > capacity and removable:
            instances.remove(removable.pop(0))
        vmss["capacity"] = capacity

    def _view(self, r: Request, key: str, vmss: dict[str, Any]) -> dict[str, Any]:
        sub, rg, _name = key.split("/")
        body = dict(vmss["body"])
        properties = dict(body.get("properties") or {})
        properties["provisioningState"] = self._provisioning_state(vmss)
        sku = dict(body.get("sku") or {})
        sku["capacity"] = vmss["capacity"]
        return {**body, "id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss['name']}",
                "name": vmss["name"], "type": "Microsoft.Compute/virtualMachineScaleSets", "location": vmss["location"],
                "etag": f'"{vmss["etag"]}"', "sku": sku, "properties": properties, "tags": vmss.get("tags") or {}}  # fmt: skip

    def _provisioning_state(self, vmss: dict[str, Any]) -> str:
        op = self.operations.get(vmss.get("operation") or "")
        if op and time.time() < op["done_at"]:
            return str(vmss.get("pending_state", "Updating"))
        return "Succeeded"

    # -- scale sets ------------------------------------------------------------------------------
    def put(self, r: Request) -> Response:
        body = r.body or {}
        if not body.get("location"):
            return error(400, "InvalidParameter", "location is required")
        capacity = int((body.get("sku") or {}).get("capacity", 0))
        if capacity < 0:
            return error(400, "InvalidParameter", "sku.capacity must not be negative")
        key = self.key(r)
        with self.state.lock:
            existing = self.sets.get(key)
            if existing is not None and not self._precondition(r, existing):
                return error(412, "PreconditionFailed", "The ETag does not match the current resource")
            if existing is None and r.headers.get("if-match"):
                return error(412, "PreconditionFailed", "The resource does not exist")
            vmss = existing or {"name": r.params["name"], "instances": [], "next_instance": 0, "etag": 0}
            vmss.update(
                location=body["location"],
                tags=body.get("tags") or {},
                body={k: v for k, v in body.items() if k != "etag"},
            )
            vmss["etag"] += 1
            op_id, headers = self._operation(r, body["location"])
            vmss["operation"], vmss["pending_state"] = op_id, "Creating" if existing is None else "Updating"
            self._set_capacity(vmss, capacity)
            self.sets[key] = vmss
            self.state.save("compute")
            self.on_change()
            return Response(201 if existing is None else 200, self._view(r, key, vmss), headers)

    def _precondition(self, r: Request, vmss: dict[str, Any]) -> bool:
        wanted = r.headers.get("if-match")
        if wanted and wanted != "*" and wanted.strip('W/"') != str(vmss["etag"]):
            return False
        return r.headers.get("if-none-match") != "*"

    def get(self, r: Request) -> Response:
        key = self.key(r)
        vmss = self.sets.get(key)
        if vmss is None:
            return error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Compute/virtualMachineScaleSets/{r.params['name']}' under resource group '{r.params['rg']}' was not found.",
            )
        return Response(200, self._view(r, key, vmss), {"ETag": f'"{vmss["etag"]}"'})

    def patch(self, r: Request) -> Response:
        key = self.key(r)
        body = r.body or {}
        with self.state.lock:
            vmss = self.sets.get(key)
            if vmss is None:
                return error(404, "ResourceNotFound", f"scale set {r.params['name']} was not found")
            if not self._precondition(r, vmss):
                return error(412, "PreconditionFailed", "The ETag does not match the current resource")
            capacity = (body.get("sku") or {}).get("capacity")
            if capacity is not None:
                if int(capacity) < 0:
                    return error(400, "InvalidParameter", "sku.capacity must not be negative")
                self._set_capacity(vmss, int(capacity))
            if body.get("tags") is not None:
                vmss["tags"] = body["tags"]
            vmss["etag"] += 1
            op_id, headers = self._operation(r, vmss["location"])
            vmss["operation"], vmss["pending_state"] = op_id, "Updating"
            self.state.save("compute")
            self.on_change()
            return Response(200, self._view(r, key, vmss), headers)

    def list(self, r: Request) -> Response:
        prefix = f"{r.params['sub']}/{r.params['rg']}/".lower()
        values = [self._view(r, k, v) for k, v in sorted(self.sets.items()) if k.startswith(prefix)]
        return Response(200, {"value": values})

    def operation(self, r: Request) -> Response:
        op = self.operations.get(r.params["op"])
        if op is None:
            return error(404, "NotFound", "operation not found")
        done = time.time() >= op["done_at"]
        body = {"name": r.params["op"], "status": "Succeeded" if done else "InProgress",
                "startTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(op["started"]))}  # fmt: skip
        return Response(200, body, {} if done else {"Retry-After": "1"})

    # -- instances -------------------------------------------------------------------------------
    def health(self, instance: dict[str, Any]) -> str:
        now = time.time()
        if instance.get("fault") in ("crashed", "broken"):
            return "HealthState/unhealthy"  # a hung node or a closed port fools the health extension
        if now < instance.get("restarting_until", 0) or now - instance["created"] < self.config("boot_delay_seconds"):
            return "HealthState/initializing"
        return "HealthState/healthy"

    def serving(self, vmss: dict[str, Any]) -> int:
        return sum(1 for i in vmss["instances"] if self.health(i) == "HealthState/healthy" and not i.get("fault"))

    def _vm_view(self, r: Request, vmss: dict[str, Any], instance: dict[str, Any]) -> dict[str, Any]:
        base = f"/subscriptions/{r.params['sub']}/resourceGroups/{r.params['rg']}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss['name']}"
        power = "PowerState/starting" if time.time() < instance.get("restarting_until", 0) else "PowerState/running"
        return {
            "instanceId": instance["id"], "id": f"{base}/virtualMachines/{instance['id']}",
            "name": f"{vmss['name']}_{instance['id']}", "location": vmss["location"], "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
            "properties": {
                "provisioningState": "Succeeded", "latestModelApplied": True,
                "protectionPolicy": {"protectFromScaleIn": instance["protected"]},
                "networkProfile": {"networkInterfaces": [{"id": f"{base}/virtualMachines/{instance['id']}/networkInterfaces/nic",
                                                          "properties": {"primary": True}}]},
                "instanceView": {"statuses": [{"code": "ProvisioningState/succeeded"}, {"code": power}],
                                 "vmHealth": {"status": {"code": self.health(instance)}}},
            },
        }  # fmt: skip

    def _nic_view(self, r: Request, vmss: dict[str, Any], instance: dict[str, Any]) -> dict[str, Any]:
        """The instance's NIC as the Network provider shows it (see the module docstring for the differences)."""
        vm = f"/subscriptions/{r.params['sub']}/resourceGroups/{r.params['rg']}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss['name']}/virtualMachines/{instance['id']}"
        nic = f"{vm}/networkInterfaces/nic"
        ports = instance.get("ports") or {}
        subnet = ""
        for config in (
            (((vmss.get("body") or {}).get("properties") or {}).get("virtualMachineProfile") or {})
            .get("networkProfile", {})
            .get("networkInterfaceConfigurations", [])
        ):
            for ip in (config.get("properties") or {}).get("ipConfigurations", []):
                subnet = subnet or ((ip.get("properties") or {}).get("subnet") or {}).get("id", "")
        return {
            "id": nic, "name": "nic", "type": "Microsoft.Network/networkInterfaces", "location": vmss["location"],
            "tags": {"corda-ports": ",".join(f"{p}={ports[str(p)]}" for p in self.corda_ports if str(p) in ports)},
            "properties": {
                "provisioningState": "Succeeded", "primary": True, "virtualMachine": {"id": vm},
                "ipConfigurations": [{"id": f"{nic}/ipConfigurations/ipconfig", "name": "ipconfig", "properties": {
                    "provisioningState": "Succeeded", "privateIPAddress": NODE_ADDRESS, "privateIPAllocationMethod": "Dynamic",
                    "privateIPAddressVersion": "IPv4", "primary": True, "subnet": {"id": subnet}}}],
            },
        }  # fmt: skip

    def list_nics(self, r: Request) -> Response:
        vmss = self.sets.get(self.key(r))
        if vmss is None:
            return error(404, "ResourceNotFound", f"scale set {r.params['name']} was not found")
        wanted = r.params.get("instance")
        instances = [i for i in vmss["instances"] if wanted is None or i["id"] == wanted]
        if wanted is not None and not instances:
            return error(404, "NotFound", f"instance {wanted} of {r.params['name']} was not found")
        return Response(200, {"value": [self._nic_view(r, vmss, i) for i in instances]})

    def _instance(self, r: Request) -> tuple[dict[str, Any], dict[str, Any]] | Response:
        vmss = self.sets.get(self.key(r))
        if vmss is None:
            return error(404, "ResourceNotFound", f"scale set {r.params['name']} was not found")
        for instance in vmss["instances"]:
            if instance["id"] == r.params["instance"]:
                return vmss, instance
        return error(404, "NotFound", f"instance {r.params['instance']} of {r.params['name']} was not found")

    def list_vms(self, r: Request) -> Response:
        vmss = self.sets.get(self.key(r))
        if vmss is None:
            return error(404, "ResourceNotFound", f"scale set {r.params['name']} was not found")
        return Response(200, {"value": [self._vm_view(r, vmss, i) for i in vmss["instances"]]})

    def get_vm(self, r: Request) -> Response:
        found = self._instance(r)
        if isinstance(found, Response):
            return found
        return Response(200, self._vm_view(r, *found))

    def put_vm(self, r: Request) -> Response:
        with self.state.lock:
            found = self._instance(r)
            if isinstance(found, Response):
                return found
            vmss, instance = found
            policy = ((r.body or {}).get("properties") or {}).get("protectionPolicy") or {}
            if "protectFromScaleIn" in policy:
                instance["protected"] = bool(policy["protectFromScaleIn"])
            self.state.save("compute")
            _, headers = self._operation(r, vmss["location"])
            return Response(200, self._vm_view(r, vmss, instance), headers)

    def vm_action(self, r: Request) -> Response:
        with self.state.lock:
            found = self._instance(r)
            if isinstance(found, Response):
                return found
            vmss, instance = found
            fault = instance.get("fault")
            if r.params["action"] == "restart":
                instance["restarting_until"] = time.time() + self.config("restart_seconds")
                if fault in ("crashed", "hung"):
                    instance["fault"] = None
            else:  # reimage: a fresh disk boots like a new node
                instance["created"] = time.time()
                instance["fault"] = None
                instance.pop("closed_ports", None)
            self.state.save("compute")
            self.on_change()
            _, headers = self._operation(r, vmss["location"])
            return Response(202, None, headers)


def register(router: Router, compute: Compute) -> None:
    name = rf"{PREFIX}/(?P<name>[^/]+)"
    router.add("GET", PREFIX, "compute", compute.list)
    router.add("PUT", name, "compute", compute.put)
    router.add("GET", name, "compute", compute.get)
    router.add("PATCH", name, "compute", compute.patch)
    router.add("GET", f"{name}/virtualMachines", "compute", compute.list_vms)
    router.add("GET", rf"{name}/virtualMachines/(?P<instance>\d+)", "compute", compute.get_vm)
    router.add("GET", rf"{name}/networkInterfaces", "compute", compute.list_nics)
    router.add("GET", rf"{name}/virtualMachines/(?P<instance>\d+)/networkInterfaces", "compute", compute.list_nics)
    router.add("PUT", rf"{name}/virtualMachines/(?P<instance>\d+)", "compute", compute.put_vm)
    router.add(
        "POST", rf"{name}/virtualMachines/(?P<instance>\d+)/(?P<action>restart|reimage)", "compute", compute.vm_action
    )
    router.add("GET", r"/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.Compute/locations/(?P<loc>[^/]+)/operations/(?P<op>[0-9a-f]+)",
               "compute", compute.operation)  # fmt: skip
