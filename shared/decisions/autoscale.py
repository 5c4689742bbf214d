"""The autoscale policy, pure: one scale set's observation, its policy and history, and ``now`` in;
a decision (target capacity, reason, one-line message) and the history to store out.

How it reads the metrics (the HPA's replica maths, with what it lacks for VMs that boot slowly):
- **Target tracking on each metric, the larger wins.** CPU: ``ready × cpu ÷ target_cpu`` nodes;
  transactions: ``tpm ÷ target_tpm_per_node`` nodes. Only nodes that had booted carry load, and a
  metric is an average over its minute: the CPU is read against the nodes that served during that
  minute, each node added by a recent change counting for the share of the minute it had finished
  booting (``boot_seconds``, known from the stored changes, not from extra ARM reads). Read against
  the nodes ready *now*, a minute in which new nodes came up half-way would look twice as loaded.
- **Tolerance band.** Within ``±tolerance`` of the current size nothing changes (the HPA's 0.1).
- **Scale out at once, bounded.** Up to ``max(step_out_nodes, capacity × step_out_ratio)`` more per
  minute (the HPA's 4 pods or 100%, over the capacity a minute ago). A saturated set (CPU at
  ``saturation_cpu``) hides how much load it turns away, so it asks for at least twice its ready
  nodes instead of ``cpu ÷ target``, which at 100% CPU would only be ``100 ÷ target`` times.
- **Warming counts.** Nodes still booting are part of the capacity a scale-out is compared with, so
  a set that already asked for enough does not ask again while they boot.
- **Scale in only after the window.** Each tick's recommendation is stored; a scale-in goes to the
  highest recommendation of the last ``scale_in_window_seconds``, only once the stored history
  covers the whole window (a fresh coordinator does not scale in on one sample), never on missing
  or partial data, never within ``cooldown_seconds`` of a change, never below the instances
  protected from scale-in, and never by a sliver: a target within the tolerance of the current
  size is not worth a change.
- **Load that comes and goes waits longer.** When load falls back to where the set was before the
  scale-outs of the last ``cooldown_seconds`` (a burst; a surge that was overshot is not one), the
  set is in a bursty spell for ``transient_memory_seconds``: a scale-in then needs
  ``transient_window_seconds`` without a higher recommendation. A scale-in right before the next
  burst is what turns into a scale-out minutes later (a reversal); steady load, rising or falling,
  keeps the short window.
- **Bounds.** Never below ``max(1, min_nodes)`` nor above ``max_nodes``; a set outside its bounds is
  brought back whatever the metrics say.
- **Compute's throttle.** At most ``max_updates_per_minute`` capacity writes per scale set per minute.
- **Ahead of a predicted rise** (``shared.decisions.forecast``). With the mode on and a trusted
  forecast, the set is brought up to what the history forecasts for the next boot delay plus margin
  (within the step, the bounds and the throttle), and a scale-in stops at that forecast. A forecast
  only ever raises the reactive target: it never scales in, and when it is not trusted (too little
  history, wrong lately) the decision is the reactive one. In forecast-only mode the decision is
  always the reactive one and what the forecast would have done is recorded beside it.

Nothing here reads a clock or keeps state in memory: history goes in and comes out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from shared.decisions import forecast as fc


class Reason(StrEnum):
    SCALE_OUT = "scale_out"  # load above target beyond the tolerance
    SATURATED = "saturated"  # CPU at saturation: demand above capacity is hidden, ask for twice the ready nodes
    SCALE_IN = "scale_in"  # the window's highest recommendation is below the current size
    BELOW_MIN = "below_min"  # brought up to the member's minimum
    ABOVE_MAX = "above_max"  # brought down to the member's maximum
    WITHIN_TOLERANCE = "within_tolerance"  # close enough to target: no change
    WARMING = "warming"  # nodes still booting already cover what is asked
    STABILIZING = "stabilizing"  # lower load, but not for the whole scale-in window yet
    COOLDOWN = "cooldown"  # a change was made too recently to scale in
    MISSING_DATA = "missing_data"  # no metrics for this scale set: hold
    PARTIAL_DATA = "partial_data"  # some metrics missing: may scale out, never in
    AT_MAX = "at_max"  # more is needed but the member's maximum is reached
    AT_MIN = "at_min"  # less is needed but the minimum (or protected instances) holds
    PROTECTED = "protected"  # scale-in stops at the instances protected from it
    RATE_LIMITED = "rate_limited"  # Compute allows only so many capacity writes per minute
    PREDICTED = "predicted"  # the trusted history forecasts a rise within the boot delay plus margin: out ahead
    PREDICTED_HOLD = "predicted_hold"  # lower load now, but the trusted forecast needs these nodes soon


class Action(StrEnum):
    SCALE_OUT = "scale_out"
    SCALE_IN = "scale_in"
    HOLD = "hold"


@dataclass(frozen=True)
class ScalePolicy:
    """How one member's scale set is sized; defaults come from settings, overrides from the member record."""

    min_nodes: int = 1
    max_nodes: int = 6
    target_cpu: float = 80.0
    target_tpm_per_node: float = 850.0
    tolerance: float = 0.1
    saturation_cpu: float = 95.0
    #: A saturated set asks for at least this many times its ready nodes.
    saturation_factor: float = 2.0
    step_out_nodes: int = 4
    step_out_ratio: float = 1.0
    scale_in_window_seconds: float = 300.0
    cooldown_seconds: float = 600.0
    #: Scale-in window while the load is bursty, and how long a burst keeps it so.
    transient_window_seconds: float = 1800.0
    transient_memory_seconds: float = 5400.0
    boot_seconds: float = 90.0
    max_updates_per_minute: int = 4
    forecast: fc.ForecastPolicy = field(default_factory=fc.ForecastPolicy)

    def __post_init__(self) -> None:
        if self.min_nodes < 0 or self.max_nodes < max(1, self.min_nodes):
            raise ValueError(
                f"bounds min_nodes={self.min_nodes} max_nodes={self.max_nodes}: need 0 <= min <= max, max >= 1"
            )
        if not 0 < self.target_cpu < 100:
            raise ValueError(f"target_cpu={self.target_cpu} must be between 0 and 100")
        if self.target_tpm_per_node <= 0:
            raise ValueError(f"target_tpm_per_node={self.target_tpm_per_node} must be positive")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance={self.tolerance} must be in [0, 1)")
        if self.transient_window_seconds < 0 or self.transient_memory_seconds < 0:
            raise ValueError(
                f"transient_window_seconds={self.transient_window_seconds} and transient_memory_seconds="
                f"{self.transient_memory_seconds} must not be negative"
            )

    def window_seconds(self, bursty: bool) -> float:
        """How long lower load must last before a scale-in."""
        if bursty:
            return max(self.scale_in_window_seconds, self.transient_window_seconds)
        return self.scale_in_window_seconds

    @property
    def floor(self) -> int:
        return max(1, self.min_nodes)


