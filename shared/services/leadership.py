"""Leadership: one coordinator among all deployments, per-member locks, and fenced writes.

- ``LeaseKeeper`` holds one lease and renews it in the background every third of its duration. Its
  ``Term`` stays valid only while renewals succeed, measured on this process's monotonic clock from
  the moment before the last successful renewal was sent (so a slow reply never extends it). The
  moment a renewal is refused, or validity runs out while renewals fail, the term is cancelled:
  guarded work checks ``term.check()`` (or waits on ``term.cancelled``) and stops.
- ``Coordinator`` is the role: timers call ``ensure()`` and act only with the term it returns.
  Standbys call ``ensure()`` too and take over once the holder's lease expires.
- ``member_lock`` keeps two steps for one member (an onboarding step, a rotation, a repair) apart;
  a busy member raises ``BusyError`` (transient), so the queue redelivers later.
- ``FencedWriter`` writes state owned by the coordinator with its fencing token. It refuses when
  the lease's token (or the document's) is newer than the writer's, and writes with If-Match so a
  write that raced a newer holder's fails and is re-checked. What remains: a holder paused after the
  check and before the write lands one write if the new holder has not yet written that document;
  the new holder then reads that write like any state before its term. Blob storage has no
  cross-blob condition that would close this; ``bench/bench_leadership.py`` counts such writes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from shared.errors import BusyError, ConflictError, FencedError, LeaseLostError, TransientError
from shared.ports.leases import LeaseGrant, LeaseStore
from shared.ports.state import Document, StateStore

COORDINATOR = "coordinator"


def holder_identity(deployment: str) -> str:
    """``<deployment>/<instance>``: names the deployment and the instance, as operators need."""
    instance = os.environ.get("WEBSITE_INSTANCE_ID") or f"{socket.gethostname()}-{os.getpid()}"
    return f"{deployment}/{instance[:40]}"


@dataclass
class Term:
    """One tenure of a lease: valid while renewals succeed; cancelled the moment they stop."""

    name: str
    holder: str
    fencing_token: int
    duration_seconds: int
    valid_until: float  # monotonic seconds
    monotonic: Callable[[], float] = field(repr=False, default=time.monotonic)
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    def active(self) -> bool:
        return not self.cancelled.is_set() and self.monotonic() < self.valid_until

    def check(self) -> None:
        """Raise ``LeaseLostError`` if the term is over: call it between steps of guarded work."""
        if not self.active():
            self.cancelled.set()
            raise LeaseLostError(f"lease {self.name} (token {self.fencing_token}) is no longer held")


class LeaseKeeper:
    """Acquires one lease and keeps it with a background renewer until released or lost."""

    def __init__(
        self,
        store: LeaseStore,
        name: str,
        holder: str,
        duration_seconds: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        on_lost: Callable[[Term], None] | None = None,
    ):
        self.store, self.name, self.holder, self.duration = store, name, holder, duration_seconds
        self.monotonic, self.on_lost = monotonic, on_lost
        self.grant: LeaseGrant | None = None
        self.term: Term | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def try_acquire(self) -> Term | None:
        with self._lock:
            if self.term is not None and self.term.active():
                return self.term
            sent = self.monotonic()
            grant = self.store.try_acquire(self.name, self.holder, self.duration)
            if grant is None:
                return None
            self.grant = grant
            self.term = Term(
                self.name, self.holder, grant.fencing_token, self.duration, sent + self.duration, self.monotonic
            )
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._renew_loop, args=(self.term,), daemon=True, name=f"lease-{self.name}"
            )
            self._thread.start()
            return self.term

    def _renew_loop(self, term: Term) -> None:
        interval = self.duration / 3
        while not self._stop.wait(interval):
            sent = self.monotonic()
            try:
                grant = self.grant
                if grant is None:  # released while this loop slept
                    return
                self.store.renew(grant)
                term.valid_until = sent + self.duration
                interval = self.duration / 3
            except LeaseLostError:
                self._lose(term)
                return
            except Exception:
                if not term.active():
                    self._lose(term)
                    return
                interval = 1.0  # keep trying while the lease may still be ours
        # stopped on purpose: release() handles the lease

    def _lose(self, term: Term) -> None:
        term.cancelled.set()
        if self.on_lost is not None:
            self.on_lost(term)

    def release(self) -> None:
        """Stop renewing and give the lease up; the term is cancelled first so work stops."""
        with self._lock:
            self._stop.set()
            if self.term is not None:
                self.term.cancelled.set()
            if self._thread is not None:
                self._thread.join(timeout=5)
            if self.grant is not None:
                with contextlib.suppress(Exception):
                    self.store.release(self.grant)
            self.grant, self.term, self._thread = None, None, None


class Coordinator:
    """The coordinator role over ``leases/coordinator``: act only with the term ``ensure()`` returns."""

    def __init__(
        self, store: LeaseStore, holder: str, lease_seconds: int, *, monotonic: Callable[[], float] = time.monotonic
    ):
        self.store = store
        self.keeper = LeaseKeeper(store, COORDINATOR, holder, lease_seconds, monotonic=monotonic)

    @property
    def holder(self) -> str:
        return self.keeper.holder

    def ensure(self) -> Term | None:
        """The current term if this instance is (or just became) coordinator, else None."""
        return self.keeper.try_acquire()

    def stop(self) -> None:
        """Hand over: release the lease so a standby takes over at once instead of after expiry."""
        self.keeper.release()


def coordinator_status(store: LeaseStore) -> dict[str, Any]:
    """The contract's ``coordinator`` object for ``consortium status --json``."""
    record = store.read(COORDINATOR)
    return {
        "holder": record.holder if record.leased else None,
        "fencing_token": record.fencing_token,
        "expires_at": record.expires_at.isoformat() if record.expires_at and record.leased else None,
    }


@contextlib.contextmanager
def member_lock(store: LeaseStore, member_id: str, holder: str, lease_seconds: int = 15) -> Iterator[Term]:
    """Hold ``leases/members/{member_id}`` for the block; ``BusyError`` if another step holds it."""
    keeper = LeaseKeeper(store, f"members/{member_id}", holder, lease_seconds)
    term = keeper.try_acquire()
    if term is None:
        raise BusyError(f"member {member_id} is busy with another step; retrying later")
    try:
        yield term
    finally:
        keeper.release()


class FencedWriter:
    """Writes coordinator-owned documents with a fencing token; refuses tokens older than any seen."""

    def __init__(self, state: StateStore, leases: LeaseStore, role: str = COORDINATOR, attempts: int = 5):
        self.state, self.leases, self.role, self.attempts = state, leases, role, attempts

    def update(self, path: str, token: int, change: Callable[[dict[str, Any] | None], dict[str, Any]]) -> Document:
        """Read ``path``, apply ``change`` to its body (None when absent), write it back fenced."""
        for _ in range(self.attempts):
            current = self.leases.read(self.role).fencing_token
            if current > token:
                raise FencedError(f"write to {path} with fencing token {token} refused: token {current} is newer")
            doc = self.state.read(path)
            seen = int(doc.body.get("fencing_token", 0)) if doc else 0
            if seen > token:
                raise FencedError(f"write to {path} with fencing token {token} refused: it was written with {seen}")
            body = {**change(doc.body if doc else None), "fencing_token": token}
            try:
                return self.state.create(path, body) if doc is None else self.state.replace(path, body, doc.etag)
            except ConflictError:
                continue  # a concurrent write: re-read, re-check the fence, re-decide
        raise TransientError(f"write to {path}: still contended after {self.attempts} attempts")
