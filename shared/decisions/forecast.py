"""The member's own load by time of day, kept compactly, and what it forecasts: pure, like the policy.

Why: load on a consortium's nodes comes back every working day (the banks open, settle, close).
A reactive policy sees a rise a minute late and its nodes serve a boot delay after that; a forecast
from past days can start them a boot delay ahead. The idea is Azure predictive autoscale's for scale
sets (it forecasts from past days, needs 7 days of history, scales out only, has a forecast-only
mode); the forecaster here is deliberately simple enough to explain in a status line:

- **Profile.** Each day kind (Monday to Friday, Saturday and Sunday; UTC) has ``BINS_PER_DAY`` bins
  of ``BIN_MINUTES``; each bin keeps the mean transactions per minute of its last ``DAYS_KEPT``
  days of that kind, oldest first (at most 2 × 96 × 3 integers per scale set). The bin being filled
  is carried as (its start, sum, count) and folded in when the next bin begins. A mean, not a peak:
  the forecast positions the nodes a rise needs, the reactive policy still covers the minute's noise
  above it (sizing every bin for its peak cost 4% more node-minutes on the weekly trace).
- **Forecast.** The load at a time is the median of its bin's kept means (the upper median of two),
  so one day that breaks the pattern (a holiday, an outage) does not move tomorrow's forecast.
  A forecast over an interval is the highest bin it touches; a bin with nothing kept has no forecast.
- **Nodes.** A forecast in transactions is turned into nodes with the set's own transactions per
  node at target, learned from the ticks (the CPU target often binds before the transactions one).
- **Error.** Each complete minute is compared with what the profile forecast for it before it was
  folded in: how far, in nodes, it fell outside the forecasts of its own bin and the two beside it
  (a rise that comes a quarter of an hour early or late is the pattern, not an error; a working
  day with a holiday's load is one), averaged over ``error_seconds`` (exponentially, by time, so
  ticks every 10 s or every minute weigh the same), beside the load it is judged against.
- **Trust.** A forecast is used only with ``history_seconds`` of profile (7 days, as Azure asks) and
  while the averaged error is within ``max_error`` of the averaged load; otherwise the policy is
  reactive. The error is tracked whatever the mode, so trust returns once the forecast is right again.

Nothing here reads a clock: time is passed in, and the profile goes in and comes out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

#: Transactions per minute per node below which a minute teaches nothing about what a node carries.
MIN_TPM_PER_NODE = 1.0
BIN_MINUTES = 15
BINS_PER_DAY = 24 * 60 // BIN_MINUTES
DAYS_KEPT = 3
WEEKDAY, WEEKEND = "weekday", "weekend"
KINDS = (WEEKDAY, WEEKEND)


class Mode(StrEnum):
    OFF = "off"  # reactive only; no profile kept
    FORECAST = "forecast"  # profile kept and forecast recorded with what it would have done; reactive acts
    ON = "on"  # scale out ahead of a rise the trusted forecast predicts


class Standing(StrEnum):
    """Why the forecast is or is not used this tick."""

    TRUSTED = "trusted"  # enough history and right lately
    HISTORY_TOO_SHORT = "history_too_short"  # the profile covers less than history_seconds
    NO_HISTORY_HERE = "no_history_here"  # a bin of the horizon has nothing kept (a gap in past days)
    WRONG_LATELY = "wrong_lately"  # averaged error above max_error of the load: reactive until right again
    OFF = "off"  # AUTOSCALE_PREDICTIVE=off


@dataclass(frozen=True)
class ForecastPolicy:
    mode: Mode = Mode.ON
    #: Profile needed before a forecast is used (Azure predictive autoscale asks for 7 days).
    history_seconds: float = 7 * 86_400.0
    #: How far past the boot delay the forecast looks: nodes must serve before the rise, not at it.
    margin_seconds: float = 180.0
    #: Averaged absolute error, as a share of the averaged load, above which the forecast is not used.
    max_error: float = 0.25
    #: Time constant of the averaged error and load.
    error_seconds: float = 1800.0

    def __post_init__(self) -> None:
        if self.history_seconds < 0 or self.margin_seconds < 0 or self.error_seconds <= 0:
            raise ValueError(
                f"history_seconds={self.history_seconds}, margin_seconds={self.margin_seconds} must not be "
                f"negative and error_seconds={self.error_seconds} must be positive"
            )
        if self.max_error <= 0:
            raise ValueError(f"max_error={self.max_error} must be positive")


def kind_of(at: datetime) -> str:
    return WEEKEND if at.weekday() >= 5 else WEEKDAY


def bin_of(at: datetime) -> int:
    return (at.hour * 60 + at.minute) // BIN_MINUTES


def bin_start(at: datetime) -> datetime:
    return at.replace(minute=at.minute - at.minute % BIN_MINUTES, second=0, microsecond=0)


def _median(values: tuple[int, ...]) -> float | None:
    return float(sorted(values)[len(values) // 2]) if values else None


def _empty() -> dict[str, tuple[tuple[int, ...], ...]]:
    return {k: ((),) * BINS_PER_DAY for k in KINDS}


@dataclass(frozen=True)
class Profile:
    """Per scale set, persisted: past means by day kind and bin, the bin being filled, the averaged error."""

    #: When the profile first saw load (history_seconds is counted from here).
    since: datetime | None = None
    bins: dict[str, tuple[tuple[int, ...], ...]] | None = None
    #: Start of the bin being filled, the sum and count of its minutes (tpm), and the newest minute folded.
    open_at: datetime | None = None
    open_sum: float = 0.0
    open_count: int = 0
    last_at: datetime | None = None
    #: Averaged absolute error (nodes) and load (nodes) of the forecast, and when last updated.
    error: float | None = None
    load: float | None = None
    judged_at: datetime | None = None
    #: Transactions per minute one node carries at the policy's target, learned from the ticks.
    tpm_per_node: float | None = None

    def kept(self, at: datetime) -> tuple[int, ...]:
        return (self.bins or _empty())[kind_of(at)][bin_of(at)]

    def tpm_at(self, at: datetime) -> float | None:
        """The forecast load (tpm) at ``at``: the median of its bin's kept means; None with nothing kept."""
        return _median(self.kept(at))

    def tpm_over(self, start: datetime, seconds: float) -> float | None:
        """The highest forecast of every bin ``[start, start + seconds]`` touches; None if one has nothing kept."""
        highest = 0.0
        at, end = bin_start(start), start + timedelta(seconds=seconds)
        while at <= end:
            value = self.tpm_at(at)
            if value is None:
                return None
            highest = max(highest, value)
            at += timedelta(minutes=BIN_MINUTES)
        return highest

    def nodes(self, tpm: float, fallback: float) -> float:
        """Nodes ``tpm`` asks for at the transactions per node this set has carried (``fallback`` before
        any); never below ``MIN_TPM_PER_NODE`` per node, so a forecast stays a finite number of nodes."""
        return tpm / max(self.tpm_per_node or fallback, MIN_TPM_PER_NODE)

    def relative_error(self) -> float | None:
        if self.error is None or self.load is None:
            return None
        return self.error / max(self.load, 1.0)

    def standing(self, policy: ForecastPolicy, now: datetime) -> Standing:
        """Whether a forecast may be used now (before looking at the horizon's bins)."""
        if policy.mode is Mode.OFF:
            return Standing.OFF
        if self.since is None or (now - self.since).total_seconds() < policy.history_seconds:
            return Standing.HISTORY_TOO_SHORT
        relative = self.relative_error()
        if relative is not None and relative > policy.max_error:
            return Standing.WRONG_LATELY
        return Standing.TRUSTED


