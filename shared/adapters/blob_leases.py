"""Leases on blobs under ``leases/`` in the consortium container, with a fencing token beside each.

Acquire: make sure the blob exists, take a blob lease (15–60 s, never the SDK's infinite default),
then bump ``fencing_token`` in the blob's metadata with the lease id and If-Match, so each
acquisition gets a token one higher than any before it. Renew extends the lease and records the new
expiry in the metadata for readers (``consortium status``). Losing the lease (409/412 on renew)
raises ``LeaseLostError``.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobLeaseClient, BlobProperties, ContainerClient

from shared.adapters.blob_state import translate
from shared.errors import LeaseLostError, TransientError
from shared.ports.leases import LeaseGrant, LeaseRecord

PREFIX = "leases/"


def _expiry(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


class BlobLeaseStore:
    def __init__(self, container: ContainerClient):
        self.container = container

    def _blob(self, name: str) -> BlobClient:
        return self.container.get_blob_client(PREFIX + name)

    def _ensure_blob(self, blob: BlobClient) -> None:
        try:
            blob.upload_blob(b"", overwrite=False)
        except ResourceExistsError:
            return
        except HttpResponseError as e:
            if e.status_code == 409 or e.status_code == 412:  # exists and leased
                return
            if e.status_code == 404:
                with contextlib.suppress(ResourceExistsError):
                    self.container.create_container()
                with contextlib.suppress(ResourceExistsError, HttpResponseError):
                    blob.upload_blob(b"", overwrite=False)
                return
            raise translate(e, f"create lease blob {blob.blob_name}") from e

    def try_acquire(self, name: str, holder: str, duration_seconds: int) -> LeaseGrant | None:
        if not 15 <= duration_seconds <= 60:
            raise ValueError(f"lease duration {duration_seconds} s must be within 15..60 (blob leases)")
        blob = self._blob(name)
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError:
            self._ensure_blob(blob)
            props = blob.get_blob_properties()
        except Exception as e:
            raise translate(e, f"read lease {name}") from e
        if props.lease.state == "leased":
            return None
        lease = BlobLeaseClient(blob)
        try:
            lease.acquire(lease_duration=duration_seconds)
        except HttpResponseError as e:
            if e.status_code == 409:
                return None  # someone else took it between our read and our acquire
            raise translate(e, f"acquire lease {name}") from e
        try:
            props = blob.get_blob_properties(lease=lease)
            token = int(props.metadata.get("fencing_token", "0")) + 1
            blob.set_blob_metadata(
                {"fencing_token": str(token), "holder": holder, "expires_at": _expiry(duration_seconds)},
                lease=lease,
                etag=props.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except Exception as e:
            with contextlib.suppress(Exception):
                lease.release()
            raise TransientError(f"lease {name}: acquired but could not record the fencing token: {e}") from e
        return LeaseGrant(name, str(lease.id), holder, token, duration_seconds)

    def renew(self, grant: LeaseGrant) -> None:
        blob = self._blob(grant.name)
        lease = BlobLeaseClient(blob, lease_id=grant.lease_id)
        try:
            lease.renew()
        except HttpResponseError as e:
            if e.status_code in (404, 409, 412):
                raise LeaseLostError(f"lease {grant.name} lost: {e.status_code} {e.reason}") from e
            raise translate(e, f"renew lease {grant.name}") from e
        except Exception as e:
            raise translate(e, f"renew lease {grant.name}") from e
        with contextlib.suppress(Exception):  # the expiry is for readers only
            blob.set_blob_metadata(
                {
                    "fencing_token": str(grant.fencing_token),
                    "holder": grant.holder,
                    "expires_at": _expiry(grant.duration_seconds),
                },
                lease=lease,
            )

    def release(self, grant: LeaseGrant) -> None:
        lease = BlobLeaseClient(self._blob(grant.name), lease_id=grant.lease_id)
        with contextlib.suppress(HttpResponseError):  # already expired or taken: nothing to give up
            lease.release()

    def read(self, name: str) -> LeaseRecord:
        try:
            props = self._blob(name).get_blob_properties()
        except ResourceNotFoundError:
            return LeaseRecord(name, None, 0, None, False)
        except Exception as e:
            raise translate(e, f"read lease {name}") from e
        return _record(name, props)

    def records(self) -> list[LeaseRecord]:
        try:
            listed = list(self.container.list_blobs(name_starts_with=PREFIX, include=["metadata"]))
        except ResourceNotFoundError:
            return []
        except Exception as e:
            raise translate(e, "list leases") from e
        return sorted((_record(b.name.removeprefix(PREFIX), b) for b in listed), key=lambda r: r.name)


def _record(name: str, props: BlobProperties) -> LeaseRecord:
    meta = props.metadata or {}
    expires = meta.get("expires_at")
    return LeaseRecord(
        name=name,
        holder=meta.get("holder"),
        fencing_token=int(meta.get("fencing_token", "0")),
        expires_at=datetime.fromisoformat(expires) if expires else None,
        leased=props.lease.state == "leased",
    )
