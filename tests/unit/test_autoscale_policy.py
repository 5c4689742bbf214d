"""The autoscale policy, one row per rule boundary, each with the sentence that explains it; then its invariants."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.decisions.autoscale import Action, Change, History, Observation, Reason, ScalePolicy, decide

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POLICY = ScalePolicy(
    min_nodes=2, max_nodes=10, target_cpu=75, target_tpm_per_node=850, tolerance=0.1, saturation_cpu=95,
    scale_in_window_seconds=300, cooldown_seconds=120, boot_seconds=90, max_updates_per_minute=4,
)  # fmt: skip


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def steady(desired: int, since: float = 400) -> History:
    """A history whose window has been covered by ticks recommending ``desired``."""
    recs = tuple((ago(s), desired) for s in range(int(since) - 100, -1, -60) if s < 300)
    return History(recommendations=recs, since=ago(since))


def with_recommendation(history: History, desired: int) -> History:
    """``history`` with one more recommendation, 30 s ago."""
    return replace(history, recommendations=(*history.recommendations, (ago(30), desired)))


def tpm_for(nodes: float) -> float:
    return nodes * 850


@dataclass(frozen=True)
class Row:
    why: str
    obs: Observation
    history: History
    action: Action
    target: int
    reason: Reason
    policy: ScalePolicy = POLICY


#: A policy with room above ten nodes, where the tolerance band is wider than one node.
WIDE = replace(POLICY, max_nodes=20)

ROWS = [
    Row("a set below its minimum is brought up to it whatever the metrics say",
        Observation(1, None, None), History(), Action.SCALE_OUT, 2, Reason.BELOW_MIN),
    Row("a set above its maximum is brought down to it whatever the metrics say",
        Observation(12, 50, tpm_for(12)), History(), Action.SCALE_IN, 10, Reason.ABOVE_MAX),
    Row("no metrics at all: hold",
        Observation(4, None, None), steady(1), Action.HOLD, 4, Reason.MISSING_DATA),
    Row("load exactly at target: nothing to do",
        Observation(4, 75, tpm_for(4)), steady(4), Action.HOLD, 4, Reason.WITHIN_TOLERANCE),
    Row("10% above target is inside the dead band",
        Observation(10, 75 * 1.1, tpm_for(10)), steady(10), Action.HOLD, 10, Reason.WITHIN_TOLERANCE),
    Row("just past the dead band on CPU scales out to what the load asks for",
        Observation(4, 75 * 1.2, tpm_for(4)), steady(4), Action.SCALE_OUT, 5, Reason.SCALE_OUT),
    Row("the larger of the two metrics wins: transactions ask for 6 while CPU is at target",
        Observation(4, 75, tpm_for(6)), steady(4), Action.SCALE_OUT, 6, Reason.SCALE_OUT),
    Row("a saturated set asks for at least twice its ready nodes (its CPU hides the load it turns away)",
        Observation(3, 99, tpm_for(3)), steady(3), Action.SCALE_OUT, 6, Reason.SATURATED),
    Row("scale-out is bounded: at most max(4 nodes, 100%) per decision",
        Observation(2, 75, tpm_for(9)), steady(2), Action.SCALE_OUT, 6, Reason.SCALE_OUT),
    Row("the step bounds a minute, not a tick: 2 → 6 forty seconds ago leaves no room for more",
        Observation(6, 75, tpm_for(12)), History(changes=(Change(ago(40), 2, 6),)), Action.HOLD, 6,
        Reason.RATE_LIMITED),
    Row("a minute after 2 → 6 the next step may be taken",
        Observation(6, 75, tpm_for(12)), History(changes=(Change(ago(61), 2, 6),)), Action.SCALE_OUT, 10,
        Reason.SCALE_OUT),
    Row("scale-out stops at the maximum",
        Observation(8, 99, tpm_for(8)), steady(8), Action.SCALE_OUT, 10, Reason.SATURATED),
    Row("at the maximum, more load is reported, not acted on",
        Observation(10, 99, tpm_for(10)), steady(10), Action.HOLD, 10, Reason.AT_MAX),
    Row("nodes added 60 s ago are still warming and cover what the saturated ready nodes ask for",
        Observation(6, 99, tpm_for(3)), History(changes=(Change(ago(60), 3, 6),)), Action.HOLD, 6, Reason.WARMING),
    Row("nodes added 91 s ago have booted: a still-saturated set scales out again",
        Observation(6, 99, tpm_for(6)), History(changes=(Change(ago(91), 3, 6),)), Action.SCALE_OUT, 10,
        Reason.SATURATED),
    Row("a minute in which 3 new nodes served only its second half is read against the 4.5 nodes that "
        "served it, not the 6 there are now: saturated, it asks for twice 4.5 (9), not twice 6",
        Observation(6, 99, tpm_for(4.5), sample_start=ago(60)), History(changes=(Change(ago(120), 3, 6),)),
        Action.SCALE_OUT, 9, Reason.SATURATED),
    Row("the same minute fully served by all 6 asks for twice 6 (the maximum, 10)",
        Observation(6, 99, tpm_for(6), sample_start=ago(60)), History(changes=(Change(ago(200), 3, 6),)),
        Action.SCALE_OUT, 10, Reason.SATURATED),
    Row("10% below target is inside the dead band",
        Observation(10, 75 * 0.9, tpm_for(9)), steady(9), Action.HOLD, 10, Reason.WITHIN_TOLERANCE),
    Row("lower load for the whole window scales in to the window's highest recommendation",
        Observation(6, 30, tpm_for(2.4)), steady(3), Action.SCALE_IN, 3, Reason.SCALE_IN),
    Row("lower load, but the window is not covered yet (a fresh history): hold",
        Observation(6, 30, tpm_for(2.4)), steady(3, since=200), Action.HOLD, 6, Reason.STABILIZING),
    Row("a recommendation of 5 inside the window holds a scale-in to 5",
        Observation(6, 30, tpm_for(2.4)), with_recommendation(steady(3), 5),
        Action.SCALE_IN, 5, Reason.SCALE_IN),
    Row("a recommendation of 6 inside the window holds the set where it is",
        Observation(6, 30, tpm_for(2.4)), with_recommendation(steady(3), 6),
        Action.HOLD, 6, Reason.STABILIZING),
    Row("119 s after a change is still cooldown: no scale-in",
        Observation(6, 30, tpm_for(2.4)), replace(steady(3), changes=(Change(ago(119), 4, 6),)), Action.HOLD, 6,
        Reason.COOLDOWN),
    Row("121 s after a change the cooldown is over",
        Observation(6, 30, tpm_for(2.4)), replace(steady(3), changes=(Change(ago(121), 4, 6),)), Action.SCALE_IN, 3,
        Reason.SCALE_IN),
    Row("a scale-in by less than the tolerance is not worth a change: 15 → 14 holds",
        Observation(15, 30, tpm_for(6)), with_recommendation(steady(6), 14), Action.HOLD, 15,
        Reason.WITHIN_TOLERANCE, WIDE),
    Row("a scale-in past the tolerance is: 15 → 13",
        Observation(15, 30, tpm_for(6)), with_recommendation(steady(6), 13), Action.SCALE_IN, 13, Reason.SCALE_IN,
        WIDE),
    Row("bursty load (it fell back after a scale-out 10 minutes ago) needs the longer 1800 s window: hold",
        Observation(6, 30, tpm_for(2.4)), replace(steady(3), burst_at=ago(600)), Action.HOLD, 6,
        Reason.STABILIZING),
    Row("bursty load scales in once 1800 s have passed without a higher recommendation",
        Observation(6, 30, tpm_for(2.4)), replace(steady(3, since=1900), burst_at=ago(1850)), Action.SCALE_IN, 3,
        Reason.SCALE_IN),
    Row("a burst 5400 s ago is forgotten: the short window again",
        Observation(6, 30, tpm_for(2.4)), replace(steady(3), burst_at=ago(5400)), Action.SCALE_IN, 3,
        Reason.SCALE_IN),
    Row("partial data never scales in",
        Observation(6, 30, None, partial=True), steady(3), Action.HOLD, 6, Reason.PARTIAL_DATA),
    Row("partial data may still scale out: under-provisioning is the worse mistake",
        Observation(4, 99, None, partial=True), steady(4), Action.SCALE_OUT, 8, Reason.SATURATED),
    Row("scale-in stops at the minimum",
        Observation(6, 10, tpm_for(0.5)), steady(1), Action.SCALE_IN, 2, Reason.SCALE_IN),
    Row("at the minimum, less load changes nothing",
        Observation(2, 10, tpm_for(0.5)), steady(1), Action.HOLD, 2, Reason.AT_MIN),
    Row("scale-in stops at the instances protected from it",
        Observation(6, 10, tpm_for(0.5), protected=4), steady(1), Action.SCALE_IN, 4, Reason.SCALE_IN),
    Row("when every instance is protected nothing is removed",
        Observation(6, 10, tpm_for(0.5), protected=6), steady(1), Action.HOLD, 6, Reason.PROTECTED),
    Row("protection not read this tick: no scale-in on a guess",
        Observation(6, 10, tpm_for(0.5), protected=None), steady(1), Action.HOLD, 6, Reason.PROTECTED),
    Row("four capacity writes in the last minute: Compute's throttle holds a fifth",
        Observation(4, 99, tpm_for(4)), History(changes=tuple(Change(ago(50 - 10 * i), 4, 4) for i in range(4))),
        Action.HOLD, 4, Reason.RATE_LIMITED),
    Row("the oldest of four writes is 61 s old: a fifth is allowed",
        Observation(4, 99, tpm_for(4)),
        History(changes=(Change(ago(200), 4, 4), *(Change(ago(50 - 10 * i), 4, 4) for i in range(3)))),
        Action.SCALE_OUT, 8, Reason.SATURATED),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.why for r in ROWS])
def test_rule(row: Row) -> None:
    decision, _ = decide(row.obs, row.policy, row.history, NOW)
    assert (decision.action, decision.target, decision.reason) == (row.action, row.target, row.reason), (
        f"{row.why}: {decision.message}"
    )
    assert decision.message


def test_a_decision_records_its_inputs_and_the_change_it_made() -> None:
    decision, history = decide(Observation(4, 99, tpm_for(4)), POLICY, History(), NOW)
    assert decision.inputs["cpu_percent"] == 99 and decision.inputs["capacity"] == 4
    assert history.changes[-1] == Change(NOW, 4, 8)
    assert history.recommendations[-1] == (NOW, 4), "the 8 is a saturated guess; the window keeps the 4 measured"


def test_a_saturated_guess_is_not_held_through_the_window_but_what_the_new_nodes_measure_is() -> None:
    _, history = decide(Observation(6, 99, tpm_for(6)), POLICY, History(since=ago(400)), NOW)
    assert history.changes[-1] == Change(NOW, 6, 10) and history.highest(NOW, 300) == 6
    later = NOW + timedelta(seconds=120)
    _, history = decide(Observation(10, 65, tpm_for(9)), POLICY, history, later)
    assert history.highest(later, 300) == 9, "the load the new nodes measured is what a scale-in must respect"


def test_load_falling_back_within_the_cooldown_of_a_scale_out_marks_a_burst() -> None:
    out = History(changes=(Change(ago(60), 3, 6),))
    _, history = decide(Observation(6, 20, tpm_for(2)), POLICY, out, NOW)
    assert history.burst_at == NOW, "load asks for 2 a minute after 3 → 6: it came and went"
    _, history = decide(Observation(6, 60, tpm_for(4.5)), POLICY, out, NOW)
    assert history.burst_at is None, "load still above the 3 it scaled out from: not a burst"
    _, history = decide(Observation(6, 20, tpm_for(2)), POLICY, History(changes=(Change(ago(121), 3, 6),)), NOW)
    assert history.burst_at is None, "past the cooldown the fall is a trend, not a burst"
    surge = History(changes=(Change(ago(100), 4, 8), Change(ago(40), 8, 12), Change(ago(20), 12, 16)))
    _, history = decide(Observation(16, 60, tpm_for(12)), POLICY, surge, NOW)
    assert history.burst_at is None, "back to 12 after 4 → 8 → 12 → 16 is a surge overshot, not a burst"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=60))
def test_stored_recommendations_keep_every_window_maximum(values: list[int]) -> None:
    """Only recommendations that can still be a window's highest are stored, and no maximum changes."""
    policy = replace(POLICY, transient_window_seconds=3600)
    history = History()
    seen: list[tuple[datetime, int]] = []
    for i, v in enumerate(values):
        now = NOW + timedelta(seconds=60 * i)
        tpm = tpm_for(v)
        _, history = decide(Observation(10, 75 * min(v, 10) / 10, tpm, protected=0), policy, history, now)
        seen.append((now, history.recommendations[-1][1]))
        kept = [r for _, r in history.recommendations]
        assert kept == sorted(kept, reverse=True) and len(set(kept)) == len(kept)
        for span in (60, 300, 1800, 3600):
            window = [r for t, r in seen if (now - t).total_seconds() < span]
            assert history.highest(now, span) == max(window)


