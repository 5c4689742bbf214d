"""Trials under chaos on the four member deployments: kill -9, double delivery, an Azurite restart,
storms and skewed clocks.

Each trial of the long run is on a stack of its own (the members are fixed identities and a trial
ends with two of them out of the chain); the short run's one trial is on the stack the bad input used.
The founders join, bank-c joins by their vote and bank-d by a split decision,
load swings on bank-a's scale set, keys rotate through the chain, bank-c leaves and bank-d is removed,
while deployments (bank-b's second one included) are killed and restarted, Azurite restarts on the
same data, and the emulator throttles, fails and slows down; then the invariants are read back from
each member's own storage, vault and subscription (see ``tools/chaos``). A violation fails the test
with the history that names its cause. The short run is one trial; ``--chaos-long`` runs six seeds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.conftest import ChaosSession
from tools.chaos import STEPS, MemberStack, run_trial

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.mark.timeout(900)
def test_a_trial_under_chaos_keeps_every_invariant(chaos: ChaosSession, trial: int, tmp_path: Path) -> None:
    fresh = chaos.long  # the long run: each trial on a stack of its own, from the founders' first requests
    stack = MemberStack(tmp_path).start() if fresh else chaos.stack
    try:
        result = run_trial(stack, trial, seed=7000 + trial, chaos_seconds=chaos.chaos_seconds)
        crashes = stack.host_crashes()
        twice = stack.second_deliveries()
    finally:
        if fresh:
            stack.stop()
    print(result.summary())
    print("\n".join(result.log))
    assert result.harness_errors == []
    histories = [line for v in result.violations for line in [v, *(f"  {h}" for h in result.histories.get(v, []))]]
    assert result.violations == [], "\n".join(histories)
    assert sorted(result.steps) == sorted(STEPS), "the story did not get to its end: the trial proved less than it says"
    assert result.actions["kill"] >= 1, "no deployment was killed: the trial proved nothing about crashes"
    assert result.actions["azurite-restart"] == 1
    assert result.actions["429"] + result.actions["5xx"] + result.actions["latency"] >= 1
    assert twice > 0, "no message was delivered twice"
    assert crashes == []
