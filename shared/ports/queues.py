"""Outgoing queue messages: the next step of a workflow, events for downstream consumers."""

from __future__ import annotations

from typing import Protocol


class MessageSender(Protocol):
    def send(self, queue: str, body: str, *, visible_after_seconds: int = 0) -> None:
        """Post ``body`` (UTF-8 JSON text, no base64) to ``queue``, visible after the given delay."""
        ...