def observe(
    profile: Profile, policy: ForecastPolicy, at: datetime, tpm: float, nodes: float | None, fallback: float
) -> Profile:
    """Fold one complete minute (``tpm`` served at ``at``; ``nodes`` the reactive ask for it) into the profile,
    judging first what the profile forecast for it. A minute already folded (ticks every 10 s read the
    same minute six times) changes nothing."""
    if policy.mode is Mode.OFF or (profile.last_at is not None and at <= profile.last_at):
        return profile
    profile = _judge(profile, policy, at, tpm, fallback)
    if nodes is not None and nodes > 0 and tpm / nodes >= MIN_TPM_PER_NODE:
        # a minute whose ask the CPU drove while almost nothing was carried says nothing of what a node carries
        profile = replace(profile, tpm_per_node=_blend(profile.tpm_per_node, tpm / nodes, 0.1))
    start = bin_start(at)
    profile = replace(profile, since=profile.since or at, last_at=at)
    if profile.open_at == start:
        return replace(profile, open_sum=profile.open_sum + tpm, open_count=profile.open_count + 1)
    if profile.open_at is not None and profile.open_count:
        bins = dict(profile.bins or _empty())
        closed = profile.open_at
        column = list(bins[kind_of(closed)])
        mean = round(profile.open_sum / profile.open_count)
        column[bin_of(closed)] = (*column[bin_of(closed)], mean)[-DAYS_KEPT:]
        bins[kind_of(closed)] = tuple(column)
        profile = replace(profile, bins=bins)
    return replace(profile, open_at=start, open_sum=tpm, open_count=1)


def _judge(profile: Profile, policy: ForecastPolicy, at: datetime, tpm: float, fallback: float) -> Profile:
    """Average the error of the forecast for ``at`` (made before ``at`` was seen) into the profile."""
    if profile.tpm_at(at) is None:
        return profile
    near = [profile.tpm_at(at + timedelta(minutes=k * BIN_MINUTES)) for k in (-1, 0, 1)]
    low, high = min(v for v in near if v is not None), max(v for v in near if v is not None)
    error = profile.nodes(max(0.0, tpm - high, low - tpm), fallback)
    load = profile.nodes(tpm, fallback)
    if profile.judged_at is None or profile.error is None or profile.load is None:
        return replace(profile, error=error, load=load, judged_at=at)
    elapsed = max(0.0, (at - profile.judged_at).total_seconds())
    weight = 1.0 - math.exp(-elapsed / policy.error_seconds)
    return replace(
        profile,
        error=_blend(profile.error, error, weight),
        load=_blend(profile.load, load, weight),
        judged_at=max(at, profile.judged_at),
    )


def _blend(old: float | None, new: float, weight: float) -> float:
    return new if old is None else old + weight * (new - old)
