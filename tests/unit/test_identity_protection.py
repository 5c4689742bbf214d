"""Scale-in never removes an instance while it runs a Corda identity (shared/services/identities.py), on the
autoscale tick over the fakes: the identity's lease names its instance, the tick protects that instance
before the policy decides, and lifts the protection once the identity has moved."""

from __future__ import annotations

from collections.abc import Mapping

from shared.errors import TransientError
from shared.fakes.leases import FakeLeaseStore
from shared.ports.leases import LeaseGrant, LeaseRecord
from shared.services.identities import STATE_PATH, IdentityProtection
from shared.services.status import identities_view
from tests.unit.test_autoscale_service import Fleet

SET = "vmss-bank-0000"


class Identities(FakeLeaseStore):
    """The member's identity-leases container, as the keepers on the instances fill it."""

    def __init__(self, fleet: Fleet):
        super().__init__(fleet.clock.now)
        self.failing = False

    def run(self, identity: str, instance: str) -> LeaseGrant:
        grant = self.try_acquire(identity, f"{SET}/{instance}", 60)
        assert grant is not None
        return grant

    def records(self) -> list[LeaseRecord]:
        if self.failing:
            raise TransientError("503 Server Busy")
        return super().records()


def fleet_with_identities(capacity: int = 4) -> tuple[Fleet, Identities, IdentityProtection]:
    fleet = Fleet(members=1, capacity=capacity)
    identities = Identities(fleet)
    protection = IdentityProtection(identities, fleet.sets, fleet.state)
    fleet.scaler.protect_identities = protection.sync
    return fleet, identities, protection


def instances(fleet: Fleet) -> dict[str, bool]:
    return {i.instance_id: i.protected_from_scale_in for i in fleet.sets.instances[SET]}


def test_scale_in_keeps_the_instances_that_run_identities_whatever_their_age() -> None:
    fleet, identities, _ = fleet_with_identities(capacity=4)
    newest = fleet.sets.instances[SET][-1].instance_id  # the one a scale-in removes first
    node, notary = identities.run("bank-a", newest), identities.run("bank-a-notary", "1")
    fleet.load("bank-0000", 5, 10)
    for _ in range(12):
        fleet.tick(10)
        for grant in (node, notary):  # the keepers renew
            identities.renew(grant)
    assert instances(fleet) == {"1": True, newest: True}  # scaled in to the two that run identities


def test_protection_follows_an_identity_that_moves_and_then_scale_in_may_remove_the_old_instance() -> None:
    fleet, identities, _ = fleet_with_identities(capacity=3)
    grant = identities.run("bank-a", "2")
    fleet.tick(10)
    assert instances(fleet) == {"0": False, "1": False, "2": True}
    identities.release(grant)  # the keeper on instance 2 gave it up (its node exited) ...
    moved = identities.run("bank-a", "0")  # ... and the keeper on instance 0 took it
    fleet.tick(10)
    assert instances(fleet) == {"0": True, "1": False, "2": False}
    fleet.load("bank-0000", 5, 10)
    for _ in range(12):
        fleet.tick(10)
        identities.renew(moved)
    assert instances(fleet) == {"0": True}  # the oldest instance stays: it runs the identity


def ticks_until_the_first_scale_in(capacity: int) -> int:
    """How many ticks of low load the fleet takes to decide its first scale-in (the fakes are deterministic)."""
    fleet, identities, _ = fleet_with_identities(capacity=capacity)
    grant = identities.run("bank-a", "0")
    fleet.load("bank-0000", 5, 10)
    for ticks in range(1, 50):
        if fleet.tick(10).applied:
            return ticks
        identities.renew(grant)
    raise AssertionError("no scale-in in 50 ticks of low load")


def test_an_identity_that_moves_during_the_tick_keeps_its_new_instance_and_the_scale_in_waits() -> None:
    """The identity moves to the instance a scale-in removes first, after the tick's protection and before its
    capacity change: protected again just before the change, and the scale-in waits for the next tick."""
    first_scale_in = ticks_until_the_first_scale_in(capacity=3)
    fleet, identities, protection = fleet_with_identities(capacity=3)
    newest = fleet.sets.instances[SET][-1].instance_id
    held = [identities.run("bank-a", "0")]
    fleet.load("bank-0000", 5, 10)
    calls: list[str] = []

    def sync_then_move(scale_set: str) -> Mapping[str, bool]:
        changes = protection.sync(scale_set)
        calls.append(scale_set)
        if len(calls) == first_scale_in:  # the tick that scales in: the identity moves after its first sync
            identities.release(held[0])
            held[0] = identities.run("bank-a", newest)
        return changes

    fleet.scaler.protect_identities = sync_then_move
    for _ in range(first_scale_in - 1):
        fleet.tick(10)
        identities.renew(held[0])
    tick = fleet.tick(10)
    assert tick.applied == {} and fleet.capacity("bank-0000") == 3  # the scale-in waits ...
    assert instances(fleet)[newest] is True  # ... with the identity's new instance protected
    for _ in range(12):
        identities.renew(held[0])
        fleet.tick(10)
    assert instances(fleet) == {newest: True}  # scaled in to the instance that runs the identity


def test_protection_set_by_hand_is_never_lifted() -> None:
    fleet, identities, _ = fleet_with_identities(capacity=3)
    fleet.sets.set_protection(SET, "1", protect_from_scale_in=True)  # an operator's
    grant = identities.run("bank-a", "1")
    fleet.tick(10)
    identities.release(grant)
    fleet.tick(10)
    assert instances(fleet)["1"] is True


def test_instances_are_listed_only_when_the_running_ones_change() -> None:
    fleet, identities, protection = fleet_with_identities(capacity=3)
    assert protection.sync(SET) == {} and fleet.sets.listings == 0  # no identity runs: nothing to list
    identities.run("bank-a", "2")
    assert protection.sync(SET) == {"2": True}
    listings = fleet.sets.listings
    assert protection.sync(SET) == {} and fleet.sets.listings == listings
    assert fleet.state.read(STATE_PATH).body[SET] == {"running": ["2"], "ours": ["2"]}  # type: ignore[union-attr]


def test_when_the_leases_cannot_be_read_the_set_is_not_scaled_in_that_tick() -> None:
    fleet, identities, _ = fleet_with_identities(capacity=4)
    fleet.load("bank-0000", 5, 10)
    identities.failing = True
    for _ in range(12):
        tick = fleet.tick(10)
    assert fleet.capacity("bank-0000") == 4
    assert "not read" in tick.decisions[SET].message
    identities.failing = False
    for _ in range(12):
        fleet.tick(10)
    assert fleet.capacity("bank-0000") == 1


def test_the_status_says_where_each_identity_runs_and_says_so_when_the_leases_cannot_be_read() -> None:
    fleet, identities, protection = fleet_with_identities(capacity=3)
    identities.run("bank-a", "2")
    protection.sync(SET)
    view = identities_view(identities, fleet.state)
    assert view["running"] == [
        {"identity": "bank-a", "holder": f"{SET}/2", "fencing_token": 1,
         "expires_at": view["running"][0]["expires_at"], "protected": True},
    ]  # fmt: skip
    assert view["protected"] == {SET: ["2"]} and view["error"] is None
    identities.failing = True
    assert identities_view(identities, fleet.state) == {
        "running": [],
        "protected": {SET: ["2"]},
        "error": "identity leases not read: 503 Server Busy",
    }
