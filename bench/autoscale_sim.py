"""Replay load traces in simulated time through four scalers, to compare our autoscale policy with
what a member would otherwise get: Azure's stock autoscale rules, the Kubernetes HPA algorithm, and
a hindsight oracle that knows the future load.

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
    """Offered load (tpm) per simulated minute, and the minutes whose metrics come back empty."""

    name: str
    offered: list[float]
    gaps: frozenset[int] = frozenset()


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
    """``shared.decisions.autoscale.decide`` every 60 s, keeping its History between ticks as the service does."""

    name, period_seconds = "ours", 60.0

    def __init__(self) -> None:
        self.policy = ScalePolicy(min_nodes=MIN_NODES, max_nodes=MAX_NODES)
        self.history = History()

    def tick(self, now: float, capacity: int, ready: int, metrics: MinuteMetrics | None) -> int:
        cpu = metrics.cpu if metrics else None
        tpm = metrics.tpm if metrics else None
        start = EPOCH + timedelta(seconds=60 * metrics.minute) if metrics else None
        obs = Observation(capacity, cpu, tpm, partial=False, protected=0, sample_start=start, sample_seconds=60.0)
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


class Oracle:
    """Hindsight: each minute's ``ceil(offered ÷ 1000)`` nodes, started exactly a boot delay before
    that minute and removed as soon as no minute within the next boot delay needs them."""

    name, period_seconds = "oracle", STEP_SECONDS

    def __init__(self, trace: Trace) -> None:
        self.needed = [max(MIN_NODES, math.ceil(o / NODE_TPM - 1e-9)) for o in trace.offered]

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
    return [Ours(), AzureRules(), Hpa(ScalePolicy().target_cpu, initial), Oracle(trace)]


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
                if last_move and last_move[1] != direction and now - last_move[0] < REVERSAL_SECONDS:
                    run.reversals += 1
                last_move = (now, direction)
                run.changes += 1
                run.moves.append((now, capacity, target))
                if target > capacity:
                    created.extend([now] * (target - capacity))
                else:
                    del created[target:]  # the newest go first
        offered = trace.offered[minute]
        serving = sum(1 for c in created if c + BOOT_SECONDS <= now)
        samples.append((cpu_percent(offered, serving), served_tpm(offered, serving)))
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
def plot(trace: Trace, runs: dict[tuple[str, str], Run], path: Path | None = None) -> Path:
    """Offered load in nodes and each scaler's capacity (booting included) over the trace, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = path or RESULTS / f"autoscale_{trace.name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(12, 5), dpi=100)
    minutes = list(range(len(trace.offered)))
    ax.step(minutes, [o / NODE_TPM for o in trace.offered], where="post", color="black", lw=1.2, label="offered load")
    for (name, scaler), run in runs.items():
        if name == trace.name:
            ax.step([t / 60 for t, _, _ in run.steps], [c for _, c, _ in run.steps], where="post", lw=1, label=scaler)
    for gap in sorted(trace.gaps):
        ax.axvspan(gap, gap + 1, color="grey", alpha=0.15, lw=0)
    ax.set(xlabel="minute", ylabel="nodes (1 node = 1,000 tpm)", title=f"autoscale: {trace.name}")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
