"""Two deployments of the same member (regions), sharing that member's storage account, elect one
coordinator between them, show it in the member's status, and hand over on a graceful stop; the
lease lives in that member's own storage and gives no authority over any other member."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from shared.bootstrap import Platform
from shared.settings import Settings
from tests.e2e.conftest import MemberStack, start_host, stop_hosts
from tools.harness.wait import wait_until

pytestmark = pytest.mark.e2e
#: What the host logs each time a deployment's heartbeat ran (it tried the coordinator lease).
HEARTBEAT_RAN = "Executed 'coordinator_heartbeat' (Succeeded)"


def status(values: dict[str, str]) -> dict[str, Any]:
    return Platform(Settings(values)).status()


def wait_for_holder(values: dict[str, str], prefix: str, timeout: float = 30) -> dict[str, Any]:
    def held() -> dict[str, Any] | None:
        coordinator = status(values)["coordinator"]
        return dict(coordinator) if (coordinator["holder"] or "").startswith(prefix) else None

    return wait_until(f"a coordinator from {prefix!r}", held, timeout, every=0.2,
                      seen=lambda: str(status(values)["coordinator"]))  # fmt: skip


def test_one_of_two_deployments_of_a_member_becomes_coordinator_and_a_graceful_stop_hands_over(
    member_stack_factory, tmp_path: Path
) -> None:
    s: MemberStack = member_stack_factory(("bank-a", "bank-b"))
    a = s.values("bank-a")
    first = s.host_pid("bank-a")  # bank-a's deployment the stack started: bank-a-local
    held = wait_for_holder(a, "bank-a-local/")
    assert held["fencing_token"] >= 1 and held["expires_at"]
    # bank-a's second deployment: another Function App (its own host id) on bank-a's storage account
    second = {**a, "CONSORTIUM_DEPLOYMENT": "bank-a-east", "AzureFunctionsWebHost__hostid": "consortium-bank-a-east"}
    started: list[Any] = []
    try:
        start_host(tmp_path, "bank-a-east", second, started)
        log = tmp_path / "bank-a-east.log"
        wait_until("two heartbeats of the standby (two tries at the lease)",
                   lambda: log.read_text(errors="replace").count(HEARTBEAT_RAN) >= 2, 30)  # fmt: skip
        assert status(a)["coordinator"]["holder"].startswith("bank-a-local/"), "the standby does not steal the role"
        os.kill(first, signal.SIGTERM)
        _, code = os.waitpid(first, 0)
        assert os.waitstatus_to_exitcode(code) == 0
        taken = wait_for_holder(a, "bank-a-east/", timeout=10)  # released on stop: no lease expiry to wait for
        assert taken["fencing_token"] == held["fencing_token"] + 1
        # bank-b's coordinator is bank-b's own deployment, elected in bank-b's storage, untouched
        assert status(s.values("bank-b"))["coordinator"]["holder"].startswith("bank-b-local/")
    finally:
        stop_hosts(started)
