"""What a member publishes for the others, and how it reads what they publish.

``PublicStore`` is the member's own ``consortium-public`` container: only this member writes it.
``PeerReader`` reads another member's ``consortium-public`` container with a read-only credential
scoped to that container (a read-only SAS locally; the app's identity with Storage Blob Data
Reader on that container in Azure), with a conditional request: an unchanged blob costs one
request and no download. Both speak bytes: what is read is untrusted until it verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Fetched:
    """A blob as read: its bytes (``None`` when unchanged since ``etag`` was given) and its ETag."""

    data: bytes | None
    etag: str


class PublicStore(Protocol):
    def put(self, path: str, data: bytes) -> None:
        """Write (or overwrite) one blob of this member's published container."""
        ...

    def get(self, path: str) -> bytes | None: ...


class PeerReader(Protocol):
    def introduced(self) -> dict[str, str]:
        """Deployments this member was introduced to out of band (member id -> endpoint of its
        published container): applicants it has not admitted yet, and where to read the chain first."""
        ...

    def fetch(self, endpoint: str, path: str, *, etag: str | None = None, limit: int) -> Fetched | None:
        """``path`` in the container at ``endpoint``; ``None`` when absent; ``Fetched(None, etag)`` when
        unchanged since ``etag``. More than ``limit`` bytes is refused unread (``PermanentError``)."""
        ...
