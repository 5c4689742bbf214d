"""The member's node-info inbox in memory: the tests offer files as the nodes' agents would, at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared.decisions.node_infos import InboxBlob
from shared.errors import PermanentError, TransientError
from shared.reasons import Reason


@dataclass
class FakeInbox:
    #: name -> (bytes, Last-Modified)
    blobs: dict[str, tuple[bytes, datetime]] = field(default_factory=dict)
    down: bool = False
    reads: int = 0

    def offer(self, name: str, data: bytes, at: datetime) -> None:
        """What an agent's upload or refresh does: the blob, modified at ``at``."""
        self.blobs[name] = (self.blobs.get(name, (data, at))[0], at)

    def list(self) -> list[InboxBlob]:
        if self.down:
            raise TransientError("list node-infos-inbox: storage unreachable")
        return [InboxBlob(name, len(data), at) for name, (data, at) in sorted(self.blobs.items())]

    def get(self, name: str, *, limit: int) -> bytes | None:
        self.reads += 1
        found = self.blobs.get(name)
        if found is not None and len(found[0]) > limit:
            raise PermanentError(f"node-infos-inbox/{name}: more than {limit} bytes", reason=Reason.OVERSIZE)
        return found[0] if found else None

    def delete(self, name: str) -> None:
        self.blobs.pop(name, None)