@dataclass(frozen=True)
class Observation:
    """What one tick saw of one scale set."""

    capacity: int
    #: Average CPU of the set over the last minute with data; None when the service returned none.
    cpu_percent: float | None
    #: Transactions per minute the set served; None when the service returned none.
    tpm: float | None
    #: True when the tick's metric reads came back incomplete (a resource or a metric missing).
    partial: bool = False
    #: Instances protected from scale-in (None when not read this tick: then scale-in is not decided).
    protected: int | None = 0
    #: When the interval the metrics average began, and its length; None: the nodes ready now served it.
    sample_start: datetime | None = None
    sample_seconds: float = 60.0


@dataclass(frozen=True)
class Change:
    at: datetime
    before: int
    after: int
    #: Made ahead of a forecast rise, not on load seen (such a change is not the start of a burst).
    predicted: bool = False


@dataclass(frozen=True)
class History:
    """Per scale set, persisted between ticks: recent recommendations and capacity changes."""

    #: (when, recommended capacity) of each tick with complete data, within the scale-in window.
    recommendations: tuple[tuple[datetime, int], ...] = ()
    #: Capacity changes this policy applied, newest last (enough for boot, cooldown and throttle).
    changes: tuple[Change, ...] = ()
    #: When recommendations started being recorded without a gap (the window must be covered).
    since: datetime | None = None
    #: When load last fell back within ``cooldown_seconds`` of a scale-out (a burst).
    burst_at: datetime | None = None
    #: Load by time of day, for the forecast.
    profile: fc.Profile = field(default_factory=fc.Profile)

    def warming(self, now: datetime, boot_seconds: float, capacity: int) -> int:
        """Nodes added less than ``boot_seconds`` ago that are still in the set."""
        added = sum(
            c.after - c.before
            for c in self.changes
            if c.after > c.before and (now - c.at).total_seconds() < boot_seconds
        )
        return max(0, min(capacity, added))

    def serving(self, start: datetime, seconds: float, boot_seconds: float, capacity: int) -> float:
        """Nodes that served, on average, over ``[start, start + seconds)``: a node added by a recent
        change counts for the share of that interval after it finished booting."""
        missing = 0.0
        for c in self.changes:
            if c.after > c.before:
                booted = (c.at - start).total_seconds() + boot_seconds
                share = min(1.0, max(0.0, (seconds - booted) / seconds))
                missing += (c.after - c.before) * (1.0 - share)
        return max(0.0, capacity - missing)

    def bursty(self, now: datetime, policy: ScalePolicy) -> bool:
        return self.burst_at is not None and (now - self.burst_at).total_seconds() < policy.transient_memory_seconds

    def highest(self, now: datetime, seconds: float) -> int | None:
        """The highest recommendation of the last ``seconds``."""
        values = [r for t, r in self.recommendations if (now - t).total_seconds() < seconds]
        return max(values) if values else None

    def last_change(self) -> Change | None:
        return self.changes[-1] if self.changes else None


