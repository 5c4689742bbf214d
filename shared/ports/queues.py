"""Outgoing queue messages: the next step of a workflow, events for downstream consumers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class MessageSender(Protocol):
    def send(self, queue: str, body: str, *, visible_after_seconds: int = 0) -> None:
        """Post ``body`` (UTF-8 JSON text, no base64) to ``queue``, visible after the given delay."""
        ...


@dataclass(frozen=True)
class QueuedMessage:
    id: str
    content: str
    dequeue_count: int


class QueueBrowser(Protocol):
    def browse(self, queue: str, *, limit: int, hide_seconds: int) -> list[QueuedMessage]:
        """Up to ``limit`` messages of ``queue``, left in place (hidden ``hide_seconds``, then visible again)."""
        ...

    def count(self, queue: str) -> int: ...
