"""Trials under chaos on the live stack: kill -9, double delivery, an Azurite restart, storms and skewed clocks.

Each trial onboards two founders and a newcomer voted in by them, surges a scale set, rotates keys and
offboards a founder while instances are killed and restarted, Azurite restarts on the same data, and
the emulator throttles, fails and slows down; then the invariants are read back from Azurite, Key
Vault and ARM (see ``tools/chaos.py``). The short run is one trial; ``--chaos-long`` runs six.
"""

from __future__ import annotations

import pytest

from tests.chaos.conftest import ChaosSession
from tools.chaos import run_trial

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.timeout(600)
def test_a_trial_under_chaos_keeps_every_invariant(chaos: ChaosSession, trial: int) -> None:
    result = run_trial(chaos.stack, chaos.prefix, trial, seed=7000 + trial, chaos_seconds=chaos.chaos_seconds)
    print(result.summary())
    print("\n".join(result.log))
    assert result.harness_errors == []
    assert result.violations == []
    assert result.actions["kill"] >= 1, "no instance was killed: the trial proved nothing about crashes"
    assert result.actions["azurite-restart"] == 1
    assert result.actions["429"] + result.actions["5xx"] + result.actions["latency"] >= 1
    assert chaos.stack.second_deliveries() > 0, "no message was delivered twice"
    assert chaos.stack.host_crashes() == []