@dataclass(frozen=True)
class ForecastNote:
    """What the forecast said this tick, acted on or not."""

    mode: fc.Mode
    standing: fc.Standing
    #: Nodes forecast for the next boot delay plus margin (None without a forecast).
    nodes: float | None
    #: Averaged absolute error of the forecast (nodes) and that error over the averaged load.
    error: float | None
    relative_error: float | None
    #: What the decision would be with the forecast acted on (in forecast-only mode: what it would have done).
    would_target: int
    would_reason: Reason
    acted: bool


@dataclass(frozen=True)
class Decision:
    action: Action
    target: int
    reason: Reason
    message: str
    #: The unclamped, unstabilized size the metrics ask for (None without data).
    desired: int | None = None
    inputs: dict[str, float | int | bool | None] = field(default_factory=dict)
    forecast: ForecastNote | None = None

    @property
    def changes(self) -> bool:
        return self.action is not Action.HOLD


def _hold(capacity: int, reason: Reason, message: str, desired: int | None = None) -> Decision:
    return Decision(Action.HOLD, capacity, reason, message, desired)


def _move(before: int, target: int, reason: Reason, message: str, desired: int | None) -> Decision:
    action = Action.SCALE_OUT if target > before else Action.SCALE_IN
    return Decision(action, target, reason, message, desired)


def _desired(obs: Observation, ready: float, policy: ScalePolicy) -> tuple[float, bool]:
    """Nodes the load asks for (fractional) and whether the set is saturated, ``ready`` nodes having served it."""
    wants: list[float] = []
    saturated = False
    if obs.cpu_percent is not None:
        wants.append(ready * obs.cpu_percent / policy.target_cpu)
        saturated = obs.cpu_percent >= policy.saturation_cpu
    if obs.tpm is not None:
        wants.append(obs.tpm / policy.target_tpm_per_node)
    want = max(wants)
    if saturated:
        want = max(want, policy.saturation_factor * max(ready, 1))
    return want, saturated


