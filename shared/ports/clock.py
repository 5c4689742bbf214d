"""Time as an input: services take a Clock so tests can travel through ages, windows and leases."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Protocol

#: Test-only: the chaos suite (tests/chaos, tools/chaos.py) starts host instances whose clocks are this
#: many seconds off, to show that nothing depends on instances agreeing on the time. Azure never sets
#: it, so it is not a setting (not in shared/settings.py); unset, the clock is the wall clock.
SKEW_VARIABLE = "CONSORTIUM_CLOCK_SKEW_SECONDS"


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The wall clock, in UTC (plus the test-only skew of ``CONSORTIUM_CLOCK_SKEW_SECONDS``, if set)."""

    def __init__(self) -> None:
        self.skew = timedelta(seconds=float(os.environ.get(SKEW_VARIABLE) or 0))

    def now(self) -> datetime:
        return datetime.now(UTC) + self.skew
