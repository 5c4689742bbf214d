"""Replay load traces in simulated time through the scalers, to compare our autoscale policy (with and
without its forecast) with what a member would otherwise get: Azure's stock autoscale rules, the same
rules with Azure predictive autoscale's documented behaviour, the Kubernetes HPA algorithm, and two
hindsight oracles that know the future load: one that runs every node 100% busy (the least capacity
there can be) and a fair one sized for the policy's own target utilisation.

Why a simulation and not the emulator: a benchmark has to replay hours of load in seconds, the same
load for every scaler, and count what each one costs (nodes paid for) and misses (load turned away).
The model mirrors ``tools/emulator`` so the numbers mean the same there and here:

- a node serves ``NODE_TPM`` (1000) transactions per minute once ``BOOT_SECONDS`` (90) have passed
  since it was created; scale-out creates nodes now, scale-in removes the newest first (booting ones
  go before serving ones, as Compute removes the newest instances);
- served tpm is ``min(offered, serving × 1000)``; CPU% is ``min(100, 5 + 95 × offered ÷ serving
  capacity)``, 100 with load and no serving node, 5 with neither;
- time advances in 15-second steps; the offered load is constant within a trace's minute.

What the scalers see: after each minute, that minute's metrics, **averaged over its four steps**
(Azure Monitor's 1-minute average; the emulator samples the minute's end instead), plus the
emulator's seeded CPU noise (Gaussian, σ 2 points, the same per minute for every scaler). In a trace's
gap minutes both CPU and tpm are None. Metrics are available as soon as the minute ends (no Monitor
ingestion delay, for every scaler alike).

The HPA also gets ``ready``: nodes that served for the whole last metrics minute. The HPA reads pod
readiness from the API and ignores a pod's sample taken before it was ready; the other scalers ignore
it (ours infers warming nodes from its stored history, as the service does).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from shared.decisions.autoscale import History, Observation, ScalePolicy, decide
from shared.decisions.forecast import ForecastPolicy, Mode

NODE_TPM = 1000.0
BOOT_SECONDS = 90.0
STEP_SECONDS = 15.0
MINUTES = 360
MIN_NODES, MAX_NODES = 1, 40
CPU_NOISE = 2.0
REVERSAL_SECONDS = 600.0
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
RESULTS = Path(__file__).resolve().parent / "results"


# -- load model ----------------------------------------------------------------------------------
def cpu_percent(offered: float, serving: int) -> float:
    """CPU% of a set serving ``offered`` tpm on ``serving`` booted nodes (the emulator's formula, no noise)."""
    if serving == 0:
        return 100.0 if offered > 0 else 5.0
    return min(100.0, 5.0 + 95.0 * offered / (serving * NODE_TPM))


def served_tpm(offered: float, serving: int) -> float:
    return min(offered, serving * NODE_TPM)


# -- traces --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trace:
    """Offered load (tpm) per simulated minute, and the minutes whose metrics come back empty.

    Minutes before ``measure_from`` are history: every scaler lives through them (a forecast needs
    past days) but they are not counted."""

    name: str
    offered: list[float]
    gaps: frozenset[int] = frozenset()
    measure_from: int = 0

    @property
    def measured_minutes(self) -> int:
        return len(self.offered) - self.measure_from


def _noisy(rng: random.Random, value: float, sigma: float) -> float:
    return max(0.0, value * (1.0 + rng.gauss(0.0, sigma)))


def step_surge(seed: int = 1) -> Trace:
    """Flat 2,400 tpm, a sudden ×4 step to 9,600 at minute 90, back down at minute 240 (1% noise)."""
    rng = random.Random(seed)  # seeded, reproducible load noise  # nosec B311
    return Trace("step_surge", [_noisy(rng, 9_600.0 if 90 <= m < 240 else 2_400.0, 0.01) for m in range(MINUTES)])


def _day(m: int) -> float:
    """A day compressed into 6 hours: a night of 1,500 tpm rising smoothly to a peak of 11,000."""
    phase = 0.5 - 0.5 * math.cos(2.0 * math.pi * m / MINUTES)
    return 1_500.0 + 9_500.0 * phase * math.sqrt(phase)


def diurnal(seed: int = 2) -> Trace:
    rng = random.Random(seed)  # seeded, reproducible load noise  # nosec B311
    return Trace("diurnal", [_noisy(rng, _day(m), 0.02) for m in range(MINUTES)])


def spiky_noisy(seed: int = 3) -> Trace:
    """4,000 tpm with Gaussian noise (σ 500) and 14 spikes of 2 to 6 minutes to +3,000..+8,000."""
    rng = random.Random(seed)  # seeded, reproducible load noise  # nosec B311
    offered = [max(0.0, 4_000.0 + rng.gauss(0.0, 500.0)) for _ in range(MINUTES)]
    for _ in range(14):
        start, length, height = rng.randrange(10, MINUTES - 10), rng.randint(2, 6), rng.uniform(3_000.0, 8_000.0)
        for m in range(start, start + length):
            offered[m] = min(12_000.0, offered[m] + height)
    return Trace("spiky_noisy", offered)


def slow_ramp(seed: int = 4) -> Trace:
    """2,000 tpm rising linearly to 12,000 at minute 180, then back down to 2,000 (1% noise)."""
    rng = random.Random(seed)  # seeded, reproducible load noise  # nosec B311
    half = MINUTES / 2
    ramp = [2_000.0 + 10_000.0 * (1 - abs(m - half) / half) for m in range(MINUTES)]
    return Trace("slow_ramp", [_noisy(rng, v, 0.01) for v in ramp])


def metric_gaps(seed: int = 5) -> Trace:
    """The diurnal curve with 12 metric gaps of 1 to 5 minutes, one of 15 minutes on the rising edge."""
    rng = random.Random(seed)  # seeded, reproducible load noise  # nosec B311
    offered = [_noisy(rng, _day(m), 0.02) for m in range(MINUTES)]
    gaps: set[int] = set(range(100, 115))
    for _ in range(12):
        start = rng.randrange(5, MINUTES - 5)
        gaps.update(range(start, start + rng.randint(1, 5)))
    return Trace("metric_gaps", offered, frozenset(g for g in gaps if g < MINUTES))


TRACES: tuple[Callable[..., Trace], ...] = (step_surge, diurnal, spiky_noisy, slow_ramp, metric_gaps)

DAY = 1440
#: The measured week: Monday 2024-01-08 to Sunday 2024-01-14 (EPOCH is a Monday), after a week of history.
WEEK_FROM, WEEK_DAYS = 7 * DAY, 7
#: The measured week's Wednesday is a holiday: weekend-like load on a working day.
HOLIDAY = 9


def _working_day(minute: float, peak: float, shift: float) -> float:
    """A bank's working day in tpm: a night of 2,000; the market opens at 08:00 (``shift`` minutes
    early or late) and load climbs to ``peak`` within about ten minutes; a lunch dip; a settlement
    batch from 16:00 to 16:30 that adds 40% of the peak at once; a fall from 18:00 over an hour."""
    hour = (minute - shift) / 60.0
    opened = 1.0 / (1.0 + math.exp(-(hour - 8.1) * 25.0))
    closed = 1.0 / (1.0 + math.exp(-(hour - 18.5) * 5.0))
    lunch = 0.15 * math.exp(-(((hour - 12.75) / 0.6) ** 2))
    settlement = 0.4 if 16.0 <= hour < 16.5 else 0.0
    shape = max(0.0, opened - closed) * (1.0 - lunch) + settlement
    return 2_000.0 + (peak - 2_000.0) * shape


def _weekend_day(minute: float, peak: float) -> float:
    """A weekend day: 1,500 at night, a low, flat daytime of about a fifth of a working day's peak."""
    hour = minute / 60.0
    day = 1.0 / (1.0 + math.exp(-(hour - 9.5) * 1.2)) - 1.0 / (1.0 + math.exp(-(hour - 19.0) * 1.2))
    return 1_500.0 + (0.2 * peak - 1_500.0) * max(0.0, day)


def weekly(seed: int = 6) -> Trace:
    """Two weeks at one-minute resolution: the first is history (not measured), the second is measured.

    Working days peak at 20,000 tpm ± 8% day to day, open up to 10 minutes early or late, with 3%
    minute-to-minute noise; Saturdays and Sundays are low and flat; the measured week's Wednesday is
    a holiday (weekend-like load on a working day), the day that breaks the pattern."""
    rng = random.Random(seed)  # seeded, reproducible load noise  # nosec B311
    offered: list[float] = []
    for day in range(WEEK_FROM // DAY + WEEK_DAYS):
        peak, shift = 20_000.0 * (1.0 + rng.gauss(0.0, 0.08)), rng.uniform(-10.0, 10.0)
        weekend = day % 7 >= 5 or day == HOLIDAY
        for m in range(DAY):
            value = _weekend_day(m, peak) if weekend else _working_day(m, peak, shift)
            offered.append(_noisy(rng, value, 0.03))
    return Trace("weekly", offered, measure_from=WEEK_FROM)


# -- scalers -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MinuteMetrics:
    """What a scaler reads for one completed minute; both None in a gap minute."""

    minute: int
    cpu: float | None
    tpm: float | None


class Scaler(Protocol):
    name: str
    period_seconds: float

    def tick(self, now: float, capacity: int, ready: int, metrics: MinuteMetrics | None) -> int:
        """The capacity to set at ``now`` (seconds), given the last completed minute's metrics."""
        ...


def _clamp(n: int) -> int:
    return max(MIN_NODES, min(MAX_NODES, n))


class Ours:
    """``shared.decisions.autoscale.decide`` every 60 s, keeping its History between ticks as the service does;
    ``ours`` with the forecast on (the deployed default), ``ours_reactive`` with it off."""

    period_seconds = 60.0

    def __init__(self, mode: Mode = Mode.ON) -> None:
        self.name = "ours" if mode is Mode.ON else f"ours_{'reactive' if mode is Mode.OFF else mode.value}"
        self.policy = ScalePolicy(min_nodes=MIN_NODES, max_nodes=MAX_NODES, forecast=ForecastPolicy(mode=mode))
        self.history = History()
        #: (minute, forecast nodes for that minute before it was seen, nodes it needed) for the error figure.
        self.judged: list[tuple[int, float, float]] = []

    def tick(self, now: float, capacity: int, ready: int, metrics: MinuteMetrics | None) -> int:
        cpu = metrics.cpu if metrics else None
        tpm = metrics.tpm if metrics else None
        start = EPOCH + timedelta(seconds=60 * metrics.minute) if metrics else None
        obs = Observation(capacity, cpu, tpm, partial=False, protected=0, sample_start=start, sample_seconds=60.0)
        profile = self.history.profile
        if metrics and start is not None and tpm is not None and profile.since is not None:
            predicted = profile.tpm_at(start)
            if predicted is not None and (EPOCH + timedelta(seconds=now) - profile.since).days >= 7:
                per_node = profile.tpm_per_node or self.policy.target_tpm_per_node
                self.judged.append((metrics.minute, predicted / per_node, tpm / per_node))
        decision, self.history = decide(obs, self.policy, self.history, EPOCH + timedelta(seconds=now))
        return decision.target


class AzureRules:
    """Azure autoscale as Microsoft's samples set it: average CPU over 10 minutes, > 70 adds one node,
    < 30 removes one, 5 minutes' cooldown after any action, and the flapping check on scale-in."""

    name, period_seconds = "azure_rules", 60.0
    window_minutes, out_above, in_below, cooldown = 10, 70.0, 30.0, 300.0

    def __init__(self) -> None:
        self.cpu: dict[int, float] = {}
        self.last_action: float | None = None

    def tick(self, now: float, capacity: int, ready: int, metrics: MinuteMetrics | None) -> int:
        if metrics is None:
            return capacity
        if metrics.cpu is not None:
            self.cpu[metrics.minute] = metrics.cpu
        recent = [v for m, v in self.cpu.items() if metrics.minute - self.window_minutes < m <= metrics.minute]
        if not recent or (self.last_action is not None and now - self.last_action < self.cooldown):
            return capacity
        average = sum(recent) / len(recent)
        target = capacity
        if average > self.out_above:  # any rule asking out wins (there is one rule per direction here)
            target = _clamp(capacity + 1)
        elif average < self.in_below and capacity > MIN_NODES:
            projected = average * capacity / (capacity - 1)  # flapping: would the smaller set scale out again?
            if not projected > self.out_above:
                target = capacity - 1
        if target != capacity:
            self.last_action = now
        return target


def _weekend(minute: int) -> bool:
    return (minute // DAY) % 7 >= 5  # EPOCH is a Monday


class AzurePredictive(AzureRules):
    """Azure predictive autoscale for scale sets over the rules above, as far as its documentation says:
    it forecasts the set's overall CPU load from its own history (at least 7 days, a rolling window
    of at most 15), only scales out, adds instances when the forecast crosses the scale-out rule's
    threshold, ahead by ``scaleLookAheadTime`` (up to an hour), and leaves scale-in to the rules.

    What the documentation does not say, assumed here: the forecaster is the mean of the same minute
    of day over the past days of the same kind (working day or weekend) in its window, once it has
    7 days (Azure's model is machine learning on cyclical patterns; this one is given the weekly
    cycle outright, in Azure's favour); the look-ahead is 10 minutes; one action brings the set to enough
    instances to hold the highest forecast of that look-ahead under the 70% threshold (more than the
    rule's one-instance step, in Azure's favour); the rules' 5-minute cooldown applies to it too."""

    name = "azure_predictive"
    history_days, lookahead_minutes, min_days = 15, 10, 7

    def __init__(self) -> None:
        super().__init__()
        self.load: dict[int, float] = {}  # minute → CPU% × instances (the set's overall CPU load)
        self.capacity_at: dict[int, int] = {}

    def tick(self, now: float, capacity: int, ready: int, metrics: MinuteMetrics | None) -> int:
        minute = int(now // 60)
        self.capacity_at[minute] = capacity
        if metrics is not None and metrics.cpu is not None:
            self.load[metrics.minute] = metrics.cpu * self.capacity_at.get(metrics.minute, capacity)
        target = super().tick(now, capacity, ready, metrics)
        if target != capacity or (self.last_action is not None and now - self.last_action < self.cooldown):
            return target
        forecasts = [f for f in (self._forecast(minute + k) for k in range(1, self.lookahead_minutes + 1)) if f]
        if not forecasts:
            return target
        wanted = _clamp(math.ceil(max(forecasts) / self.out_above - 1e-9))
        if wanted > capacity:
            self.last_action = now
            return wanted
        return target

    def _forecast(self, minute: int) -> float | None:
        if not self.load or minute - min(self.load) < self.min_days * DAY:
            return None
        weekend = _weekend(minute)
        past = [self.load.get(minute - d * DAY) for d in range(1, self.history_days + 1)]
        seen = [v for d, v in enumerate(past, 1) if v is not None and _weekend(minute - d * DAY) == weekend]
        return sum(seen) / len(seen) if seen else None


class Hpa:
    """The Kubernetes HPA's replica calculation and default behavior, on nodes instead of pods."""

    name, period_seconds = "hpa", 15.0
    tolerance = 0.1
    down_window = 300.0
    up_pods, up_percent, down_percent, policy_period = 4, 100.0, 100.0, 15.0

    def __init__(self, target_cpu: float, initial: int) -> None:
        self.target = target_cpu
        # maybeInitScaleDownStabilizationWindow: a fresh HPA's window starts with the current size.
        self.recommendations: list[tuple[float, int]] = [(0.0, initial)]
        self.events: list[tuple[float, int]] = []  # (when, replicas added (+) or removed (-))

    def _desired(self, capacity: int, ready: int, cpu: float) -> int:
        """replica_calculator.GetResourceReplicas with the set's average CPU as every ready pod's."""
        usage = cpu / self.target
        unready = capacity - ready
        if unready == 0:
            return capacity if abs(usage - 1.0) <= self.tolerance else math.ceil(usage * ready)
        if usage > 1.0:  # scale-up with unready pods: they count at 0% of the request
            new_usage, counted = usage * ready / capacity, capacity
        else:  # otherwise unready pods are left out
            new_usage, counted = usage, ready
        flipped = (usage < 1.0 < new_usage) or (usage > 1.0 > new_usage)
        if abs(1.0 - new_usage) <= self.tolerance or flipped:
            return capacity
        desired = math.ceil(new_usage * counted)
        if (new_usage < 1.0 and desired > capacity) or (new_usage > 1.0 and desired < capacity):
            return capacity
        return desired

    def tick(self, now: float, capacity: int, ready: int, metrics: MinuteMetrics | None) -> int:
        if metrics is None or metrics.cpu is None or ready == 0:
            return capacity  # no metrics for any ready pod: the HPA does not scale
        desired = self._desired(capacity, ready, metrics.cpu)
        # stabilizeRecommendationWithBehaviors: up window 0 s, down window 300 s (the max recommendation).
        self.recommendations = [(t, r) for t, r in self.recommendations if now - t < self.down_window]
        down = max([desired, *(r for _, r in self.recommendations)])
        self.recommendations.append((now, desired))
        stabilized = min(max(capacity, desired), down)
        # convertDesiredReplicasWithBehaviorRate: the period's start size, then the policies (Max).
        recent = sum(n for t, n in self.events if now - t < self.policy_period)
        start = capacity - recent
        if stabilized > capacity:
            limit = max(start + self.up_pods, math.ceil(start * (1 + self.up_percent / 100)))
            target = min(stabilized, max(limit, capacity), MAX_NODES)
        elif stabilized < capacity:
            limit = int(start * (1 - self.down_percent / 100))
            target = max(stabilized, limit, MIN_NODES)
        else:
            target = _clamp(capacity)
        self.events = [(t, n) for t, n in self.events if now - t < self.policy_period]
        if target != capacity:
            self.events.append((now, target - capacity))
        return target


def fair_nodes(offered: float, policy: ScalePolicy) -> int:
    """The least nodes that keep a minute of ``offered`` tpm at or below the policy's targets: CPU
    (``5 + 95 × offered ÷ (nodes × 1000)`` ≤ target) and transactions per node."""
    per_node_cpu = NODE_TPM * (policy.target_cpu - 5.0) / 95.0
    by_tpm = offered / policy.target_tpm_per_node
    return max(MIN_NODES, math.ceil(offered / per_node_cpu - 1e-9), math.ceil(by_tpm - 1e-9))


class Oracle:
    """Hindsight: each minute's nodes, started exactly a boot delay before that minute and removed as
    soon as no minute within the next boot delay needs them. ``full_oracle`` runs every node 100%
    busy (``ceil(offered ÷ 1000)``: less than any policy holding a target can); ``fair_oracle`` holds
    each minute at the policy's own target (``fair_nodes``), the best a policy with that target can do."""

    period_seconds = STEP_SECONDS

    def __init__(self, trace: Trace, policy: ScalePolicy | None = None) -> None:
        self.name = "fair_oracle" if policy else "full_oracle"
        if policy is None:
            self.needed = [max(MIN_NODES, math.ceil(o / NODE_TPM - 1e-9)) for o in trace.offered]
        else:
            self.needed = [fair_nodes(o, policy) for o in trace.offered]

    def capacity_at(self, now: float) -> int:
        first, last = int(now // 60), min(int((now + BOOT_SECONDS) // 60), len(self.needed) - 1)
        return min(MAX_NODES, max(self.needed[first : last + 1]))

    def tick(self, now: float, capacity: int, ready: int, metrics: MinuteMetrics | None) -> int:
        return self.capacity_at(now)


class IdealReactive:
    """A yardstick with more to go on than any policy reading Monitor: at each minute it sees the true
    average load of the minute that just ended (the same minute-late view, but never hidden by a
    saturated CPU) and keeps ``ceil(load × (1 + headroom))`` nodes, the highest of the last
    ``calm_hold`` seconds, or of the last ``burst_hold`` seconds for ``burst_memory`` seconds after the
    load jumped by more than ``burst_jump`` nodes in a minute. No cooldown, no step limits."""

    name, period_seconds = "ideal_reactive", 60.0

    def __init__(self, trace: Trace, headroom: float, calm_hold: float, burst_hold: float, burst_memory: float,
                 burst_jump: float) -> None:  # fmt: skip
        self.trace, self.headroom = trace, headroom
        self.calm_hold, self.burst_hold, self.burst_memory, self.burst_jump = (
            calm_hold, burst_hold, burst_memory, burst_jump,
        )  # fmt: skip
        self.recent: list[tuple[float, int]] = []
        self.burst_at: float | None = None
        self.previous: float | None = None

    def tick(self, now: float, capacity: int, ready: int, metrics: MinuteMetrics | None) -> int:
        minute = int(now // 60) - 1
        if minute < 0:
            return capacity
        load = self.trace.offered[minute] / NODE_TPM
        if self.previous is not None and load - self.previous > self.burst_jump:
            self.burst_at = now
        self.previous = load
        bursty = self.burst_at is not None and now - self.burst_at < self.burst_memory
        hold = self.burst_hold if bursty else self.calm_hold
        longest = max(self.calm_hold, self.burst_hold)
        self.recent = [(t, n) for t, n in self.recent if now - t < longest]
        self.recent.append((now, _clamp(math.ceil(load * (1 + self.headroom) - 1e-9))))
        return max(n for t, n in self.recent if now - t < hold)


def scalers_for(trace: Trace, initial: int) -> list[Scaler]:
    """Fresh scalers (they keep state) for one trace."""
    return [Ours(), Ours(Mode.OFF), AzureRules(), AzurePredictive(), Hpa(ScalePolicy().target_cpu, initial),
            Oracle(trace), Oracle(trace, ScalePolicy())]  # fmt: skip


# -- simulation ----------------------------------------------------------------------------------
@dataclass
class Run:
    trace: str
    scaler: str
    unmet_node_minutes: float = 0.0
    node_minutes: float = 0.0
    reversals: int = 0
    changes: int = 0
    #: (seconds, capacity incl. booting, serving) at each step, for plots and diagnosis.
    steps: list[tuple[float, int, int]] = field(default_factory=list)
    #: (seconds, before, after) of each capacity change.
    moves: list[tuple[float, int, int]] = field(default_factory=list)


def initial_capacity(trace: Trace) -> int:
    """Booted nodes that put the first minute at our target CPU: every scaler starts there (the oracle at its own)."""
    utilisation = (ScalePolicy().target_cpu - 5.0) / 95.0
    return _clamp(math.ceil(trace.offered[0] / (NODE_TPM * utilisation)))


def simulate(trace: Trace, scaler: Scaler, initial: int) -> Run:
    run = Run(trace.name, scaler.name)
    start = scaler.capacity_at(0.0) if isinstance(scaler, Oracle) else initial
    created: list[float] = [-math.inf] * start  # creation times, oldest first; the first ones are booted
    noise = random.Random(f"{trace.name}|cpu").gauss  # seeded simulation noise  # nosec B311
    cpu_noise = [noise(0.0, CPU_NOISE) for _ in trace.offered]
    steps_per_minute = round(60 / STEP_SECONDS)
    samples: list[tuple[float, float]] = []  # (cpu, served) of the current minute's steps
    metrics: MinuteMetrics | None = None
    last_move: tuple[float, int] | None = None  # (when, direction) of the previous change
    for i in range(len(trace.offered) * steps_per_minute):
        now = i * STEP_SECONDS
        minute = i // steps_per_minute
        if i and i % steps_per_minute == 0:
            done = minute - 1
            if done in trace.gaps:
                metrics = MinuteMetrics(done, None, None)
            else:
                cpu = sum(s[0] for s in samples) / len(samples) + cpu_noise[done]
                tpm = sum(s[1] for s in samples) / len(samples)
                metrics = MinuteMetrics(done, max(0.0, min(100.0, cpu)), tpm)
            samples = []
        if now % scaler.period_seconds == 0:
            capacity = len(created)
            # Ready for the HPA: booted before the last metrics minute began (its sample is a ready pod's).
            since = (metrics.minute * 60.0) if metrics else 0.0
            ready = sum(1 for c in created if c + BOOT_SECONDS <= since)
            target = scaler.tick(now, capacity, ready, metrics)
            if target != capacity:
                direction = 1 if target > capacity else -1
                counted = minute >= trace.measure_from
                if counted and last_move and last_move[1] != direction and now - last_move[0] < REVERSAL_SECONDS:
                    run.reversals += 1
                last_move = (now, direction)
                if counted:
                    run.changes += 1
                    run.moves.append((now, capacity, target))
                if target > capacity:
                    created.extend([now] * (target - capacity))
                else:
                    del created[target:]  # the newest go first
        offered = trace.offered[minute]
        serving = sum(1 for c in created if c + BOOT_SECONDS <= now)
        samples.append((cpu_percent(offered, serving), served_tpm(offered, serving)))
        if minute < trace.measure_from:
            continue
        step_minutes = STEP_SECONDS / 60
        run.unmet_node_minutes += max(0.0, offered / NODE_TPM - serving) * step_minutes
        run.node_minutes += len(created) * step_minutes
        run.steps.append((now, len(created), serving))
    return run


def simulate_all(traces: Sequence[Trace]) -> dict[tuple[str, str], Run]:
    """Every trace through every scaler, keyed by (trace, scaler)."""
    runs: dict[tuple[str, str], Run] = {}
    for trace in traces:
        initial = initial_capacity(trace)
        for scaler in scalers_for(trace, initial):
            runs[trace.name, scaler.name] = simulate(trace, scaler, initial)
    return runs


# -- plot ----------------------------------------------------------------------------------------
def plot(trace: Trace, runs: dict[tuple[str, str], Run], path: Path | None = None,
         window: tuple[int, int] | None = None, title: str | None = None) -> Path:  # fmt: skip
    """Offered load in nodes and each scaler's capacity (booting included) over the measured minutes (or
    ``window``, in minutes), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = path or RESULTS / f"autoscale_{trace.name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    first, last = window or (trace.measure_from, len(trace.offered))
    fig, ax = plt.subplots(figsize=(12, 5), dpi=100)
    minutes = list(range(first, last))
    offered = [trace.offered[m] / NODE_TPM for m in minutes]
    ax.step(minutes, offered, where="post", color="black", lw=1.2, label="offered load")
    for (name, scaler), run in runs.items():
        if name == trace.name:
            shown = [(t / 60, c) for t, c, _ in run.steps if first <= t / 60 < last]
            dashes = "--" if scaler.endswith("oracle") else "-"
            ax.step([t for t, _ in shown], [c for _, c in shown], where="post", lw=1, ls=dashes, label=scaler)
    for gap in sorted(g for g in trace.gaps if first <= g < last):
        ax.axvspan(gap, gap + 1, color="grey", alpha=0.15, lw=0)
    ax.set(xlabel="minute", ylabel="nodes (1 node = 1,000 tpm)", title=title or f"autoscale: {trace.name}")
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
