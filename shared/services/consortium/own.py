"""This member's own consortium state document (``consortium/self.json``), read once per tick.

Every part that changes what this member says (proposals, decisions, pre-signatures, its agreement
record, its final signature, the head's sequence number) changes it through ``update``: an ETag-guarded
read-modify-write that re-reads and re-decides on a lost race.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import ConflictError, TransientError
from shared.ports.state import StateStore
from shared.services.consortium.paths import SELF


@dataclass
class OwnState:
    state: StateStore
    #: The document as read this tick (None outside a tick, or before the first read): writes through
    #: ``update`` keep it current, so a tick never reads its own writes stale; another instance's
    #: writes are seen by the next tick.
    snapshot: dict[str, Any] | None = None
    ticking: bool = False

    def begin(self) -> None:
        self.snapshot, self.ticking = None, True

    def end(self) -> None:
        self.snapshot, self.ticking = None, False

    def read(self) -> dict[str, Any]:
        """This member's consortium state; never mutate it."""
        snapshot = self.snapshot
        if self.ticking and snapshot is not None:
            return snapshot
        doc = self.state.read(SELF)
        body = doc.body if doc else {}
        if self.ticking:
            self.snapshot = body
        return body

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        for _ in range(10):
            doc = self.state.read(SELF)
            body = change(json.loads(json.dumps(doc.body)) if doc else {})
            if body is None:
                return doc.body if doc else {}
            try:
                if doc is None:
                    self.state.create(SELF, body)
                else:
                    self.state.replace(SELF, body, doc.etag)
                if self.ticking:  # a tick on another thread may end meanwhile: then nothing is kept
                    self.snapshot = body
                return body
            except ConflictError:
                continue
        raise TransientError("consortium state kept changing under this deployment")
