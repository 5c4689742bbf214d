"""Onboarding end to end: the real app on the local host, Azurite, and the emulator's Key Vault and ARM.

Founders go active, a newcomer is voted in with votes signed in Key Vault, a request is voted down,
a member leaves, duplicates change nothing, the bad-input corpus is rejected without poison, and a
step poisoned by an ARM outage fails its member until `replay-poison` finishes the onboarding.
Member ids carry a per-run prefix, because the test Azurite and emulator live for the whole session.
"""

from __future__ import annotations

import json
import secrets
import string
import time
from collections.abc import Callable
from typing import Any

import pytest

from shared.bootstrap import Platform
from shared.canonical import approval_payload, b64u, digest
from shared.naming import KEY_KINDS
from shared.services import onboarding as ob
from shared.services.network_map import MAP_PATH, verify_map
from shared.services.poison import replay
from shared.services.records import list_rejections
from shared.settings import Settings
from tests.conftest import admin
from tests.unit.onboarding_world import request
from tests.unit.test_onboarding_properties import HANDWRITTEN

pytestmark = pytest.mark.e2e


def queue_can_carry(raw: str) -> bool:
    """Storage queues carry XML 1.0 text: Azure refuses control characters such as NUL on send (Azurite
    accepts them and then returns an unreadable batch), so such bodies never reach a function."""
    return not any(ord(ch) < 0x20 and ch not in "\t\n\r" for ch in raw)


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what}: not within {timeout} s")


class Consortium:
    def __init__(self, platform: Platform):
        self.p = platform

    def record(self, member_id: str) -> dict[str, Any] | None:
        doc = self.p.state.read(f"members/{member_id}.json")
        return doc.body if doc else None

    def status(self, member_id: str) -> str | None:
        record = self.record(member_id)
        return record["status"] if record else None

    def wait_status(self, member_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
        wait_until(
            f"{member_id} {status} (is {self.status(member_id)})", lambda: self.status(member_id) == status, timeout
        )
        return self.record(member_id) or {}

    def vote(self, request_id: str, member_id: str, approver: str, decision: str = "approve") -> str:
        payload = approval_payload(approver_id=approver, decision=decision, member_id=member_id, request_id=request_id)
        key = self.p.keys.get_key(f"{approver}-governance")
        assert key is not None
        body = json.dumps({**payload, "signature": b64u(self.p.keys.sign(key.kid, digest(payload)))})
        self.p.queues.send(ob.APPROVALS, body)
        return body

    def network_map(self) -> dict[str, Any]:
        doc = self.p.state.read(MAP_PATH)
        assert doc is not None
        return doc.body

    def rejections(self) -> list[dict[str, Any]]:
        return list_rejections(self.p.state)


def test_onboarding_voting_offboarding_bad_input_and_poison_on_the_local_stack(
    run_app, azure_settings: Settings, emulator_instance
) -> None:
    prefix = secrets.choice(string.ascii_lowercase) + "".join(secrets.choice(string.ascii_lowercase) for _ in range(4))
    a, b, c, d, e = (f"{prefix}-{x}" for x in "abcde")
    values = {**azure_settings.values, "CONSORTIUM_FOUNDERS": f"{a},{b}", "ONBOARDING_POLL_SECONDS": "1"}
    run_app("onboarding-e2e", **values)
    c_ = Consortium(Platform(Settings(values)))
    send = c_.p.queues.send

    # founders
    send(ob.REQUESTS, request(a))
    send(ob.REQUESTS, request(b))
    for founder in (a, b):
        record = c_.wait_status(founder, "active")
        assert set(record["keys"]) == set(KEY_KINDS)
        assert record["scale_set_id"].endswith(f"/virtualMachineScaleSets/vmss-{founder}")
    # a newcomer voted in, with every message delivered twice
    send(ob.REQUESTS, request(c))
    send(ob.REQUESTS, request(c))
    c_.wait_status(c, "pending_approval")
    send(ob.APPROVALS, c_.vote(f"req-{c}-001", c, a))
    send(ob.APPROVALS, c_.vote(f"req-{c}-001", c, b))
    record = c_.wait_status(c, "active")
    assert sorted(record["votes"]) == [a, b]
    for kind in KEY_KINDS:
        assert len(c_.p.keys.list_versions(f"{c}-{kind}")) == 1, "a duplicate created a second key"
    assert c_.p.scalesets.get(f"vmss-{c}").capacity == 2

    network_map = c_.network_map()
    ours = [m["member_id"] for m in network_map["members"] if m["member_id"].startswith(prefix)]
    assert ours == [a, b, c]
    assert verify_map(network_map, c_.p.keys)

    # voted down
    send(ob.REQUESTS, request(d))
    c_.wait_status(d, "pending_approval")
    c_.vote(f"req-{d}-001", d, a, "reject")
    c_.vote(f"req-{d}-001", d, b, "reject")  # 2 of 3 against: 2 approvals can no longer be reached
    assert "can no longer be reached" in c_.wait_status(d, "rejected")["status_reason"]

    # offboarding
    send(ob.OFFBOARDING, json.dumps({"request_id": f"off-{b}", "member_id": b, "reason": "merger"}))
    c_.wait_status(b, "offboarded")
    wait_until("the map without b", lambda: b not in [m["member_id"] for m in c_.network_map()["members"]])
    assert c_.p.scalesets.get(f"vmss-{b}").capacity == 0
    assert not any(v.enabled for kind in KEY_KINDS for v in c_.p.keys.list_versions(f"{b}-{kind}"))

    # the bad-input corpus: each rejected once with its reason, nothing poisoned
    before = len(c_.rejections())
    corpus = {raw for raw, _ in HANDWRITTEN if queue_can_carry(raw)}
    for raw in corpus:
        send(ob.REQUESTS, raw)
    expected = before + len(corpus)
    wait_until("every bad message recorded", lambda: len(c_.rejections()) >= expected)
    assert len(c_.rejections()) == expected
    assert c_.p.queues.count(f"{ob.REQUESTS}-poison") == 0

    # an ARM outage poisons the provision step; replay-poison finishes the onboarding
    admin(emulator_instance, "PUT", "/_admin/faults/compute", {"status": 503, "count": 100000})
    try:
        send(ob.REQUESTS, request(e))
        c_.wait_status(e, "pending_approval")
        c_.vote(f"req-{e}-001", e, a)
        c_.vote(f"req-{e}-001", e, c)
        failed = c_.wait_status(e, "failed", timeout=120)
        assert "onboarding-provision: retries exhausted" in failed["status_reason"]
        assert "503" in failed["status_reason"]
    finally:
        admin(emulator_instance, "DELETE", "/_admin/faults")
    moved = replay(c_.p.queues.move_all, c_.p.queues.count, ob.QUEUES)
    assert set(moved) == {"onboarding-provision"}  # one chain; a redelivered vote may have started it twice
    c_.wait_status(e, "active")
    wait_until("e in the map", lambda: e in [m["member_id"] for m in c_.network_map()["members"]], timeout=10)
    assert verify_map(c_.network_map(), c_.p.keys)