def decide(obs: Observation, policy: ScalePolicy, history: History, now: datetime) -> tuple[Decision, History]:
    """The decision for one scale set this tick, and the history to store for the next."""
    capacity = obs.capacity
    history = _remember(obs, policy, history, now)
    decision = _predict(obs, policy, history, now, _decide(obs, policy, history, now))
    recent = [c for c in history.changes if (now - c.at).total_seconds() < 60]
    if decision.changes and len(recent) >= policy.max_updates_per_minute:
        message = f"{len(recent)} capacity writes in the last minute (Compute allows {policy.max_updates_per_minute})"
        decision = replace(_hold(capacity, Reason.RATE_LIMITED, message, decision.desired), forecast=decision.forecast)
    if decision.changes:
        keep = max(policy.boot_seconds, policy.cooldown_seconds, 600.0)
        kept = tuple(c for c in history.changes if (now - c.at).total_seconds() < keep)
        made = Change(now, capacity, decision.target, predicted=decision.reason is Reason.PREDICTED)
        history = replace(history, changes=(*kept, made)[-16:])
    inputs: dict[str, float | int | bool | None] = {
        "capacity": capacity, "cpu_percent": obs.cpu_percent, "tpm": obs.tpm, "partial": obs.partial,
        "protected": obs.protected, "warming": history.warming(now, policy.boot_seconds, capacity),
    }  # fmt: skip
    return replace(decision, inputs=inputs), history


def _remember(obs: Observation, policy: ScalePolicy, history: History, now: datetime) -> History:
    """Add this tick's recommendation; a tick without complete data breaks the window (it restarts)."""
    if obs.partial or obs.cpu_percent is None or obs.tpm is None:
        return replace(history, recommendations=(), since=None)
    served = _served(obs, policy, history, now)
    want, saturated = _desired(obs, served, policy)
    # A saturated minute's ask (twice the ready nodes) is a guess to find the load quickly, not a
    # measurement: the window remembers what the minute measured (its transactions, at least the
    # nodes that served it). Remembered, the guess held a doubled set through a bursty spell that no
    # measured minute asked for (12 → 24 for 15 needed on the spiky trace); a load still there is
    # measured by the next minute the new nodes serve.
    desired = _round(max(obs.tpm / policy.target_tpm_per_node, served) if saturated else want)
    # A saturated minute's ask (twice the ready nodes) is no measure of the transactions one node carries.
    profile = fc.observe(history.profile, policy.forecast, obs.sample_start or now, obs.tpm,
                         None if saturated else want, policy.target_tpm_per_node)  # fmt: skip
    # A burst: load back down to where the set was before the scale-outs of the last cooldown began
    # (back to 12 after 4 → 8 → 12 → 16 is a surge overshot, back to 4 is a burst that has passed).
    burst_at = history.burst_at
    ups = [c.before for c in history.changes
           if c.after > c.before and not c.predicted
           and (now - c.at).total_seconds() < policy.cooldown_seconds]  # fmt: skip
    if ups and desired <= min(ups):
        burst_at = now
    # Only what a window's maximum can still need: an older recommendation no higher than a newer one
    # never decides it (a sliding-window maximum), so a long window stays a few entries.
    window = timedelta(seconds=policy.window_seconds(bursty=True))
    kept = [(t, r) for t, r in history.recommendations if now - t < window]
    while kept and kept[-1][1] <= desired:
        kept.pop()
    return replace(history, recommendations=(*kept, (now, desired)), since=history.since or now, burst_at=burst_at,
                   profile=profile)  # fmt: skip


def _served(obs: Observation, policy: ScalePolicy, history: History, now: datetime) -> float:
    """The nodes that served the interval the metrics describe."""
    if obs.sample_start is None:
        return obs.capacity - history.warming(now, policy.boot_seconds, obs.capacity)
    return history.serving(obs.sample_start, obs.sample_seconds, policy.boot_seconds, obs.capacity)


def _round(want: float) -> int:
    return max(0, math.ceil(want - 1e-9))


