"""An in-memory LeaseStore with blob-lease rules and a clock the test controls."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.errors import LeaseLostError
from shared.ports.leases import LeaseGrant, LeaseRecord


@dataclass
class _Lease:
    holder: str | None = None
    lease_id: str | None = None
    expires_at: datetime | None = None
    fencing_token: int = 0


class FakeLeaseStore:
    def __init__(self, now: Callable[[], datetime]):
        self.now = now
        self.leases: dict[str, _Lease] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _held(self, lease: _Lease) -> bool:
        return lease.lease_id is not None and lease.expires_at is not None and self.now() < lease.expires_at

    def try_acquire(self, name: str, holder: str, duration_seconds: int) -> LeaseGrant | None:
        if not 15 <= duration_seconds <= 60:
            raise ValueError(f"lease duration {duration_seconds} s must be within 15..60 (blob leases)")
        with self._lock:
            lease = self.leases.setdefault(name, _Lease())
            if self._held(lease):
                return None
            lease.lease_id = f"lease-{next(self._ids)}"
            lease.holder = holder
            lease.expires_at = self.now() + timedelta(seconds=duration_seconds)
            lease.fencing_token += 1
            return LeaseGrant(name, lease.lease_id, holder, lease.fencing_token, duration_seconds)

    def renew(self, grant: LeaseGrant) -> None:
        with self._lock:
            lease = self.leases.get(grant.name)
            # A blob lease can be renewed after expiry only if nobody took it since (same lease id).
            if lease is None or lease.lease_id != grant.lease_id:
                raise LeaseLostError(f"lease {grant.name} lost")
            lease.expires_at = self.now() + timedelta(seconds=grant.duration_seconds)

    def release(self, grant: LeaseGrant) -> None:
        with self._lock:
            lease = self.leases.get(grant.name)
            if lease is not None and lease.lease_id == grant.lease_id:
                lease.lease_id, lease.expires_at = None, None

    def break_lease(self, name: str) -> None:
        """What an operator's ``az storage blob lease break`` does: the holder loses it at once."""
        with self._lock:
            lease = self.leases.get(name)
            if lease is not None:
                lease.lease_id, lease.expires_at = None, None

    def read(self, name: str) -> LeaseRecord:
        with self._lock:
            lease = self.leases.get(name, _Lease())
            held = self._held(lease)
            return LeaseRecord(name, lease.holder, lease.fencing_token, lease.expires_at, held)

    def records(self) -> list[LeaseRecord]:
        return [self.read(name) for name in sorted(self.leases)]
