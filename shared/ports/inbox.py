"""The member's private ``node-infos-inbox``: where its own nodes offer their ``NodeInfo`` files.

Each node's agent writes there (``nodeagent.inbox``); the control plane lists it, reads what it has
not published yet, and removes what is no longer current (``NodeInfoPublisher``). It speaks listings
and bytes: nothing in it is trusted before ``node_infos.check_offered``.
"""

from __future__ import annotations

from typing import Protocol

from shared.decisions.node_infos import InboxBlob


class NodeInfoInbox(Protocol):
    def list(self) -> list[InboxBlob]:
        """Every blob with its size and Last-Modified, in one listing (``TransientError`` when unreadable)."""
        ...

    def get(self, name: str, *, limit: int) -> bytes | None:
        """The blob's bytes (``None``: gone since listed); more than ``limit`` is ``PermanentError``."""
        ...

    def delete(self, name: str) -> None:
        """Remove the blob (nothing if it is gone already)."""
        ...
