"""In-process announcements: a service publishes what happened, the composition root decides who hears.

The consortium service announces a version it adopted and the chain it follows after each tick; the
membership sync (and the key rotator) listen. Neither side imports the other: ``shared/bootstrap.py``
(and each test world) subscribes the handlers. Handlers run synchronously, in the order subscribed,
inside the publisher's step: what they raise is the publisher's to handle, as a call would be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

E = TypeVar("E")


class Bus:
    def __init__(self) -> None:
        self._handlers: dict[type[Any], list[Callable[[Any], None]]] = {}

    def subscribe(self, kind: type[E], handler: Callable[[E], None]) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def publish(self, event: object) -> None:
        for handler in self._handlers.get(type(event), []):
            handler(event)
