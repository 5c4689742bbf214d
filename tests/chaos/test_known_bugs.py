"""Bugs the chaos work found, each pinned by a test on the fakes so it stays fixed."""

from __future__ import annotations

from shared.services import onboarding as ob
from shared.services.leadership import COORDINATOR
from shared.services.rotation import KeyRotator
from tests.rotation.world import POLICIES
from tests.unit.onboarding_world import World, request


def test_a_keys_step_redelivered_after_a_rotation_changes_nothing() -> None:
    world = World(founders=("bank-a",))
    world.post(ob.REQUESTS, request("bank-a"))
    keys_step = next(s for s in world.pending_work() if s.queue == ob.STEP_QUEUES["keys"])
    world.drain()
    grant = world.leases.try_acquire(COORDINATOR, "coordinator/1", 60)
    assert grant is not None
    rotator = KeyRotator(
        state=world.state, keys=world.keys, leases=world.leases, queues=world.queues, clock=world.clock,
        policies=POLICIES, holder="coordinator/1",
    )  # fmt: skip
    rotator.run(grant.fencing_token, lambda: None, member_id="bank-a", force=True, request_id="rot-1")
    before = (world.record("bank-a")["keys"], len(world.keys.list_versions("bank-a-tls")))
    assert before[1] == 2

    world.post(keys_step.queue, keys_step.body)  # the keys step again: its instance died before deleting it

    assert (world.record("bank-a")["keys"], len(world.keys.list_versions("bank-a-tls"))) == before
