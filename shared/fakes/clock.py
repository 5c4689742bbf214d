"""A clock the test moves by hand.

By default it starts on a fixed day, so a test on the fakes alone never depends on the day it runs.
A test whose fakes' state is later read by code on the system clock (the CLI, a host, an agent)
starts it with :meth:`FakeClock.starting_now` instead, so both clocks tell the same day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    def __init__(self, start: datetime | None = None):
        self.current = start or datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

    @classmethod
    def starting_now(cls) -> FakeClock:
        """A fake clock set to the system clock's current second."""
        return cls(datetime.now(UTC).replace(microsecond=0))

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
