"""Bugs the chaos work found, each pinned by a test on the fakes so it stays fixed.

Issue 19's (a late copy of a done step resumed a failed member and posted nothing, leaving it pending
for good; a poison record failed a member that had gone on since it was read) is pinned where the
rebuilt onboarding lives: ``tests/unit/test_onboarding.py``,
``test_a_late_copy_of_a_done_step_resumes_a_failed_member_where_its_record_stands`` and
``test_a_poison_record_does_not_fail_a_member_that_went_active_since_it_was_read``.
"""

from __future__ import annotations

import json

from shared.fakes.leases import FakeLeaseStore
from shared.services import onboarding as ob
from shared.services.leadership import COORDINATOR
from shared.services.rotation import KeyRotator
from tests.support.onboarding_world import Consortium, request
from tests.support.rotation_world import POLICIES


def test_a_keys_step_redelivered_after_a_rotation_changes_nothing() -> None:
    """A keys step whose instance died before deleting it comes back after the member rotated its TLS key:
    the step must see the keys are there and change nothing (no new version, the record's keys kept)."""
    world = Consortium()
    world.found("bank-a", "bank-b")
    for founder in ("bank-a", "bank-b"):
        world.post(founder, ob.REQUESTS, request(founder))
    world.settle(rounds=6)
    a = world.deployments["bank-a"]
    assert a.status() == "active"
    leases = FakeLeaseStore(world.clock.now)
    grant = leases.try_acquire(COORDINATOR, "bank-a/1", 60)
    assert grant is not None
    rotator = KeyRotator(
        member_id="bank-a", state=a.member.state, keys=a.member.keys, leases=leases, queues=a.member.queues,
        clock=world.clock, policies=POLICIES, holder="bank-a/1", consortium=a.member.service,
    )  # fmt: skip
    rotator.run(grant.fencing_token, lambda: None, force=True, request_id="rot-1")
    record = a.service.record()
    assert record is not None
    before = (record["keys"], len(a.member.keys.list_versions("bank-a-tls")))
    assert before[1] == 2, "the rotation made a second TLS version"

    keys_step = {"request_id": record["request_id"], "member_id": "bank-a", "step": "keys"}
    outcome = world.post("bank-a", ob.STEP_QUEUES["keys"], json.dumps(keys_step))

    after = a.service.record()
    assert after is not None
    assert (after["keys"], len(a.member.keys.list_versions("bank-a-tls"))) == before, outcome.message
