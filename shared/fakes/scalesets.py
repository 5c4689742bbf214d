"""An in-memory ScaleSets port with ARM's rules: ETags, If-Match, operations that finish after polls."""

from __future__ import annotations

import itertools
from dataclasses import replace

from shared.errors import ConflictError, NotFoundError, PermanentError
from shared.ports.scalesets import Instance, Operation, ScaleSet, ScaleSetSpec
from shared.reasons import Reason

RG_ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-fake"


class FakeScaleSets:
    def __init__(self, polls_to_finish: int = 1):
        self.sets: dict[str, ScaleSet] = {}
        self.instances: dict[str, list[Instance]] = {}
        self.pending: dict[str, int] = {}
        self.polls_to_finish = polls_to_finish
        self.restarts: list[tuple[str, str]] = []
        self.reimages: list[tuple[str, str]] = []
        #: ARM reads spent on instance listings (a listing with addresses costs a second: the NICs).
        self.listings = 0
        self._etags = itertools.count(1)
        self._ids = itertools.count(0)

    def _etag(self) -> str:
        return f'"{next(self._etags)}"'

    def _resize(self, name: str, capacity: int) -> None:
        current = self.instances.setdefault(name, [])
        while len(current) < capacity:
            n = next(self._ids)
            address = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
            current.append(Instance(str(n), None, "running", "Succeeded", False, private_ip=address))
        for instance in [i for i in reversed(current) if not i.protected_from_scale_in]:
            if len(current) <= capacity:
                break
            current.remove(instance)

    def get(self, name: str) -> ScaleSet | None:
        return self.sets.get(name)

    def list_all(self) -> list[ScaleSet]:
        return [self.sets[k] for k in sorted(self.sets)]

    def begin_create_or_update(self, spec: ScaleSetSpec) -> Operation:
        existing = self.sets.get(spec.name)
        state = "Creating" if existing is None else "Updating"
        self.sets[spec.name] = ScaleSet(
            id=f"{RG_ID}/providers/Microsoft.Compute/virtualMachineScaleSets/{spec.name}",
            name=spec.name, location=spec.location, capacity=spec.capacity, etag=self._etag(),
            provisioning_state=state, tags=dict(spec.tags),
        )  # fmt: skip
        self._resize(spec.name, spec.capacity)
        self.pending[spec.name] = self.polls_to_finish
        return Operation(spec.name, "InProgress")

    def poll(self, operation: Operation) -> Operation:
        current = self.sets.get(operation.token)
        if current is None:
            return Operation(operation.token, "Failed", error=f"scale set {operation.token} does not exist")
        left = self.pending.get(operation.token, 0) - 1
        self.pending[operation.token] = max(0, left)
        if left > 0:
            return Operation(operation.token, "InProgress")
        self.sets[operation.token] = replace(current, provisioning_state="Succeeded")
        return Operation(operation.token, "Succeeded")

    def set_capacity(self, name: str, capacity: int, *, etag: str) -> ScaleSet:
        if capacity < 0:
            raise PermanentError(f"capacity {capacity} must not be negative", reason=Reason.CAPACITY)
        current = self.sets.get(name)
        if current is None:
            raise NotFoundError(f"scale set {name}: not found")
        if current.etag != etag:
            raise ConflictError(f"set capacity of {name}: precondition failed (the ETag is stale)")
        self.sets[name] = replace(current, capacity=capacity, etag=self._etag())
        self._resize(name, capacity)
        return self.sets[name]

    def list_instances(self, name: str, *, addresses: bool = False) -> list[Instance]:
        if name not in self.sets:
            raise NotFoundError(f"scale set {name}: not found")
        self.listings += 2 if addresses else 1
        found = self.instances.get(name, [])
        return list(found) if addresses else [replace(i, private_ip=None, ports=None) for i in found]

    def _replace_instance(self, name: str, instance_id: str, **changes: object) -> None:
        for i, instance in enumerate(self.instances.get(name, [])):
            if instance.instance_id == instance_id:
                self.instances[name][i] = replace(instance, **changes)  # type: ignore[arg-type]
                return
        raise NotFoundError(f"instance {instance_id} of {name}: not found")

    def set_protection(self, name: str, instance_id: str, *, protect_from_scale_in: bool) -> None:
        self._replace_instance(name, instance_id, protected_from_scale_in=protect_from_scale_in)

    def set_health(self, name: str, instance_id: str, healthy: bool | None) -> None:
        """Test hook: what the instance's health extension reports."""
        self._replace_instance(name, instance_id, healthy=healthy)

    def restart(self, name: str, instance_id: str) -> None:
        self._replace_instance(name, instance_id, healthy=None)
        self.restarts.append((name, instance_id))

    def reimage(self, name: str, instance_id: str) -> None:
        self._replace_instance(name, instance_id, healthy=None)
        self.reimages.append((name, instance_id))
