"""The identity keeper's and scale-in protection's rules (shared/decisions/identities.py), one row each."""

from __future__ import annotations

import pytest

from shared.decisions.identities import (
    Held,
    Move,
    Tenure,
    Why,
    check_times,
    holder_name,
    next_move,
    parse_holder,
    protection_changes,
    running_instances,
)

TENURE = Tenure(token=3, valid_until=100.0, renew_at=80.0)


@pytest.mark.parametrize(
    ("now", "tenure", "node_running", "move", "reason", "message"),
    [
        (0.0, None, False, Move.ACQUIRE, Why.NO_TENURE, "no tenure: ask for the lease"),
        (0.0, None, True, Move.ACQUIRE, Why.NO_TENURE, "no tenure: ask for the lease"),  # the lease comes first
        (50.0, TENURE, True, Move.KEEP, Why.VALID, "tenure valid 50.0 s more"),
        (80.0, TENURE, True, Move.RENEW, Why.RENEW_DUE, "renewal due, tenure valid 20.0 s more"),
        (89.9, TENURE, True, Move.RENEW, Why.RENEW_DUE, "renewal due, tenure valid 10.1 s more"),  # room left
        (90.0, TENURE, True, Move.STOP, Why.ENDING, "node stopped 10.0 s before the tenure could end"),
        (100.0, TENURE, True, Move.STOP, Why.ENDING, "node stopped 0.0 s before the tenure could end"),
        (150.0, TENURE, True, Move.STOP, Why.OVER, "node stopped 50.0 s after the tenure could have ended"),
        (50.0, TENURE, False, Move.RELEASE, Why.NODE_EXITED, "the node exited by itself"),
        (95.0, TENURE, False, Move.STOP, Why.ENDING, "node stopped 5.0 s before"),  # a no-op stop, then release
    ],
)
def test_next_move(
    now: float, tenure: Tenure | None, node_running: bool, move: Move, reason: Why, message: str
) -> None:
    decided = next_move(now, tenure, node_running=node_running, stop_budget=10.0)
    assert (decided.move, decided.reason) == (move, reason)
    assert decided.message.startswith(message)


@pytest.mark.parametrize(
    ("lease", "renew", "budget", "error"),
    [
        (30, 5.0, 18.0, None),
        (15, 2.0, 11.0, None),
        (14, 2.0, 5.0, "blob leases last 15 to 60 s"),
        (61, 2.0, 5.0, "blob leases last 15 to 60 s"),
        (30, 0.0, 5.0, "must be positive"),
        (30, 5.0, 0.0, "must be positive"),
        (30, 6.0, 19.0, "leaves no room for two renewals every 6 s before stopping the node 19 s ahead"),
    ],
)
def test_the_keepers_times_leave_room_for_two_renewals_before_the_stop(
    lease: int, renew: float, budget: float, error: str | None
) -> None:
    if error is None:
        check_times(lease, renew, budget)
    else:
        with pytest.raises(ValueError, match=error):
            check_times(lease, renew, budget)


def test_a_holder_names_the_scale_set_and_the_instance_and_nothing_else_parses() -> None:
    assert holder_name("vmss-bank-a", "12") == "vmss-bank-a/12"
    assert parse_holder("vmss-bank-a/12") == ("vmss-bank-a", "12")
    for other in (None, "", "bank-a/deployment-1", "vmss/1/2", "/3", "vmss-a/x"):
        assert parse_holder(other) is None, other
    with pytest.raises(ValueError, match="numeric id"):
        holder_name("vmss", "abc")


def test_the_instances_running_identities_are_those_holding_a_lease_now_in_that_scale_set() -> None:
    leases = [
        Held("bank-a", "vmss-a/1", leased=True),
        Held("bank-a-notary", "vmss-a/4", leased=True),
        Held("bank-a-2", "vmss-a/2", leased=False),  # expired or released: runs nothing
        Held("bank-a-3", "vmss-b/7", leased=True),  # another scale set
        Held("bank-a-4", "bank-a/func-1", leased=True),  # not a keeper's holder
    ]
    assert running_instances(leases, "vmss-a") == {"1": "bank-a", "4": "bank-a-notary"}


@pytest.mark.parametrize(
    ("protected", "running", "ours", "changes", "ours_after", "why"),
    [
        ({"1": False, "2": False}, {"1": "a"}, set(), {"1": True}, {"1"}, "a running instance is protected"),
        ({"1": True, "2": False}, {"1": "a"}, {"1"}, {}, {"1"}, "already protected by us: nothing to do"),
        ({"1": True, "2": False}, {}, {"1"}, {"1": False}, set(), "ours, no longer running: released"),
        ({"1": True}, {}, set(), {}, set(), "protected by hand: never lifted"),
        ({"1": True}, {"1": "a"}, set(), {}, set(), "protected by hand and running: not claimed"),
        ({"2": False}, {}, {"1"}, {}, set(), "ours but gone: forgotten"),
        ({"1": False}, {"9": "a"}, set(), {}, set(), "a holder that is not an instance of the set: nothing"),
    ],
)
def test_protection_follows_the_identities_and_never_lifts_an_operators(
    protected: dict[str, bool], running: dict[str, str], ours: set[str],
    changes: dict[str, bool], ours_after: set[str], why: str,
) -> None:  # fmt: skip
    assert protection_changes(protected, running, ours) == (changes, frozenset(ours_after)), why
