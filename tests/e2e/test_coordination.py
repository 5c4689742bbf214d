"""The real app on the local host elects a coordinator, shows it in the status, and hands over on stop."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from shared.bootstrap import Platform
from shared.settings import Settings

pytestmark = pytest.mark.e2e


def status(values: dict[str, str]) -> dict[str, Any]:
    return Platform(Settings(values)).status()


def wait_for_holder(values: dict[str, str], prefix: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        coordinator = status(values)["coordinator"]
        if (coordinator["holder"] or "").startswith(prefix):
            return dict(coordinator)
        time.sleep(0.2)
    raise AssertionError(f"no coordinator from {prefix!r} within {timeout} s: {status(values)['coordinator']}")


def test_one_of_two_deployments_becomes_coordinator_and_a_graceful_stop_hands_over(run_app, app_settings) -> None:
    first = run_app("e2e-a")
    held = wait_for_holder(app_settings, "e2e-a/")
    assert held["fencing_token"] >= 1 and held["expires_at"]
    run_app("e2e-b")
    time.sleep(3)
    assert status(app_settings)["coordinator"]["holder"].startswith("e2e-a/"), "the standby does not steal the role"
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0
    taken = wait_for_holder(app_settings, "e2e-b/", timeout=10)  # released on stop: no lease expiry to wait for
    assert taken["fencing_token"] == held["fencing_token"] + 1
