"""An identity's blob lease, taken by the keeper on a Corda VM.

The layout is the control plane's own (``shared/adapters/blob_leases.py``): the blob ``leases/{identity}``
in the member's ``identity-leases`` container, its metadata ``fencing_token`` (one higher at every
acquisition, written with the lease id and If-Match right after acquiring), ``holder`` and ``expires_at``
(for readers). So the control plane reads who runs which identity with its own lease reader. The node
agent cannot import the control plane's adapters (its code ships to the VMs alone), hence this copy of the
protocol, which ``tests/ledger/test_keeper.py`` reads back through the control plane's reader.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

PREFIX = "leases/"


class LeaseLost(RuntimeError):
    """The lease is no longer ours (taken, broken or expired): the node must already be down."""


class StorageUnavailable(RuntimeError):
    """The storage account could not be reached now; the tenure's clock keeps running."""


@dataclass(frozen=True)
class Grant:
    identity: str
    lease_id: str
    holder: str
    token: int
    seconds: int


def client_options(call_timeout: float) -> dict[str, Any]:
    """Options for the lease's ``ContainerClient``: one storage call ends within ``call_timeout`` seconds
    (no retries: the keeper retries on its own clock, which the stop deadline is measured on)."""
    return {"connection_timeout": call_timeout * 0.4, "read_timeout": call_timeout * 0.6, "retry_total": 0}


def _expiry(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


class IdentityLease:
    """Acquire, renew and release ``leases/{identity}`` through a ``ContainerClient``."""

    def __init__(self, container: Any, identity: str, holder: str, seconds: int):
        if not 15 <= seconds <= 60:
            raise ValueError(f"lease of {seconds} s: blob leases last 15 to 60 s")
        self.container, self.identity, self.holder, self.seconds = container, identity, holder, seconds

    def _blob(self) -> Any:
        return self.container.get_blob_client(PREFIX + self.identity)

    def try_acquire(self) -> Grant | None:
        """The lease with a new fencing token, or None while another instance holds it."""
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
        from azure.storage.blob import BlobLeaseClient

        blob = self._blob()
        try:
            try:
                props = blob.get_blob_properties()
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    blob.upload_blob(b"", overwrite=False)
                props = blob.get_blob_properties()
            if props.lease.state == "leased":
                return None
            lease = BlobLeaseClient(blob)
            try:
                lease.acquire(lease_duration=self.seconds)
            except HttpResponseError as error:
                if error.status_code == 409:
                    return None  # taken between the read and the acquire
                raise
            try:
                props = blob.get_blob_properties(lease=lease)
                token = int((props.metadata or {}).get("fencing_token", "0")) + 1
                blob.set_blob_metadata(
                    {"fencing_token": str(token), "holder": self.holder, "expires_at": _expiry(self.seconds)},
                    lease=lease,
                    etag=props.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except AzureError:
                with contextlib.suppress(AzureError):
                    lease.release()
                raise
        except AzureError as error:
            first = (str(error).splitlines() or [""])[0]
            raise StorageUnavailable(f"lease {self.identity}: {type(error).__name__}: {first}") from error
        return Grant(self.identity, str(lease.id), self.holder, token, self.seconds)

    def renew(self, grant: Grant) -> None:
        """Extend the lease; ``LeaseLost`` when it is not ours any more, ``StorageUnavailable`` otherwise."""
        from azure.core.exceptions import AzureError, HttpResponseError
        from azure.storage.blob import BlobLeaseClient

        blob = self._blob()
        lease = BlobLeaseClient(blob, lease_id=grant.lease_id)
        try:
            lease.renew()
        except HttpResponseError as error:
            if error.status_code in (404, 409, 412):
                raise LeaseLost(f"lease {grant.identity} (token {grant.token}) lost: {error.status_code}") from error
            raise StorageUnavailable(f"renew lease {grant.identity}: {error.status_code} {error.reason}") from error
        except AzureError as error:
            raise StorageUnavailable(f"renew lease {grant.identity}: {type(error).__name__}") from error
        with contextlib.suppress(AzureError):  # the expiry is for readers only
            blob.set_blob_metadata(
                {"fencing_token": str(grant.token), "holder": grant.holder, "expires_at": _expiry(grant.seconds)},
                lease=lease,
            )

    def release(self, grant: Grant) -> None:
        """Give the lease up at once, so a standby need not wait for it to expire (harmless if gone)."""
        from azure.core.exceptions import AzureError
        from azure.storage.blob import BlobLeaseClient

        with contextlib.suppress(AzureError):
            BlobLeaseClient(self._blob(), lease_id=grant.lease_id).release()
