"""Leases, takeover, renewal, cancellation and fencing against a real Azurite.

These wait out real 15-second blob leases, so they are marked slow; each waits once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from azure.storage.blob import BlobLeaseClient, ContainerClient

from shared.adapters.blob_leases import BlobLeaseStore
from shared.adapters.blob_state import BlobStateStore
from shared.adapters.storage import expand_connection_string
from shared.errors import BusyError, FencedError, LeaseLostError
from shared.services.leadership import (
    COORDINATOR,
    Coordinator,
    FencedWriter,
    LeaseKeeper,
    coordinator_status,
    member_lock,
)
from tools.harness.wait import wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def container(storage_connection_string: str, unique_name: str) -> ContainerClient:
    client = ContainerClient.from_connection_string(expand_connection_string(storage_connection_string), unique_name)
    client.create_container()
    return client


def test_each_acquisition_gets_a_larger_fencing_token(container: ContainerClient) -> None:
    store = BlobLeaseStore(container)
    tokens = []
    for holder in ("a", "b", "c"):
        grant = store.try_acquire(COORDINATOR, holder, 15)
        assert grant is not None
        assert store.try_acquire(COORDINATOR, "intruder", 15) is None, "a held lease cannot be taken"
        tokens.append(grant.fencing_token)
        store.release(grant)
    assert tokens == [1, 2, 3]
    assert store.read(COORDINATOR).holder == "c"


def test_every_leases_record_comes_from_one_listing_and_a_missing_container_has_none(
    container: ContainerClient, storage_connection_string: str
) -> None:
    store = BlobLeaseStore(container)
    held = store.try_acquire("identity-b", "vmss-a/2", 15)
    released = store.try_acquire("identity-a", "vmss-a/1", 15)
    assert held is not None and released is not None
    store.release(released)
    records = [(r.name, r.holder, r.fencing_token, r.leased) for r in store.records()]
    assert records == [("identity-a", "vmss-a/1", 1, False), ("identity-b", "vmss-a/2", 1, True)]
    assert store.records() == [store.read("identity-a"), store.read("identity-b")]
    missing = ContainerClient.from_connection_string(
        expand_connection_string(storage_connection_string), container.container_name + "-none"
    )
    assert BlobLeaseStore(missing).records() == []


def test_a_lease_duration_outside_the_blob_limits_is_refused(container: ContainerClient) -> None:
    with pytest.raises(ValueError, match=r"15\.\.60"):
        BlobLeaseStore(container).try_acquire(COORDINATOR, "a", -1)


def test_a_member_lock_excludes_a_second_step_for_the_same_member(container: ContainerClient) -> None:
    store = BlobLeaseStore(container)
    with member_lock(store, "bank-c", "onboarding"), pytest.raises(BusyError):
        with member_lock(store, "bank-c", "rotation"):
            pass
    with member_lock(store, "bank-c", "rotation"):
        pass


@pytest.mark.slow
def test_renewal_keeps_leadership_while_an_unrenewed_lease_is_taken_over_after_expiry(
    container: ContainerClient,
) -> None:
    store = BlobLeaseStore(container)
    renewed = LeaseKeeper(store, "renewed", "a", 15)
    assert renewed.try_acquire() is not None
    abandoned = store.try_acquire("abandoned", "a", 15)  # nobody renews this one: its holder "died"
    assert abandoned is not None
    try:
        deadline = time.monotonic() + 40
        taken = None
        while taken is None and time.monotonic() < deadline:
            taken = store.try_acquire("abandoned", "b", 15)
            time.sleep(0.5)
        assert taken is not None and taken.fencing_token == abandoned.fencing_token + 1
        assert store.try_acquire("renewed", "b", 15) is None, "the renewed lease is still held"
        assert renewed.term is not None and renewed.term.active()
    finally:
        renewed.release()


@pytest.mark.slow
def test_a_lost_renewal_cancels_the_guarded_work(container: ContainerClient) -> None:
    store = BlobLeaseStore(container)
    coordinator = Coordinator(store, "a", 15)
    term = coordinator.ensure()
    assert term is not None
    stopped = threading.Event()

    def guarded_work() -> None:
        try:
            while True:
                term.check()
                time.sleep(0.1)
        except LeaseLostError:
            stopped.set()

    threading.Thread(target=guarded_work, daemon=True).start()
    BlobLeaseClient(container.get_blob_client("leases/coordinator")).break_lease(lease_break_period=0)
    assert store.try_acquire(COORDINATOR, "b", 15) is not None
    assert term.cancelled.wait(20), "the renewer noticed the lost lease"
    assert stopped.wait(5), "the guarded work stopped"
    assert coordinator_status(store)["holder"] == "b"


@pytest.mark.slow
def test_a_paused_ex_leader_that_wakes_up_is_refused_by_the_fence(
    container: ContainerClient, storage_connection_string: str
) -> None:
    leader = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("paused_leader.py")),
            storage_connection_string,
            container.container_name,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert leader.stdout is not None
        first = leader.stdout.readline().split()
        assert first[0] == "leader"
        old_token = int(first[1])

        def landed() -> int:
            doc = BlobStateStore(container).read("decisions/history.json")
            return len([w for w in (doc.body if doc else {}).get("writes", []) if w == old_token])

        wait_until("the leader lands a few writes", lambda: landed() >= 2, timeout=30)
        leader.send_signal(signal.SIGSTOP)
        store, state = BlobLeaseStore(container), BlobStateStore(container)
        coordinator = Coordinator(store, "new-leader", 15)
        deadline, term = time.monotonic() + 40, None
        while term is None and time.monotonic() < deadline:
            term = coordinator.ensure()
            time.sleep(0.5)
        assert term is not None and term.fencing_token == old_token + 1
        FencedWriter(state, store).update(
            "decisions/history.json",
            term.fencing_token,
            lambda body: {"writes": [*(body or {}).get("writes", []), term.fencing_token]},
        )
        leader.send_signal(signal.SIGCONT)
        assert leader.stdout.readline().strip() == "fenced"
        assert leader.wait(timeout=10) == 0
        doc = state.read("decisions/history.json")
        assert doc is not None
        writes = doc.body["writes"]
        assert writes[-1] == term.fencing_token and old_token not in writes[writes.index(term.fencing_token) :]
        coordinator.stop()
    finally:
        if leader.poll() is None:
            leader.send_signal(signal.SIGCONT)
            leader.kill()
        leader.wait()


def test_a_write_with_a_stale_token_is_refused_at_once(container: ContainerClient) -> None:
    store, state = BlobLeaseStore(container), BlobStateStore(container)
    old = store.try_acquire(COORDINATOR, "old", 15)
    assert old is not None
    store.release(old)
    new = store.try_acquire(COORDINATOR, "new", 15)
    assert new is not None
    writer = FencedWriter(state, store)
    writer.update("scale/decisions.json", new.fencing_token, lambda body: {"n": 1})
    with pytest.raises(FencedError, match="newer"):
        writer.update("scale/decisions.json", old.fencing_token, lambda body: {"n": 2})
    doc = state.read("scale/decisions.json")
    assert doc is not None and doc.body == {"n": 1, "fencing_token": new.fencing_token}
