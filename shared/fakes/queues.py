"""In-memory queues: what was sent, in order, with its delay; tests deliver the messages themselves."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sent:
    queue: str
    body: str
    visible_after_seconds: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeQueues:
    sent: list[Sent] = field(default_factory=list)

    def send(self, queue: str, body: str, *, visible_after_seconds: int = 0) -> None:
        self.sent.append(Sent(queue, body, visible_after_seconds))

    def count(self, queue: str) -> int:
        return sum(1 for s in self.sent if s.queue == queue)

    def take(self, queue: str | None = None) -> list[Sent]:
        """Remove and return what was sent (to ``queue``, or everywhere)."""
        taken = [s for s in self.sent if queue is None or s.queue == queue]
        self.sent = [s for s in self.sent if not (queue is None or s.queue == queue)]
        return taken

    def events(self) -> list[dict[str, Any]]:
        return [s.json() for s in self.sent if s.queue == "member-events"]
