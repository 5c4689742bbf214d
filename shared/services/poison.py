"""The poison sweep: records each message the host gave up on, and puts them back on request.

Poison messages stay in ``<queue>-poison`` (so ``consortium status`` counts them and
``consortium replay-poison`` can put them back); the sweep only reads them, hiding each for a few
seconds, and records every one it has not seen (by queue and message id) through
``Onboarding.record_poison``, which marks the member failed and announces ``member.failed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from shared.ports.queues import QueueBrowser
from shared.services.onboarding import Action, Onboarding, Outcome

#: Messages read per poison queue per sweep; the rest are recorded by later sweeps.
SWEEP_LIMIT = 320
HIDE_SECONDS = 3


def sweep(queues: QueueBrowser, onboarding: Onboarding, names: Iterable[str]) -> Iterator[tuple[str, Outcome]]:
    """Record what is new in each ``<name>-poison`` queue; yields each queue with what was recorded."""
    for name in names:
        poison = f"{name}-poison"
        if queues.count(poison) == 0:
            continue
        for message in queues.browse(poison, limit=SWEEP_LIMIT, hide_seconds=HIDE_SECONDS):
            outcome = onboarding.record_poison(name, message.content, message.id, message.dequeue_count)
            if outcome.action is not Action.KNOWN:
                yield name, outcome


def replay(
    move: Callable[[str, str], int],
    count: Callable[[str], int],
    names: Iterable[str],
    *,
    patience_seconds: float = 10.0,
    progress: Callable[[str, int], None] = lambda queue, moved: None,
) -> dict[str, int]:
    """Move every message of each ``<name>-poison`` back to ``<name>``; waits out messages the sweep hid."""
    moved: dict[str, int] = {}
    for name in names:
        poison = f"{name}-poison"
        total = 0
        deadline = time.monotonic() + patience_seconds
        while count(poison) > 0 and time.monotonic() < deadline:
            n = move(poison, name)
            total += n
            if n:
                progress(name, total)
                deadline = time.monotonic() + patience_seconds
            else:
                time.sleep(0.5)  # hidden for a moment by a sweep: they come back within HIDE_SECONDS
        if total:
            moved[name] = total
    return moved
