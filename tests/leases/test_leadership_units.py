"""Leadership rules with fakes: tokens only rise, stale writes are refused, terms end when renewals stop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import BusyError, FencedError, LeaseLostError
from shared.fakes.leases import FakeLeaseStore
from shared.fakes.state import FakeStateStore
from shared.services.leadership import COORDINATOR, Coordinator, FencedWriter, Term, coordinator_status, member_lock


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 11, 24, tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def leases(clock: Clock) -> FakeLeaseStore:
    return FakeLeaseStore(clock.now)


def test_a_held_lease_cannot_be_taken_until_it_expires(leases: FakeLeaseStore, clock: Clock) -> None:
    first = leases.try_acquire(COORDINATOR, "a", 15)
    assert first is not None and leases.try_acquire(COORDINATOR, "b", 15) is None
    clock.advance(15.001)
    second = leases.try_acquire(COORDINATOR, "b", 15)
    assert second is not None and second.fencing_token == first.fencing_token + 1
    with pytest.raises(LeaseLostError):
        leases.renew(first)


@given(st.lists(st.sampled_from(["acquire-a", "acquire-b", "release", "expire"]), max_size=40))
def test_fencing_tokens_strictly_increase_across_acquisitions(steps: list[str]) -> None:
    clock = Clock()
    store = FakeLeaseStore(clock.now)
    tokens, held = [], None
    for step in steps:
        if step.startswith("acquire"):
            grant = store.try_acquire(COORDINATOR, step[-1], 15)
            if grant is not None:
                tokens.append(grant.fencing_token)
                held = grant
        elif step == "release" and held is not None:
            store.release(held)
        else:
            clock.advance(20)
    assert tokens == sorted(set(tokens)), "every acquisition gets a larger token than any before"


def test_a_term_ends_when_its_validity_runs_out_and_check_says_so() -> None:
    now = [0.0]
    term = Term(COORDINATOR, "a", 3, 15, valid_until=15.0, monotonic=lambda: now[0])
    term.check()
    now[0] = 15.0
    assert not term.active()
    with pytest.raises(LeaseLostError, match="token 3"):
        term.check()
    assert term.cancelled.is_set()


@pytest.mark.parametrize(
    ("lease_token", "doc_token", "writer_token", "refused", "why"),
    [
        (5, 4, 5, False, "the current holder writes over an older holder's document"),
        (5, 5, 5, False, "the current holder writes again with its own token"),
        (6, 5, 5, True, "a newer acquisition exists: the old holder is fenced off"),
        (5, 6, 5, True, "the document was written by a newer holder"),
        (5, None, 5, False, "a first write of a new document"),
    ],
)
def test_fenced_writes(lease_token: int, doc_token: int | None, writer_token: int, refused: bool, why: str) -> None:
    clock = Clock()
    leases = FakeLeaseStore(clock.now)
    for _ in range(lease_token):
        grant = leases.try_acquire(COORDINATOR, "x", 15)
        assert grant is not None
        leases.release(grant)
    state = FakeStateStore()
    if doc_token is not None:
        state.create("network-map/current.json", {"version": 1, "fencing_token": doc_token})
    writer = FencedWriter(state, leases)
    if refused:
        with pytest.raises(FencedError):
            writer.update("network-map/current.json", writer_token, lambda body: {"version": 2})
        doc = state.read("network-map/current.json")
        assert doc is None or doc.body.get("version") == 1, why
    else:
        doc = writer.update("network-map/current.json", writer_token, lambda body: {"version": 2})
        assert doc.body == {"version": 2, "fencing_token": writer_token}, why


def test_coordinator_status_names_the_holder_token_and_expiry(leases: FakeLeaseStore, clock: Clock) -> None:
    assert coordinator_status(leases) == {"holder": None, "fencing_token": 0, "expires_at": None}
    coordinator = Coordinator(leases, "bank-a-westeurope/vm-0", 15)
    term = coordinator.ensure()
    assert term is not None
    try:
        status = coordinator_status(leases)
        assert status["holder"] == "bank-a-westeurope/vm-0" and status["fencing_token"] == 1
        assert status["expires_at"] == (clock.t + timedelta(seconds=15)).isoformat()
    finally:
        coordinator.stop()
    assert coordinator_status(leases)["holder"] is None, "a graceful stop hands the role over at once"


def test_a_member_lock_keeps_two_steps_for_one_member_apart(leases: FakeLeaseStore) -> None:
    with member_lock(leases, "bank-c", "step-1"):
        with pytest.raises(BusyError, match="bank-c"), member_lock(leases, "bank-c", "step-2"):
            pass
        with member_lock(leases, "bank-d", "step-2"):
            pass  # other members are not blocked
    with member_lock(leases, "bank-c", "step-2"):
        pass  # released on exit
