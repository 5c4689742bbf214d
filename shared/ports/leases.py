"""Blob leases with fencing tokens: who holds a role, and since which acquisition.

A lease says who may act; a fencing token says *which* acquisition a write comes from. Every
acquisition bumps the token stored beside the lease, and state owned by the holder is written with
its token, so a holder that was paused past its lease (and so lost it) cannot overwrite the work of
the one that took over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class LeaseGrant:
    """A lease this process holds."""

    name: str
    lease_id: str
    holder: str
    fencing_token: int
    duration_seconds: int


@dataclass(frozen=True)
class LeaseRecord:
    """What anyone can read about a lease: who holds it, with which token, until when (as last renewed)."""

    name: str
    holder: str | None
    fencing_token: int
    expires_at: datetime | None
    leased: bool


class LeaseStore(Protocol):
    def try_acquire(self, name: str, holder: str, duration_seconds: int) -> LeaseGrant | None:
        """Take the lease if it is free (bumping its fencing token); None when someone holds it."""
        ...

    def renew(self, grant: LeaseGrant) -> None:
        """Extend the lease; raises ``LeaseLostError`` when it is no longer ours."""
        ...

    def release(self, grant: LeaseGrant) -> None:
        """Give the lease up (harmless if it is already gone)."""
        ...

    def read(self, name: str) -> LeaseRecord:
        """The current record (holder None and token 0 when it was never taken)."""
        ...

    def records(self) -> list[LeaseRecord]:
        """Every lease's record, by name (one listing; none when the store does not exist yet)."""
        ...
