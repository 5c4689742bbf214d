"""The state store: JSON documents addressed by path, written create-only or with ETags.

Backed by the ``consortium`` blob container in Azure (and Azurite locally). Every write is either
create-only (If-None-Match: *) or conditional on the ETag the caller read (If-Match), so a lost race
raises ``ConflictError`` and the caller re-reads and re-decides instead of overwriting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Document:
    """A JSON document as stored, with the ETag to make the next write conditional on."""

    path: str
    body: dict[str, Any]
    etag: str


class StateStore(Protocol):
    def read(self, path: str) -> Document | None:
        """The document at ``path``, or None when there is none."""
        ...

    def create(self, path: str, body: dict[str, Any]) -> Document:
        """Write a new document; ``ConflictError`` when one is already there."""
        ...

    def replace(self, path: str, body: dict[str, Any], etag: str) -> Document:
        """Overwrite the document read with ``etag``; ``ConflictError`` when it changed since."""
        ...

    def list_paths(self, prefix: str) -> list[str]:
        """Paths under ``prefix``, sorted."""
        ...

    def read_all(self, prefix: str) -> list[Document]:
        """Every document under ``prefix``, sorted by path, as of one listing.

        The blob store lists the names with their ETags and downloads only the documents whose ETag
        changed since it last read them (a timer that reads every member record each tick pays one
        listing, not a download per member). Bodies are the caller's to change.
        """
        ...
