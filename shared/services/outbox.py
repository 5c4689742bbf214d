"""Messages a step hands to its function's queue output binding instead of sending them itself.

A step ends by posting the next step. Sent with the SDK, that message waits for the next step's
queue listener to poll again, which an idle listener does only every ``maxPollingInterval`` (2 s
here, a minute by default): five hops of an onboarding spent seconds waiting. A message written
through a queue *output binding* is sent by the host when the function returns, and the host then
tells that queue's listener to poll at once (the queue extension's ``SharedQueueWatcher``; the local
host does the same). So a function collects what its step posts (``collecting``), and hands the
messages for its bound queue to the binding; anything else, and every delayed message (an output
binding cannot delay one), is sent with the SDK as before.

Outside ``collecting`` (the CLI, tests on the service, other triggers) ``offer`` declines and the
caller sends as usual. Delivery is unchanged: the host sends the outputs before it completes the
trigger message, so a crash in between redelivers the step, which finds its effect and posts again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_box: ContextVar[list[tuple[str, str]] | None] = ContextVar("outbox", default=None)


@contextmanager
def collecting() -> Iterator[list[tuple[str, str]]]:
    """Collect ``(queue, body)`` of every message offered inside the block."""
    box: list[tuple[str, str]] = []
    token = _box.set(box)
    try:
        yield box
    finally:
        _box.reset(token)


def offer(queue: str, body: str) -> bool:
    """Leave a message for the function's output binding; False when no function is collecting."""
    box = _box.get()
    if box is None:
        return False
    box.append((queue, body))
    return True
