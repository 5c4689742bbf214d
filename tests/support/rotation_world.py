"""Key rotation in a consortium on the fakes: each member its own vault, records, leases and rotator.

Built on ``consortium_world.World`` (each member's ``Consortium`` with its own vault, state and
published container): every member also gets its identity and TLS keys beside its governance key,
an active record as onboarding leaves it, its own lease store and a ``KeyRotator`` wired to its own
consortium, exactly as ``shared.bootstrap`` wires one deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.decisions import chain
from shared.decisions.rotation import KeyPolicy, parse_policy
from shared.fakes.leases import FakeLeaseStore
from shared.naming import key_name
from shared.ports.keys import KeyVersion
from shared.services.leadership import COORDINATOR
from shared.services.records import key_entry, member_path
from shared.services.rotation import KeyRotator
from tests.support.consortium_world import World, chain_time

DAY = 86400.0
POLICIES: dict[str, KeyPolicy] = {
    "tls": parse_policy("tls", "rotate=P90D overlap=P7D warn=P14D"),
    # shorter than the 7-day proposal lifetime, so a test can pass the overlap while the rotate waits
    "governance": parse_policy("governance", "rotate=P365D overlap=P2D warn=P30D"),
    "identity": parse_policy("identity", "off rotate=P730D overlap=P30D warn=P60D", off_reason="off: R3's tool"),
}


@dataclass
class Deployment:
    member_id: str
    rotator: KeyRotator
    leases: FakeLeaseStore
    token: int = 0
    grant: Any = None

    def run(self, **kwargs: Any) -> dict[str, int]:
        return self.rotator.run(self.coordinate(), **kwargs).summary()

    def coordinate(self) -> int:
        """Hold (or take again, after the fake clock travelled) the member's coordinator lease."""
        grant = self.leases.try_acquire(COORDINATOR, f"{self.member_id}/1", 60)
        if grant is not None:
            self.grant, self.token = grant, grant.fencing_token
        return self.token


class RotationWorld(World):
    def __init__(self, ids: tuple[str, ...] = ("bank-a", "bank-b", "bank-c", "bank-d")):
        super().__init__(ids)
        self.deployments: dict[str, Deployment] = {}
        for member_id, m in self.members.items():
            at = chain_time(self.clock)
            entries = {}
            for kind in ("identity", "tls", "governance"):
                name = key_name(member_id, kind)
                key = m.keys.get_key(name) or m.keys.create_key(name, "EC", tags={"kind": kind})
                entries[kind] = key_entry(key, at)
            m.state.create(member_path(member_id), {
                "member_id": member_id, "legal_name": m.entry()["legal_name"], "status": "active",
                "request_id": f"req-{member_id}", "keys": entries,
            })  # fmt: skip
            leases = FakeLeaseStore(self.clock.now)
            rotator = KeyRotator(
                member_id=member_id, state=m.state, keys=m.keys, leases=leases, queues=m.queues, clock=self.clock,
                policies=POLICIES, holder=f"{member_id}/1", consortium=m.service,
            )  # fmt: skip
            self.deployments[member_id] = Deployment(member_id, rotator, leases)

    def record(self, member_id: str) -> dict[str, Any]:
        doc = self.members[member_id].state.read(member_path(member_id))
        assert doc is not None
        return doc.body

    def key_versions(self, member_id: str, kind: str) -> list[KeyVersion]:
        return self.members[member_id].keys.list_versions(key_name(member_id, kind))

    def listed_kid(self, viewer: str, member_id: str) -> str | None:
        """The governance kid ``viewer``'s verified chain lists for ``member_id``."""
        head = self.members[viewer].service.head()
        entry = head.document.member(member_id) if head else None
        return entry.governance_key.kid if entry else None

    def travel(self, days: float) -> None:
        self.clock.advance(days * DAY)

    def head(self, viewer: str) -> chain.Trusted:
        head = self.members[viewer].service.head()
        assert head is not None
        return head
