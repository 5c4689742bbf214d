"""Autoscale end to end: the real app on the local stack (a deployment per member), the emulator's load
model, Monitor and ARM.

A founder (bank-a) goes active, then the emulator's load drives its scale set: a surge scales out
within two ticks, a drop holds through the scale-in window and then scales in, missing metrics hold,
a single 429 from the metrics API is retried by the SDK and the tick decides, and a metrics outage
makes no decision. Its deployment decides only on its own scale set, in its own subscription; the
other founder's (bank-b) deployment keeps its own scale set where its own load puts it.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.services import onboarding as ob
from shared.services.autoscale import STATE_PATH
from tests.e2e.conftest import MemberStack
from tests.support.onboarding_world import request
from tools.harness.wait import wait_until

pytestmark = pytest.mark.e2e

SETTINGS = {
    "AUTOSCALE_SCHEDULE": "*/2 * * * * *", "AUTOSCALE_BOOT_SECONDS": "0", "AUTOSCALE_SCALE_IN_WINDOW_SECONDS": "12",
    "AUTOSCALE_COOLDOWN_SECONDS": "4",
}  # fmt: skip


def test_surge_drop_gap_and_throttling_on_the_local_stack(member_stack_factory) -> None:
    s: MemberStack = member_stack_factory(("bank-a", "bank-b"), values=SETTINGS)
    member, other = "bank-a", "bank-b"
    name = f"vmss-{member}"

    def state(who: str = member) -> dict[str, Any]:
        doc = s.platform(who).state.read(STATE_PATH)
        return doc.body if doc else {}

    def last() -> dict[str, Any]:
        return state().get("last", {}).get(name, {})

    def capacity(who: str = member) -> int:
        return s.platform(who).scalesets.get(f"vmss-{who}").capacity

    def load(tpm: float, who: str = member) -> None:
        s.admin("PUT", f"/_admin/load/vmss-{who}", {"tpm": tpm})

    for founder in (member, other):
        s.send(founder, ob.REQUESTS, request(founder, node_count=2, scale={"min_nodes": 1, "max_nodes": 6}))
    for founder in (member, other):
        s.wait_status(founder, "active")
    load(1300)  # 2 nodes at ~65% CPU: inside the band
    load(1300, other)
    wait_until("a first decision", lambda: last().get("reason") == "within_tolerance")
    assert capacity() == 2

    # a surge: saturated, scaled out within two ticks, then up to the member's maximum
    ticks = state()["ticks"]
    load(5500)

    def changes() -> list[dict[str, Any]]:
        return [r for r in state()["recent"] if r["member_id"] == member]

    wait_until("a scale-out recorded", changes, timeout=30)
    assert state()["ticks"] <= ticks + 2, "the surge took more than two ticks"
    assert changes()[0]["reason"] in ("saturated", "scale_out") and changes()[0]["inputs"]["capacity"] == 2
    wait_until("the maximum", lambda: capacity() == 6, timeout=30)
    wait_until("at the maximum", lambda: last().get("reason") == "at_max", timeout=30)
    assert changes()[-1]["capacity"] == 6 and all(c["applied"] for c in changes())

    # a drop: held through the window, then one scale-in to what the load asks for
    load(400)
    wait_until("stabilizing", lambda: last().get("reason") in ("stabilizing", "cooldown"), timeout=30)
    assert capacity() == 6
    wait_until("the scale-in", lambda: changes()[-1]["capacity"] < 6, timeout=60)
    assert changes()[-1]["reason"] == "scale_in"
    wait_until("down to one node", lambda: capacity() == 1, timeout=60)

    # missing metrics hold whatever the load
    s.admin("PUT", f"/_admin/metrics/{name}", {"missing": True})
    load(9000)
    wait_until("missing data", lambda: last().get("reason") == "missing_data", timeout=30)
    ticks = state()["ticks"]
    wait_until("three more ticks", lambda: state()["ticks"] >= ticks + 3, timeout=30)
    assert capacity() == 1 and last()["reason"] == "missing_data"
    s.admin("PUT", f"/_admin/metrics/{name}", {"missing": False})

    # one 429: the SDK retries (honouring Retry-After) and the tick decides on full data
    load(400)
    wait_until("steady again", lambda: last().get("reason") in ("within_tolerance", "at_min"), timeout=30)
    s.admin("PUT", "/_admin/faults/metrics", {"status": 429, "count": 1, "retry_after": 1})
    ticks = state()["ticks"]
    wait_until("a tick after the 429", lambda: state()["ticks"] >= ticks + 2, timeout=30)
    assert last()["reason"] in ("within_tolerance", "at_min")

    # a metrics outage (429 past the SDK's retries): no decision on what could not be read
    load(9000)
    s.admin("PUT", "/_admin/faults/metrics", {"status": 429, "count": 10_000, "retry_after": 0})
    try:
        wait_until("held for missing data", lambda: last().get("reason") == "missing_data", timeout=60)
        ticks = state()["ticks"]
        wait_until("two more ticks", lambda: state()["ticks"] >= ticks + 2, timeout=60)
        assert capacity() == 1
    finally:
        s.admin("DELETE", "/_admin/faults")
    wait_until("the surge acted on once metrics return", lambda: capacity() > 1, timeout=30)

    # each deployment decided on its own scale set only: bank-b's stayed where its own load keeps it
    assert capacity(other) == 2
    assert set(state()["last"]) == {name} and {r["member_id"] for r in state()["recent"]} == {member}
    assert set(state(other).get("last", {})) <= {f"vmss-{other}"}
    assert all(r["member_id"] == other for r in state(other).get("recent", []))