def _decide(obs: Observation, policy: ScalePolicy, history: History, now: datetime) -> Decision:
    capacity = obs.capacity
    ceiling, floor = policy.max_nodes, policy.floor
    if capacity < floor:
        has_data = obs.cpu_percent is not None or obs.tpm is not None
        asked = _round(_desired(obs, _served(obs, policy, history, now), policy)[0]) if has_data else 0
        target = max(floor, min(asked, ceiling))
        return _move(capacity, target, Reason.BELOW_MIN, f"capacity {capacity} is below the minimum {floor}", None)
    if capacity > ceiling:
        if obs.protected is None:
            return _hold(capacity, Reason.PROTECTED, "above the maximum, but protected instances were not read")
        target = max(ceiling, obs.protected)
        if target >= capacity:
            return _hold(capacity, Reason.PROTECTED, f"above the maximum {ceiling}, but {obs.protected} are protected")
        return _move(capacity, target, Reason.ABOVE_MAX, f"capacity {capacity} is above the maximum {ceiling}", None)
    if obs.cpu_percent is None and obs.tpm is None:
        return _hold(capacity, Reason.MISSING_DATA, "no metrics for this scale set: holding")

    warming = history.warming(now, policy.boot_seconds, capacity)
    ready = capacity - warming
    want, saturated = _desired(obs, _served(obs, policy, history, now), policy)
    desired = _round(want)
    ratio = want / ready if ready else math.inf
    if desired > capacity and (saturated or ratio > 1 + policy.tolerance):
        # The step bounds a minute's growth, not one tick's: ticks every 10 s must not add it six times.
        base = min([capacity, *(c.before for c in history.changes if (now - c.at).total_seconds() < 60)])
        step = max(policy.step_out_nodes, math.ceil(base * policy.step_out_ratio))
        target = min(desired, base + step, ceiling)
        if target <= capacity and capacity >= ceiling:
            return _hold(capacity, Reason.AT_MAX, f"load asks for {desired} nodes; the maximum is {ceiling}", desired)
        if target <= capacity:
            message = f"load asks for {desired} nodes; this minute's step (from {base}) is used up"
            return _hold(capacity, Reason.RATE_LIMITED, message, desired)
        if saturated:
            basis = f"CPU {obs.cpu_percent:.0f}% is saturated"
        else:
            basis = f"load asks for {want:.1f} nodes ({ratio:.0%} of {ready} ready)"
        capped = " (step-limited)" if target < min(desired, ceiling) else ""
        reason = Reason.SATURATED if saturated else Reason.SCALE_OUT
        return _move(capacity, target, reason, f"{basis}: {capacity} → {target}{capped}", desired)
    if desired > ready and ready < capacity:
        return _hold(capacity, Reason.WARMING, f"{warming} warming node(s) cover the {desired} asked for", desired)
    if desired >= capacity or ratio >= 1 - policy.tolerance:
        message = f"load is {ratio:.0%} of target on {ready} ready node(s)"
        return _hold(capacity, Reason.WITHIN_TOLERANCE, message, desired)

    # Below target: every rule that keeps a scale-in from acting on a guess comes first.
    if obs.partial or obs.cpu_percent is None or obs.tpm is None:
        return _hold(capacity, Reason.PARTIAL_DATA, "metrics are incomplete: never scaling in on them", desired)
    last = history.last_change()
    if last is not None and (now - last.at).total_seconds() < policy.cooldown_seconds:
        left = policy.cooldown_seconds - (now - last.at).total_seconds()
        message = f"changed {last.before} → {last.after} recently: {left:.0f}s of cooldown left"
        return _hold(capacity, Reason.COOLDOWN, message, desired)
    bursty = history.bursty(now, policy)
    window = policy.window_seconds(bursty)
    spell = " (load came and went lately)" if bursty else ""
    if history.since is None or (now - history.since).total_seconds() < window:
        message = f"load asks for {desired}, not yet for a whole {window:.0f}s window{spell}"
        return _hold(capacity, Reason.STABILIZING, message, desired)
    stabilized = history.highest(now, window)
    if stabilized is None:  # unreachable: this tick's recommendation is always stored
        return _hold(capacity, Reason.STABILIZING, "no recommendation in the window", desired)
    if stabilized >= capacity:
        message = f"the highest recommendation of the last {window:.0f}s{spell} is {stabilized}"
        return _hold(capacity, Reason.STABILIZING, message, desired)
    if stabilized > capacity * (1 - policy.tolerance):
        message = f"the window's highest recommendation {stabilized} is within the tolerance of {capacity}"
        return _hold(capacity, Reason.WITHIN_TOLERANCE, message, desired)
    if obs.protected is None:
        message = "instances protected from scale-in were not read: not scaling in"
        return _hold(capacity, Reason.PROTECTED, message, desired)
    bottom = max(floor, obs.protected)
    target = max(stabilized, bottom)
    if target >= capacity:
        reason = Reason.PROTECTED if obs.protected > floor else Reason.AT_MIN
        return _hold(capacity, reason, f"load asks for {stabilized}; {bottom} node(s) must stay", desired)
    message = f"load has asked for at most {stabilized} for {window:.0f}s: {capacity} → {target}"
    return _move(capacity, target, Reason.SCALE_IN, message, desired)


