"""NCRONTAB schedules as the timer trigger reads them: 6 fields ``sec min hour day month dow`` (or 5).

Follows the NCrontab library the host uses: ``*``, numbers, ranges ``a-b``, steps ``*/n`` and
``a-b/n``, lists, English month and day names; day of week 0-6 with 0 = Sunday (7 also Sunday).
When both day-of-month and day-of-week are restricted, NCrontab requires both to match.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

MONTHS = {
    m: i
    for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)
}
DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


class ScheduleError(ValueError):
    """The expression is not a valid NCRONTAB schedule; the message names the field and the rule."""


def _parse_field(text: str, name: str, low: int, high: int, names: dict[str, int] | None) -> frozenset[int]:
    values: set[int] = set()

    def number(token: str) -> int:
        key = token.lower()
        if names and key[:3] in names and key.isalpha():
            return names[key[:3]]
        if not token.isdigit():
            raise ScheduleError(f"{name} field {text!r}: {token!r} is not a number")
        return int(token)

    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{name} field {text!r}: step must be a positive whole number")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = number(a), number(b)
        else:
            start = number(part)
            end = high if step != 1 else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ScheduleError(f"{name} field {text!r}: values must lie in {low}-{high}")
        values.update(range(start, end + 1, step))
    if name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        fields = expression.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise ScheduleError(
                f"the schedule expression {expression!r} was not recognized: "
                "NCRONTAB needs 6 fields (second minute hour day month day-of-week) or 5"
            )
        return cls(
            expression,
            _parse_field(fields[0], "second", 0, 59, None),
            _parse_field(fields[1], "minute", 0, 59, None),
            _parse_field(fields[2], "hour", 0, 23, None),
            _parse_field(fields[3], "day", 1, 31, None),
            _parse_field(fields[4], "month", 1, 12, MONTHS),
            _parse_field(fields[5], "day-of-week", 0, 7, DAYS),
        )

    def _day_matches(self, day: datetime) -> bool:
        weekday = (day.weekday() + 1) % 7  # Python: Monday=0; NCRONTAB: Sunday=0
        return day.month in self.months and day.day in self.days and weekday in self.weekdays

    def next_after(self, after: datetime) -> datetime:
        """The first occurrence strictly after ``after`` (same tzinfo)."""
        start = after.replace(microsecond=0) + timedelta(seconds=1)
        day = start.replace(hour=0, minute=0, second=0)
        for _ in range(366 * 8):  # enough for any valid schedule, including 29 February
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        base = day.replace(hour=hour, minute=minute)
                        if base + timedelta(seconds=59) < start:
                            continue
                        for second in sorted(self.seconds):
                            candidate = base.replace(second=second)
                            if candidate >= start:
                                return candidate
            day += timedelta(days=1)
        raise ScheduleError(f"the schedule {self.expression!r} never fires")

    def fires_more_than_once_a_minute(self, now: datetime) -> bool:
        """Whether the host would turn the schedule monitor off (§2.2: sub-minute schedules)."""
        first = self.next_after(now)
        return self.next_after(first) - first < timedelta(minutes=1)
