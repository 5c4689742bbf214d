"""The two kinds of failure the control plane knows, translated at the adapter edge.

Every error that leaves an adapter is one of these, so handlers need one rule: a transient error
raises (the host retries the message and finally poisons it), a permanent one is recorded with its
reason and the message completes. ``ConflictError`` is the optimistic-concurrency signal (a lost
ETag race, a create-only write that found the thing already there): callers re-read and re-decide.
"""

from __future__ import annotations

from shared.reasons import Reason


class ControlPlaneError(Exception):
    """Base of every error the core raises on purpose."""


class TransientError(ControlPlaneError):
    """Worth retrying: throttling (429), server errors (5xx), timeouts, connection resets.

    ``retry_after`` carries the service's Retry-After in seconds when it sent one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ControlPlaneError):
    """Will fail the same way every time: bad input, a forbidden operation, a missing resource.

    ``reason`` is a short stable code (for example ``schema``, ``signature``, ``not_found``) that
    operators see in ``consortium rejections`` and that metrics count by.
    """

    def __init__(self, message: str, *, reason: str = Reason.PERMANENT) -> None:
        super().__init__(message)
        self.reason = reason


class ConflictError(ControlPlaneError):
    """An ETag precondition failed or a create-only write found an existing item: re-read, re-decide."""


class NotFoundError(PermanentError):
    """The addressed thing does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=Reason.NOT_FOUND)


class ForbiddenError(PermanentError):
    """The service refused the caller (403): its identity has no role for this action on this scope
    (another member's vault or scale set), or the key version is disabled. ``refusal`` carries the
    service's own code and message, which name the action and the scope."""

    def __init__(self, what: str, refusal: str) -> None:
        super().__init__(f"{what}: forbidden ({refusal})", reason=Reason.FORBIDDEN)
        self.refusal = refusal


class LeaseLostError(TransientError):
    """A lease this process held is gone (expired, broken or taken): stop the work it guarded."""


class FencedError(PermanentError):
    """A write carried an older fencing token than one already seen: a newer holder exists."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason=Reason.FENCED)


class BusyError(TransientError):
    """Someone else holds the per-member lease: try again later (the queue redelivers)."""