def _predict(obs: Observation, policy: ScalePolicy, history: History, now: datetime, reactive: Decision) -> Decision:
    """The reactive decision, raised to the trusted forecast when the mode is on; the forecast noted either way."""
    mode = policy.forecast.mode
    if mode is fc.Mode.OFF:
        return reactive
    profile = history.profile
    standing = profile.standing(policy.forecast, now)
    nodes: float | None = None
    would = reactive
    if standing is not fc.Standing.HISTORY_TOO_SHORT:
        ahead = policy.boot_seconds + policy.forecast.margin_seconds
        soon, later = profile.tpm_over(now, ahead), profile.tpm_over(now, ahead + policy.cooldown_seconds)
        if soon is None or later is None:
            standing = fc.Standing.NO_HISTORY_HERE
        else:
            nodes = profile.nodes(soon, policy.target_tpm_per_node)
            keep = profile.nodes(later, policy.target_tpm_per_node)
            would = _ahead(obs, policy, history, now, reactive, nodes, keep)
    acted = mode is fc.Mode.ON and standing is fc.Standing.TRUSTED
    decision = would if acted else reactive
    note = ForecastNote(mode, standing, nodes, profile.error, profile.relative_error(), would.target, would.reason,
                        acted and would is not reactive)  # fmt: skip
    return replace(decision, forecast=note)


def _ahead(obs: Observation, policy: ScalePolicy, history: History, now: datetime, reactive: Decision,
           soon: float, later: float) -> Decision:  # fmt: skip
    """The reactive decision raised by the forecast: out ahead to the ``soon`` nodes forecast for the
    next boot delay plus margin (beyond the tolerance, within the step and the bounds), and a scale-in
    stopped at the ``later`` nodes forecast for a cooldown beyond that (a scale-in the forecast would
    reverse is not made). Never lower than the reactive target."""
    capacity = obs.capacity
    if capacity > policy.max_nodes or capacity < policy.floor:
        return reactive  # the bounds come first
    needed, keep = min(_round(soon), policy.max_nodes), min(_round(max(soon, later)), policy.max_nodes)
    ahead = policy.boot_seconds + policy.forecast.margin_seconds
    if needed > max(capacity, reactive.target) and soon > capacity * (1 + policy.tolerance):
        base = min([capacity, *(c.before for c in history.changes if (now - c.at).total_seconds() < 60)])
        step = max(policy.step_out_nodes, math.ceil(base * policy.step_out_ratio))
        stepped = min(needed, base + step)
        if stepped > max(capacity, reactive.target):
            capped = " (step-limited)" if stepped < needed else ""
            message = f"the history forecasts {needed} nodes within {ahead:.0f}s: {capacity} → {stepped}{capped}"
            return _move(capacity, stepped, Reason.PREDICTED, message, reactive.desired)
    if reactive.target >= capacity or keep <= reactive.target:
        return reactive
    within = ahead + policy.cooldown_seconds
    if keep >= capacity:
        message = f"load asks for {reactive.target}, but the history forecasts {keep} within {within:.0f}s"
        return _hold(capacity, Reason.PREDICTED_HOLD, message, reactive.desired)
    message = f"{reactive.message}; stopped at the {keep} the history forecasts within {within:.0f}s"
    return _move(capacity, keep, reactive.reason, message, reactive.desired)
