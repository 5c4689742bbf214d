"""A rotation world: member records and their keys seeded straight into the stores, a rotator, a clock.

The same world runs on the fakes (fast, for the table and property tests) and on Azurite with the
emulator's Key Vault through the real SDK (for the service tests), so what is proven on one holds
for the adapters that run in Azure.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.decisions.rotation import KeyPolicy, parse_policy
from shared.fakes.clock import FakeClock
from shared.naming import KEY_KINDS, NETWORK_MAP_SIGNER, key_name
from shared.ports.keys import KeyStore
from shared.ports.leases import LeaseStore
from shared.ports.queues import MessageSender
from shared.ports.state import StateStore
from shared.services.leadership import COORDINATOR
from shared.services.network_map import MAP_PATH, NetworkMapPublisher
from shared.services.records import key_entry, member_path
from shared.services.rotation import KeyRotator

DAY = timedelta(days=1)
POLICIES = {
    "tls": parse_policy("tls", "rotate=P90D overlap=P7D warn=P14D"),
    "governance": parse_policy("governance", "rotate=P365D overlap=P30D warn=P30D"),
    "signer": parse_policy("signer", "rotate=P180D overlap=P14D warn=P30D"),
    "identity": parse_policy("identity", "off rotate=P730D overlap=P30D warn=P60D", off_reason="off: R3's tool"),
}


@dataclass
class RotationWorld:
    state: StateStore
    keys: KeyStore
    leases: LeaseStore
    queues: MessageSender
    clock: FakeClock
    events: Callable[[], list[dict[str, Any]]]
    policies: dict[str, KeyPolicy] = field(default_factory=lambda: dict(POLICIES))
    token: int = 0
    grant: Any = None

    def rotator(self, **kwargs: Any) -> KeyRotator:
        return KeyRotator(
            state=kwargs.pop("state", self.state), keys=kwargs.pop("keys", self.keys), leases=self.leases,
            queues=self.queues, clock=self.clock, policies=self.policies, holder="test/1", **kwargs,
        )  # fmt: skip

    def become_coordinator(self, holder: str = "test/1") -> int:
        grant = self.leases.try_acquire(COORDINATOR, holder, 60)
        assert grant is not None, "the coordinator lease is held by someone else"
        self.grant, self.token = grant, grant.fencing_token
        return self.token

    def seed_member(self, member_id: str) -> dict[str, Any]:
        """An active member as onboarding leaves it: three keys, a record, and the map republished."""
        at = self.clock.now().isoformat(timespec="seconds").replace("+00:00", "Z")
        entries = {}
        for kind in KEY_KINDS:
            key = self.keys.create_key(key_name(member_id, kind), "EC", tags={"member_id": member_id, "kind": kind})
            entries[kind] = {**key_entry(key, at), "created_at": at}
        record = {
            "member_id": member_id, "legal_name": f"O={member_id.title()}, L=Amsterdam, C=NL", "status": "active",
            "request_id": f"req-{member_id}", "scale_set_id": f"/subscriptions/x/vmss-{member_id}", "keys": entries,
        }  # fmt: skip
        self.state.create(member_path(member_id), record)
        NetworkMapPublisher(self.state, self.keys, self.clock).publish()
        return record

    def record(self, member_id: str) -> dict[str, Any]:
        doc = self.state.read(member_path(member_id))
        assert doc is not None
        return doc.body

    def network_map(self) -> dict[str, Any]:
        doc = self.state.read(MAP_PATH)
        assert doc is not None
        return doc.body

    def travel(self, days: float) -> None:
        self.clock.advance(days * 86400)

    def versions_of(self, member_id: str | None, kind: str) -> list[Any]:
        name = NETWORK_MAP_SIGNER if member_id is None else key_name(member_id, kind)
        return self.keys.list_versions(name)

    def event_types(self) -> list[str]:
        return [e["type"] for e in self.events()]


def fake_world() -> RotationWorld:
    from shared.fakes.keys import FakeKeyStore
    from shared.fakes.leases import FakeLeaseStore
    from shared.fakes.queues import FakeQueues
    from shared.fakes.state import FakeStateStore

    clock = FakeClock()
    queues = FakeQueues()

    def events() -> list[dict[str, Any]]:
        return [json.loads(s.body) for s in queues.sent if s.queue == "member-events"]

    return RotationWorld(
        FakeStateStore(), FakeKeyStore(now=clock.now), FakeLeaseStore(clock.now), queues, clock, events
    )
