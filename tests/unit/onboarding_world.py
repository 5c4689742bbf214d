"""An onboarding world on the fakes: the services, their stores, and a hand that delivers queue messages."""

from __future__ import annotations

import json
from typing import Any

from shared.canonical import approval_payload, b64u, digest
from shared.fakes.clock import FakeClock
from shared.fakes.keys import FakeKeyStore
from shared.fakes.leases import FakeLeaseStore
from shared.fakes.queues import FakeQueues, Sent
from shared.fakes.scalesets import FakeScaleSets
from shared.fakes.state import FakeStateStore
from shared.services import onboarding as ob
from shared.services.network_map import MAP_PATH
from shared.settings import TEMPLATE

EVENTS = "member-events"


def request(member_id: str, request_id: str | None = None, **changes: Any) -> str:
    body = {
        "request_id": request_id or f"req-{member_id}-001",
        "member_id": member_id,
        "legal_name": f"O={member_id.title()}, L=Amsterdam, C=NL",
        "region": "westeurope",
        "node_count": 2,
        "contact_email": f"ops@{member_id}.example",
        "scale": {"min_nodes": 1, "max_nodes": 6},
    }
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not ...})


class World:
    def __init__(self, founders: tuple[str, ...] = ("bank-a", "bank-b"), rule: str = "majority", polls: int = 1):
        self.clock = FakeClock()
        self.state = FakeStateStore()
        self.keys = FakeKeyStore(now=self.clock.now)
        self.scalesets = FakeScaleSets(polls_to_finish=polls)
        self.queues = FakeQueues()
        self.leases = FakeLeaseStore(self.clock.now)
        self.service = ob.Onboarding(
            state=self.state, keys=self.keys, scalesets=self.scalesets, queues=self.queues, leases=self.leases,
            clock=self.clock, founders=founders, quorum_rule=rule, template=TEMPLATE, holder="test/1",
        )  # fmt: skip

    # -- delivering

    def deliver(self, sent: Sent) -> ob.Outcome:
        if sent.queue == ob.REQUESTS:
            return self.service.intake(sent.body)
        if sent.queue == ob.APPROVALS:
            return self.service.vote(sent.body)
        if sent.queue == ob.OFFBOARDING:
            return self.service.offboard(sent.body)
        step = next(s for s, q in ob.STEP_QUEUES.items() if q == sent.queue)
        return self.service.step(sent.body, step)

    def post(self, queue: str, body: str) -> ob.Outcome:
        return self.deliver(Sent(queue, body))

    def pending_work(self) -> list[Sent]:
        return [s for s in self.queues.sent if s.queue != EVENTS]

    def drain(self, limit: int = 500) -> list[ob.Outcome]:
        """Deliver every work message (not events) until none is left."""
        outcomes: list[ob.Outcome] = []
        for _ in range(limit):
            work = self.pending_work()
            if not work:
                return outcomes
            first = work[0]
            self.queues.sent.remove(first)
            outcomes.append(self.deliver(first))
        raise AssertionError(f"still busy after {limit} deliveries")

    def onboard(self, member_id: str, **changes: Any) -> ob.Outcome:
        outcome = self.post(ob.REQUESTS, request(member_id, **changes))
        self.drain()
        return outcome

    # -- voting

    def vote_body(self, request_id: str, member_id: str, approver: str, decision: str = "approve") -> str:
        payload = approval_payload(approver_id=approver, decision=decision, member_id=member_id, request_id=request_id)
        key = self.keys.get_key(f"{approver}-governance")
        assert key is not None, f"{approver} has no governance key"
        signature = b64u(self.keys.sign(key.kid, digest(payload)))
        return json.dumps({**payload, "signature": signature})

    def vote(self, request_id: str, member_id: str, approver: str, decision: str = "approve") -> ob.Outcome:
        return self.post(ob.APPROVALS, self.vote_body(request_id, member_id, approver, decision))

    # -- reading

    def record(self, member_id: str) -> dict[str, Any]:
        doc = self.state.read(f"members/{member_id}.json")
        assert doc is not None, f"no record for {member_id}"
        return doc.body

    def status(self, member_id: str) -> str:
        return str(self.record(member_id)["status"])

    def status_or_none(self, member_id: str) -> str | None:
        doc = self.state.read(f"members/{member_id}.json")
        return str(doc.body["status"]) if doc else None

    def network_map(self) -> dict[str, Any] | None:
        doc = self.state.read(MAP_PATH)
        return doc.body if doc else None

    def map_members(self) -> list[str]:
        current = self.network_map()
        return [m["member_id"] for m in current["members"]] if current else []

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.queues.events() if type_ is None or e["type"] == type_]

    def rejections(self) -> list[dict[str, Any]]:
        return self.service.rejections.list()
