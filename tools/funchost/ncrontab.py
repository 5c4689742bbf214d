"""NCRONTAB schedules as the timer trigger reads them: 6 fields ``sec min hour day month dow`` (or 5).

The arithmetic is croniter's, set to NCrontab's rules (the library the timer extension uses,
``Scheduling/CronSchedule.cs`` in Azure/azure-webjobs-sdk-extensions): the seconds field comes first
(``second_at_beginning``), a 5-field expression has no seconds (minute first, second 0), and when both
day-of-month and day-of-week are restricted an occurrence must match both (``day_or=False``). What
croniter accepts beyond NCrontab (a year field, ``L``, ``W``, ``#``, ``?``, hashed ``H``) is refused here,
so a schedule the host would reject never runs locally: ``*``, numbers, ranges ``a-b``, steps ``*/n`` and
``a-b/n``, lists, English month and day names; day of week 0-6 with 0 = Sunday (7 also Sunday).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import CroniterBadDateError, CroniterError, croniter

#: One field of an NCRONTAB expression: numbers, names, ``*``, ranges, steps and lists, nothing else.
_FIELD = re.compile(r"^(?:\*|[0-9]+|[A-Za-z]{3,})(?:-(?:[0-9]+|[A-Za-z]{3,}))?(?:/[0-9]+)?$")


class ScheduleError(ValueError):
    """The expression is not a valid NCRONTAB schedule; the message names the expression and the rule."""


@dataclass(frozen=True)
class Schedule:
    expression: str

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        fields = expression.split()
        if len(fields) not in (5, 6):
            raise ScheduleError(
                f"the schedule expression {expression!r} was not recognized: "
                "NCRONTAB needs 6 fields (second minute hour day month day-of-week) or 5"
            )
        for field in fields:
            if not all(_FIELD.match(part) for part in field.split(",")):
                raise ScheduleError(f"the schedule expression {expression!r} was not recognized: field {field!r}")
        schedule = cls(" ".join(fields if len(fields) == 6 else ["0", *fields]))
        try:
            croniter(schedule.expression, second_at_beginning=True, day_or=False)
        except CroniterError as e:
            raise ScheduleError(f"the schedule expression {expression!r} was not recognized: {e}") from None
        return schedule

    def next_after(self, after: datetime) -> datetime:
        """The first occurrence strictly after ``after`` (same tzinfo)."""
        try:
            found = croniter(self.expression, after, second_at_beginning=True, day_or=False).get_next(datetime)
        except CroniterBadDateError:
            raise ScheduleError(f"the schedule {self.expression!r} never fires") from None
        return found  # type: ignore[no-any-return]

    def fires_more_than_once_a_minute(self, now: datetime) -> bool:
        """Whether the host would turn the schedule monitor off (sub-minute schedules)."""
        first = self.next_after(now)
        return self.next_after(first) - first < timedelta(minutes=1)