def test_a_gap_in_the_metrics_restarts_the_scale_in_window() -> None:
    _, history = decide(Observation(6, None, None), POLICY, steady(1), NOW)
    assert history.recommendations == () and history.since is None


# ---------------------------------------------------------------- invariants

observations = st.builds(
    Observation,
    capacity=st.integers(0, 30),
    cpu_percent=st.one_of(st.none(), st.floats(0, 100)),
    tpm=st.one_of(st.none(), st.floats(0, 30_000)),
    partial=st.booleans(),
    protected=st.one_of(st.none(), st.integers(0, 30)),
    sample_start=st.one_of(st.none(), st.integers(0, 300).map(ago)),
)
policies = st.builds(
    ScalePolicy,
    min_nodes=st.integers(0, 5),
    max_nodes=st.integers(5, 20),
    target_cpu=st.floats(30, 90),
    target_tpm_per_node=st.floats(100, 2000),
    tolerance=st.floats(0, 0.3),
)


@settings(max_examples=300, deadline=None)
@given(observations, policies, st.lists(st.integers(0, 40), max_size=6))
def test_a_change_never_leaves_the_bounds_nor_removes_protected_instances(
    obs: Observation, policy: ScalePolicy, recs: list[int]
) -> None:
    history = History(recommendations=tuple((ago(30 * i), r) for i, r in enumerate(recs)), since=ago(1000))
    decision, _ = decide(obs, policy, history, NOW)

    def outside(n: int) -> int:
        return max(0, policy.floor - n, n - policy.max_nodes)

    if decision.changes:
        # Within the bounds, or (protected instances above the maximum) strictly closer to them.
        assert outside(decision.target) == 0 or outside(decision.target) < outside(obs.capacity)
    if decision.action is Action.SCALE_IN:
        assert obs.protected is not None and decision.target >= obs.protected
    if decision.reason is Reason.SCALE_IN:  # a scale-in on the metrics (not back under the maximum)
        assert not obs.partial and obs.cpu_percent is not None and obs.tpm is not None


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 20), st.floats(0, 20_000))
def test_constant_load_settles_and_never_flaps(start: int, tpm: float) -> None:
    """Ticked every 10 s for an hour under one load, the set settles and then holds.

    It may correct itself once: a set at the edge of saturation (CPU ≥ 95% with the load just under
    what its nodes can serve) is doubled because a saturated CPU hides how much load is turned
    away, and comes back down after the scale-in window. It never goes back and forth.
    """
    policy = ScalePolicy(min_nodes=1, max_nodes=20, scale_in_window_seconds=60, cooldown_seconds=30)
    capacity, history, directions, last_change = start, History(), [], 0
    cpu = served = 0.0
    for i in range(360):
        now = NOW + timedelta(seconds=10 * i)
        ready = capacity - history.warming(now, policy.boot_seconds, capacity)
        served = min(tpm, ready * 1000)
        cpu = 100.0 if ready == 0 and tpm > 0 else min(100.0, 5 + 95 * tpm / (ready * 1000)) if ready else 5.0
        decision, history = decide(Observation(capacity, cpu, served, protected=0), policy, history, now)
        if decision.changes:
            directions.append(decision.action)
            capacity, last_change = decision.target, i
    reversals = sum(1 for a, b in itertools.pairwise(directions) if a != b)
    assert reversals <= 1, directions
    if reversals:
        assert directions[0] is Action.SCALE_OUT and directions[-1] is Action.SCALE_IN, directions
    assert last_change < 120, f"still changing after {last_change * 10} s: {directions}"


@settings(max_examples=300, deadline=None)
@given(observations, policies)
def test_a_replayed_tick_changes_nothing(obs: Observation, policy: ScalePolicy) -> None:
    """Once applied, the same tick decided again (same time, stored history, new capacity) holds."""
    decision, history = decide(obs, policy, History(), NOW)
    if not decision.changes:
        return
    again, _ = decide(replace(obs, capacity=decision.target), policy, history, NOW)
    assert not again.changes or again.reason in (Reason.RATE_LIMITED,), again
