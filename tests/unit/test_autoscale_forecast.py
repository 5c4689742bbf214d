"""The forecast: one row per rule that decides whether and how it acts, the profile it keeps, and the
invariants that keep it from ever doing what the reactive policy alone would not (scale in, leave the
bounds, outrun Compute's throttle, hold nodes once it has been wrong)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.decisions import forecast as fc
from shared.decisions.autoscale import Action, Change, History, Observation, Reason, ScalePolicy, decide
from shared.services.autoscale import history_from_json, history_to_json

#: A Wednesday, two minutes before the market opens.
AT = datetime(2026, 11, 25, 7, 58, tzinfo=UTC)
NODE = 850.0  # tpm one node carries at target (the policy's target_tpm_per_node; no rate learned yet)
ON = fc.ForecastPolicy(mode=fc.Mode.ON, margin_seconds=180, max_error=0.25)
POLICY = ScalePolicy(
    min_nodes=2, max_nodes=20, target_cpu=75, target_tpm_per_node=NODE, tolerance=0.1, scale_in_window_seconds=300,
    cooldown_seconds=120, boot_seconds=90, max_updates_per_minute=4, forecast=ON,
)  # fmt: skip


def at(hour: int, minute: int, day: datetime = AT) -> datetime:
    return day.replace(hour=hour, minute=minute)


def opening(hour: float) -> float:
    """Nodes a working day needs at ``hour``: 4 before 08:00, 12 from then on."""
    return 12.0 if hour >= 8 else 4.0


def profile(
    nodes: Callable[[float], float | None] = opening,
    since_days: float = 8,
    error: float = 0.2,
    load: float = 8.0,
    judged: datetime = AT,
) -> fc.Profile:
    """A profile whose working-day bins all kept ``nodes(hour)`` (None: nothing kept), right lately."""
    column = []
    for b in range(fc.BINS_PER_DAY):
        value = nodes(b * fc.BIN_MINUTES / 60)
        column.append(() if value is None else (round(value * NODE),) * fc.DAYS_KEPT)
    bins = {fc.WEEKDAY: tuple(column), fc.WEEKEND: ((),) * fc.BINS_PER_DAY}
    return fc.Profile(since=AT - timedelta(days=since_days), bins=bins, error=error, load=load, judged_at=judged)


def steady(desired: int, now: datetime, since: float = 400) -> tuple[tuple[datetime, int], ...]:
    return tuple((now - timedelta(seconds=s), desired) for s in range(int(since) - 100, 0, -60) if s < 300)


def loaded(capacity: int, nodes: float, now: datetime = AT) -> Observation:
    """``capacity`` ready nodes serving a load that asks for ``nodes`` at the 75% CPU target."""
    return Observation(capacity, 75.0 * nodes / capacity, nodes * NODE, protected=0, sample_start=now)


@dataclass(frozen=True)
class Row:
    why: str
    obs: Observation
    history: History
    action: Action
    target: int
    reason: Reason
    standing: fc.Standing | None
    now: datetime = AT
    policy: ScalePolicy = POLICY


DIP = at(11, 50)
BEFORE_DIP = DIP - timedelta(seconds=60)
ROWS = [
    Row("a rise the history forecasts within the boot delay plus margin: out ahead, by at most a minute's step",
        loaded(4, 4), History(profile=profile()), Action.SCALE_OUT, 8, Reason.PREDICTED, fc.Standing.TRUSTED),
    Row("a minute later the step allows the whole forecast",
        loaded(8, 4), History(changes=(Change(AT - timedelta(seconds=61), 4, 8, predicted=True),), profile=profile()),
        Action.SCALE_OUT, 12, Reason.PREDICTED, fc.Standing.TRUSTED),
    Row("a rise further off than the boot delay plus margin is not acted on yet",
        loaded(4, 4, at(7, 50)), History(profile=profile()), Action.HOLD, 4, Reason.WITHIN_TOLERANCE,
        fc.Standing.TRUSTED, now=at(7, 50)),
    Row("history shorter than seven days: reactive",
        loaded(4, 4), History(profile=profile(since_days=6.9)), Action.HOLD, 4, Reason.WITHIN_TOLERANCE,
        fc.Standing.HISTORY_TOO_SHORT),
    Row("the forecast has been wrong lately (a day that breaks the pattern): reactive",
        loaded(4, 4), History(profile=profile(error=3.0, load=4.0)), Action.HOLD, 4, Reason.WITHIN_TOLERANCE,
        fc.Standing.WRONG_LATELY),
    Row("a bin of the horizon with nothing kept (a gap in past days): reactive",
        loaded(4, 4), History(profile=profile(lambda h: None if h >= 8 else 4.0)), Action.HOLD, 4,
        Reason.WITHIN_TOLERANCE, fc.Standing.NO_HISTORY_HERE),
    Row("forecast-only: the reactive decision acts (what it would have done is recorded beside it)",
        loaded(4, 4), History(profile=profile()), Action.HOLD, 4, Reason.WITHIN_TOLERANCE, fc.Standing.TRUSTED,
        policy=replace(POLICY, forecast=replace(ON, mode=fc.Mode.FORECAST))),
    Row("off: reactive, and nothing is forecast",
        loaded(4, 4), History(profile=profile()), Action.HOLD, 4, Reason.WITHIN_TOLERANCE, None,
        policy=replace(POLICY, forecast=replace(ON, mode=fc.Mode.OFF))),
    Row("a forecast within the tolerance of the capacity is not worth a change",
        loaded(4, 4), History(profile=profile(lambda h: 4.3)), Action.HOLD, 4, Reason.WITHIN_TOLERANCE,
        fc.Standing.TRUSTED),
    Row("the forecast never lifts a set above its maximum",
        loaded(18, 18), History(profile=profile(lambda h: 35.0 if h >= 8 else 18.0)), Action.SCALE_OUT, 20,
        Reason.PREDICTED, fc.Standing.TRUSTED),
    Row("Compute's throttle holds a predicted scale-out too",
        loaded(4, 4), History(changes=tuple(Change(AT - timedelta(seconds=s), 4, 4) for s in (10, 20, 30, 40)),
                              profile=profile()),
        Action.HOLD, 4, Reason.RATE_LIMITED, fc.Standing.TRUSTED),
    Row("lower load asks to scale in, but the forecast needs the nodes within the cooldown after the boot: hold",
        loaded(12, 6, DIP), History(recommendations=steady(6, DIP), since=DIP - timedelta(seconds=400),
                                    profile=profile(lambda h: 12.0, judged=BEFORE_DIP)),
        Action.HOLD, 12, Reason.PREDICTED_HOLD, fc.Standing.TRUSTED, now=DIP),
    Row("a scale-in stops at the forecast",
        loaded(12, 6, DIP), History(recommendations=steady(6, DIP), since=DIP - timedelta(seconds=400),
                                    profile=profile(lambda h: 9.0, judged=BEFORE_DIP)),
        Action.SCALE_IN, 9, Reason.SCALE_IN, fc.Standing.TRUSTED, now=DIP),
    Row("a forecast below the load never scales in: the reactive window decides",
        loaded(12, 12, DIP), History(recommendations=steady(12, DIP), since=DIP - timedelta(seconds=400),
                                     profile=profile(lambda h: 3.0, judged=BEFORE_DIP)),
        Action.HOLD, 12, Reason.WITHIN_TOLERANCE, fc.Standing.TRUSTED, now=DIP),
    Row("wrong lately, a scale-in the forecast would have stopped goes ahead",
        loaded(12, 6, DIP), History(recommendations=steady(6, DIP), since=DIP - timedelta(seconds=400),
                                    profile=profile(lambda h: 12.0, error=6.0, load=6.0, judged=BEFORE_DIP)),
        Action.SCALE_IN, 6, Reason.SCALE_IN, fc.Standing.WRONG_LATELY, now=DIP),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.why for r in ROWS])
def test_forecast_rule(row: Row) -> None:
    decision, _ = decide(row.obs, row.policy, row.history, row.now)
    assert (decision.action, decision.target, decision.reason) == (row.action, row.target, row.reason), (
        f"{row.why}: {decision.message}"
    )
    if row.standing is None:
        assert decision.forecast is None
    else:
        assert decision.forecast is not None and decision.forecast.standing is row.standing, decision.forecast


def test_forecast_only_records_what_it_would_have_done() -> None:
    policy = replace(POLICY, forecast=replace(ON, mode=fc.Mode.FORECAST))
    decision, history = decide(loaded(4, 4), policy, History(profile=profile()), AT)
    assert decision.forecast is not None
    assert (decision.forecast.would_target, decision.forecast.would_reason) == (8, Reason.PREDICTED)
    assert not decision.forecast.acted and decision.forecast.nodes == pytest.approx(12.0)
    assert history.changes == ()


def test_a_predicted_scale_out_is_stored_as_predicted_and_is_not_taken_for_a_burst() -> None:
    decision, history = decide(loaded(4, 4), POLICY, History(profile=profile()), AT)
    assert decision.forecast is not None and decision.forecast.acted
    assert history.changes[-1] == Change(AT, 4, 8, predicted=True)
    later = AT + timedelta(seconds=60)
    _, history = decide(loaded(8, 4, later), POLICY, history, later)
    assert history.burst_at is None, "load at the 4 it scaled out from ahead of a forecast is no burst"


# ---------------------------------------------------------------- the profile


def fold(p: fc.Profile, day: datetime, nodes: Callable[[float], float], hours: range = range(24)) -> fc.Profile:
    """Every minute of ``hours`` of ``day`` at ``nodes(hour)``, folded in."""
    for hour in hours:
        for minute in range(60):
            when = day.replace(hour=hour, minute=minute)
            p = fc.observe(p, ON, when, nodes(hour + minute / 60) * NODE, nodes(hour + minute / 60), NODE)
    return p


MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


def test_each_bin_keeps_the_mean_of_its_last_days_and_forecasts_their_median() -> None:
    p = fc.Profile()
    for day, level in enumerate((10.0, 12.0, 11.0, 30.0)):  # Monday to Thursday; Thursday breaks the pattern
        p = fold(p, MONDAY + timedelta(days=day), lambda h, level=level: level, range(9, 10))
    p = fold(p, MONDAY + timedelta(days=4), lambda h: 11.0, range(0, 1))  # closes Thursday's last bin
    assert p.kept(MONDAY.replace(hour=9, minute=30)) == (12 * NODE, 11 * NODE, 30 * NODE)
    assert p.tpm_at((MONDAY + timedelta(days=4)).replace(hour=9, minute=30)) == 12 * NODE, (
        "the median of the last three: one day that breaks the pattern does not move the forecast"
    )


def test_weekdays_and_weekends_are_kept_apart() -> None:
    p = fold(fc.Profile(), MONDAY + timedelta(days=5), lambda h: 2.0, range(9, 11))  # a Saturday
    assert p.tpm_at(MONDAY.replace(hour=9)) is None
    assert p.tpm_at((MONDAY + timedelta(days=6)).replace(hour=9)) == 2 * NODE


def test_a_minute_folded_twice_changes_nothing() -> None:
    p = fold(fc.Profile(), MONDAY, lambda h: 5.0, range(9, 10))
    again = fc.observe(p, ON, p.last_at or MONDAY, 99_999.0, 100.0, NODE)
    assert again == p


def test_a_rise_a_quarter_hour_late_is_no_error_but_a_holiday_is_and_trust_returns_when_right_again() -> None:
    known = profile(opening, since_days=8, error=0.0, load=4.0)
    late = fold(known, AT.replace(hour=7, minute=0), lambda h: opening(h - 0.25), range(7, 10))
    assert late.error == pytest.approx(0.0) and late.standing(ON, at(10, 0)) is fc.Standing.TRUSTED
    holiday = fold(known, AT.replace(hour=7, minute=0), lambda h: 4.0, range(7, 10))
    assert holiday.standing(ON, at(10, 0)) is fc.Standing.WRONG_LATELY
    evening = fold(holiday, AT, lambda h: 12.0, range(10, 14))
    assert evening.standing(ON, at(14, 0)) is fc.Standing.TRUSTED, evening.relative_error()


def test_the_profile_survives_the_stored_state() -> None:
    p = fold(fold(fc.Profile(), MONDAY, lambda h: 3.0 + h / 2), MONDAY + timedelta(days=5), lambda h: 1.0)
    history = History(changes=(Change(AT, 4, 8, predicted=True),), profile=p)
    assert history_from_json(history_to_json(history)) == history


# ---------------------------------------------------------------- invariants

observations = st.builds(
    Observation,
    capacity=st.integers(0, 30),
    cpu_percent=st.one_of(st.none(), st.floats(0, 100)),
    tpm=st.one_of(st.none(), st.floats(0, 30_000)),
    partial=st.booleans(),
    protected=st.one_of(st.none(), st.integers(0, 30)),
    sample_start=st.one_of(st.none(), st.integers(0, 300).map(lambda s: AT - timedelta(seconds=s))),
)
policies = st.builds(
    ScalePolicy,
    min_nodes=st.integers(0, 5),
    max_nodes=st.integers(5, 20),
    target_cpu=st.floats(30, 90),
    target_tpm_per_node=st.floats(100, 2000),
    tolerance=st.floats(0, 0.3),
    cooldown_seconds=st.sampled_from([0.0, 120.0, 600.0]),
    forecast=st.builds(fc.ForecastPolicy, mode=st.just(fc.Mode.ON), max_error=st.floats(0.05, 1.0)),
)
profiles = st.builds(
    lambda levels, since, error, load: profile(lambda h: levels[int(h * 4)], since, error, load),
    st.lists(st.one_of(st.none(), st.floats(0, 40)), min_size=fc.BINS_PER_DAY, max_size=fc.BINS_PER_DAY),
    st.floats(0, 20),
    st.floats(0, 20),
    st.floats(0, 20),
)
histories = st.builds(
    lambda recs, changes, p: History(
        recommendations=tuple((AT - timedelta(seconds=30 * i), r) for i, r in enumerate(recs)),
        changes=tuple(Change(AT - timedelta(seconds=s), b, a, predicted=pr) for s, b, a, pr in sorted(changes)),
        since=AT - timedelta(seconds=2000),
        profile=p,
    ),
    st.lists(st.integers(0, 40), max_size=6),
    st.lists(st.tuples(st.integers(1, 900), st.integers(0, 30), st.integers(0, 30), st.booleans()), max_size=5),
    profiles,
)


def _off(policy: ScalePolicy) -> ScalePolicy:
    return replace(policy, forecast=replace(policy.forecast, mode=fc.Mode.OFF))


@settings(max_examples=400, deadline=None)
@given(observations, policies, histories)
def test_the_forecast_never_scales_in_nor_leaves_the_bounds_nor_lowers_the_reactive_target(
    obs: Observation, policy: ScalePolicy, history: History
) -> None:
    predicted, _ = decide(obs, policy, history, AT)
    reactive, _ = decide(obs, _off(policy), history, AT)
    assert predicted.target >= reactive.target, (predicted, reactive)
    if predicted.action is Action.SCALE_IN:
        assert reactive.action is Action.SCALE_IN, "a scale-in is only ever the reactive policy's"
    if predicted.changes and policy.floor <= obs.capacity <= policy.max_nodes:
        assert policy.floor <= predicted.target <= policy.max_nodes


@settings(max_examples=400, deadline=None)
@given(observations, policies, histories)
def test_once_the_forecast_is_not_trusted_the_decision_is_the_reactive_one(
    obs: Observation, policy: ScalePolicy, history: History
) -> None:
    """Wrong lately (or too little history): no capacity held that the reactive policy alone would remove."""
    predicted, _ = decide(obs, policy, history, AT)
    reactive, _ = decide(obs, _off(policy), history, AT)
    if predicted.forecast is not None and predicted.forecast.standing is not fc.Standing.TRUSTED:
        assert (predicted.action, predicted.target, predicted.reason) == (
            reactive.action, reactive.target, reactive.reason,
        )  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 30), min_size=60, max_size=60), profiles, st.integers(1, 20))
def test_ticks_every_ten_seconds_never_write_more_than_compute_allows(
    loads: list[float], p: fc.Profile, start: int
) -> None:
    """Ten minutes of ticks every 10 s under any load and any trusted-or-not forecast: at most four
    capacity writes in any minute, each within the bounds."""
    policy = replace(POLICY, cooldown_seconds=0, scale_in_window_seconds=0)
    capacity, history, writes = start, History(profile=p), []
    for i, nodes in enumerate(loads):
        now = AT + timedelta(seconds=10 * i)
        obs = Observation(capacity, min(100.0, 75.0 * nodes / capacity), nodes * NODE, protected=0)
        decision, history = decide(obs, policy, history, now)
        if decision.changes:
            writes.append(now)
            if policy.floor <= capacity <= policy.max_nodes:
                assert policy.floor <= decision.target <= policy.max_nodes
            capacity = decision.target
    for w in writes:
        assert sum(1 for x in writes if timedelta(0) <= x - w < timedelta(seconds=60)) <= policy.max_updates_per_minute


def test_idle_minutes_teach_nothing_about_what_a_node_carries_and_a_forecast_stays_a_finite_number_of_nodes() -> None:
    """Minutes where the CPU asked for nodes while almost no transactions ran once taught the profile a
    per-node rate near zero, and a forecast divided by it overflowed the decision (hypothesis found it)."""
    learned = replace(profile(), tpm_per_node=600.0)
    after = fc.observe(learned, ON, AT, 1e-300, 3.0, NODE)
    assert after.tpm_per_node == 600.0, "a minute carrying ~0 transactions on 3 asked nodes changes nothing"
    broken = replace(profile(lambda h: 12.0), tpm_per_node=5e-324)  # as a state written before could hold
    decision, _ = decide(loaded(4, 4), POLICY, History(profile=broken), AT)
    assert POLICY.floor <= decision.target <= POLICY.max_nodes
