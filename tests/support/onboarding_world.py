"""Four members' deployments on the fakes: each its own vault, storage, queues and scale sets.

Built on ``consortium_world``: every member's ``Onboarding`` service works only on its own fakes
(its ``FakeKeyStore`` is its vault, its ``FakeStateStore`` its storage account, its ``FakeQueues``
its queues, its ``FakeScaleSets`` its subscription's scale sets) and its own ``Consortium`` service,
which reads the others only through the shared published containers. ``deliver`` hands one of a
member's queue messages to the handler the app binds to that queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.fakes.leases import FakeLeaseStore
from shared.fakes.queues import FakeQueues, Sent
from shared.fakes.scalesets import FakeScaleSets
from shared.services import onboarding as ob
from shared.services.consortium import ChainFollowed, VersionAdopted
from shared.settings import TEMPLATE
from tests.support.consortium_world import Member, World, legal_name

EVENTS = "member-events"


def request(member_id: str, request_id: str | None = None, **changes: Any) -> str:
    body = {
        "request_id": request_id or f"req-{member_id}-001",
        "member_id": member_id,
        "legal_name": legal_name(member_id),  # as the world's genesis lists a founder
        "region": "westeurope",
        "node_count": 2,
        "contact_email": f"ops@{member_id}.example",
        "scale": {"min_nodes": 1, "max_nodes": 6},
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not ...})


@dataclass
class Deployment:
    member: Member
    service: ob.Onboarding
    scalesets: FakeScaleSets

    @property
    def queues(self) -> FakeQueues:
        return self.member.queues

    def status(self) -> str:
        record = self.service.record()
        return str(record["status"]) if record else "outside"

    def capacity(self) -> int | None:
        current = self.scalesets.get(f"vmss-{self.member.member_id}")
        return current.capacity if current else None


class Consortium(World):
    """A ``World`` whose members also run their own onboarding."""

    def __init__(self, ids: tuple[str, ...] = ("bank-a", "bank-b", "bank-c", "bank-d")):
        super().__init__(ids)
        self.deployments: dict[str, Deployment] = {}
        for member_id, member in self.members.items():
            scalesets = FakeScaleSets(polls_to_finish=1)
            service = ob.Onboarding(
                member_id=member_id, state=member.state, keys=member.keys, scalesets=scalesets,
                queues=member.queues, leases=FakeLeaseStore(self.clock.now), clock=self.clock,
                consortium=member.service, template=TEMPLATE, holder=f"{member_id}/1", poll_seconds=1,
            )  # fmt: skip
            member.service.bus.subscribe(VersionAdopted, service.membership.version_adopted)
            member.service.bus.subscribe(ChainFollowed, service.membership.chain_followed)
            self.deployments[member_id] = Deployment(member, service, scalesets)

    def post(self, member_id: str, queue: str, raw: str | bytes) -> ob.Outcome:
        return self.handle(member_id, Sent(queue, raw if isinstance(raw, str) else raw.decode(errors="replace")))

    def handle(self, member_id: str, sent: Sent) -> ob.Outcome:
        service = self.deployments[member_id].service
        if sent.queue == ob.REQUESTS:
            return service.intake(sent.body)
        if sent.queue == ob.APPROVALS:
            return service.decide(sent.body)
        if sent.queue == ob.OFFBOARDING:
            return service.offboard(sent.body)
        step = next(s for s, q in ob.STEP_QUEUES.items() if q == sent.queue)
        return service.step(sent.body, step)

    def work(self, member_id: str) -> list[Sent]:
        return [s for s in self.deployments[member_id].queues.sent if s.queue != EVENTS]

    def drain(self, member_id: str | None = None, limit: int = 200) -> list[ob.Outcome]:
        """Deliver every queued message of ``member_id`` (or of everyone), in order, until none is left."""
        outcomes = []
        for _ in range(limit):
            pending = [(m, s) for m in ([member_id] if member_id else sorted(self.deployments)) for s in self.work(m)]
            if not pending:
                return outcomes
            owner, sent = pending[0]
            self.deployments[owner].queues.sent.remove(sent)
            outcomes.append(self.handle(owner, sent))
        raise AssertionError("messages never settled")

    def settle(self, rounds: int = 30, until: Any = None) -> None:
        """Ticks and deliveries, round after round, until ``until()`` holds (or the rounds run out)."""
        for _ in range(rounds):
            self.drain()
            self.tick()
            self.drain()
            if until is not None and until():
                return

    def events(self, member_id: str, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.deployments[member_id].queues.events() if e["type"] == type_]
