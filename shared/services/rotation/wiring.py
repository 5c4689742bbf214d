"""What the key rotator's parts share: this member's id, its stores, its events and its fence.

The parts read the stores from this one object at each call, never from a copy of their own, so a
store the front is handed anew (``KeyRotator.state = ...``, as the crash tests do) is the store every
part uses from then on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.errors import FencedError
from shared.ports.clock import Clock
from shared.ports.keys import KeyStore
from shared.ports.leases import LeaseStore
from shared.ports.state import StateStore
from shared.services.consortium import Consortium
from shared.services.leadership import COORDINATOR, FencedWriter
from shared.services.records import Events


@dataclass
class Wiring:
    member_id: str
    state: StateStore
    keys: KeyStore
    leases: LeaseStore
    clock: Clock
    #: This member's part in the consortium: its verified chain, its proposals, its published container.
    consortium: Consortium
    events: Events
    #: Writes of the coordinator's own documents (run records, the keys document's state), fenced.
    fenced: FencedWriter

    def read(self, path: str) -> dict[str, Any] | None:
        doc = self.state.read(path)
        return doc.body if doc else None

    def fence(self, token: int) -> None:
        """Refuse to go on once a newer coordinator's token exists."""
        current = self.leases.read(COORDINATOR).fencing_token
        if current > token:
            raise FencedError(f"key rotation with fencing token {token} refused: token {current} is newer")
