"""Waiting for a condition, never for a fixed time: the one wait-until helper of the tools, the benches
and the tests that drive the local stack.

``wait_until`` asks ``check`` again and again until it returns something true, which it returns; past
the timeout it raises ``WaitTimeout`` (a ``TimeoutError``) or the caller's own error type, saying what
was awaited, the last error seen and, when asked, what the caller sees instead. Errors listed in
``ignoring`` count as "not yet" (storage restarting under chaos, a host restarting under the demo);
any other error propagates at once (a host process that died while awaited). ``between`` runs after
each miss, before the pause (a tick of in-process deployments, which only move when ticked).

``retrying`` is its twin for actions: call until the call does not raise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A condition did not come true within its timeout; the message says which and what was seen."""


def wait_until(
    what: str,
    check: Callable[[], T | None],
    timeout: float = 60.0,
    *,
    every: float = 0.5,
    ignoring: tuple[type[BaseException], ...] = (),
    seen: Callable[[], str] | None = None,
    between: Callable[[], object] | None = None,
    error: Callable[[str], Exception] = WaitTimeout,
) -> T:
    """``check()``'s first true value, asked every ``every`` seconds; ``error`` after ``timeout`` seconds."""
    deadline, last_error = time.monotonic() + timeout, ""
    while True:
        try:
            value = check()
            if value:
                return value
        except ignoring as e:
            last_error = f"{type(e).__name__}: {e}" if not str(e) else str(e)
        if time.monotonic() > deadline:
            detail = seen() if seen is not None else last_error
            raise error(
                f"waited {timeout:.0f} s for {what}; it did not happen" + (f"\n  seen: {detail}" if detail else "")
            )
        if between is not None:
            between()
        time.sleep(every)


def retrying(action: Callable[[], T], timeout: float = 30.0, every: float = 0.5) -> T:
    """``action()``'s result once it does not raise (a storm or an outage may be under way); its last
    error after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(every)
