"""The autoscale tick on the fakes: what the scale sets, the state and the events hold after a tick."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.decisions import forecast as fc
from shared.decisions.autoscale import History, Reason, ScalePolicy
from shared.errors import FencedError, TransientError
from shared.fakes.clock import FakeClock
from shared.fakes.leases import FakeLeaseStore
from shared.fakes.metrics import FakeMetricsSource
from shared.fakes.queues import FakeQueues
from shared.fakes.scalesets import FakeScaleSets
from shared.fakes.state import FakeStateStore
from shared.ports.metrics import MetricPoint, MetricsBatch, MetricSeries
from shared.ports.scalesets import ScaleSet, ScaleSetSpec
from shared.services.autoscale import CPU, STATE_PATH, TPM, Autoscaler, forecast_error, history_to_json, observe
from shared.services.dashboard import scaling_view
from shared.services.leadership import COORDINATOR
from shared.settings import TEMPLATE


class FlakyMetrics(FakeMetricsSource):
    """Throttles every call whose first resource id is in ``throttled``."""

    def __init__(self) -> None:
        super().__init__()
        self.throttled: set[str] = set()

    def query(self, resource_ids, metric_names, **kw):  # type: ignore[no-untyped-def]
        if resource_ids[0] in self.throttled:
            self.calls += 1
            raise TransientError("429 Too Many Requests", retry_after=1)
        return super().query(resource_ids, metric_names, **kw)


class Fleet:
    def __init__(self, members: int = 2, capacity: int = 2, max_nodes: int = 8):
        self.clock = FakeClock()
        self.state, self.sets, self.queues = FakeStateStore(), FakeScaleSets(), FakeQueues()
        self.metrics = FlakyMetrics()
        self.leases = FakeLeaseStore(self.clock.now)
        grant = self.leases.try_acquire(COORDINATOR, "test/1", 15)
        assert grant is not None
        self.token = grant.fencing_token
        self.scaler = Autoscaler(
            state=self.state, scalesets=self.sets, metrics=self.metrics, queues=self.queues, leases=self.leases,
            clock=self.clock, defaults=ScalePolicy(scale_in_window_seconds=60, cooldown_seconds=30),
        )  # fmt: skip
        self.ids: dict[str, str] = {}
        for n in range(members):
            mid = f"bank-{n:04d}"
            self.state.create(f"members/{mid}.json", {"member_id": mid, "status": "active",
                                                      "scale": {"min_nodes": 1, "max_nodes": max_nodes}})  # fmt: skip
            spec = ScaleSetSpec.from_template(TEMPLATE, name=f"vmss-{mid}", location="westeurope", capacity=capacity,
                                              tags={"member_id": mid})  # fmt: skip
            self.sets.poll(self.sets.begin_create_or_update(spec))
            self.ids[mid] = self.sets.sets[f"vmss-{mid}"].id

    def load(self, mid: str, cpu: float | None, tpm: float | None) -> None:
        for metric, value in ((CPU, cpu), (TPM, tpm)):
            if value is None:
                self.metrics.values.pop((self.ids[mid], metric), None)
            else:
                self.metrics.set(self.ids[mid], metric, value)

    def capacity(self, mid: str) -> int:
        return self.sets.sets[f"vmss-{mid}"].capacity

    def tick(self, seconds: float = 10):  # type: ignore[no-untyped-def]
        self.clock.advance(seconds)
        return self.scaler.tick(self.token)


def test_a_saturated_member_is_scaled_out_and_the_change_is_announced_and_recorded() -> None:
    fleet = Fleet()
    fleet.load("bank-0000", 99, 2000)
    fleet.load("bank-0001", 70, 1500)
    tick = fleet.tick()
    assert fleet.capacity("bank-0000") == 4 and fleet.capacity("bank-0001") == 2
    assert tick.applied == {"vmss-bank-0000": 4}
    [event] = [e for e in fleet.queues.events() if e["type"] == "scale.changed"]
    assert (event["member_id"], event["before"], event["after"], event["reason"]) == ("bank-0000", 2, 4, "saturated")
    stored = fleet.state.read(STATE_PATH)
    assert stored is not None and stored.body["fencing_token"] == fleet.token
    last = stored.body["last"]["vmss-bank-0000"]
    assert last["reason"] == "saturated" and last["inputs"]["cpu_percent"] == 99 and last["applied"]
    assert stored.body["last"]["vmss-bank-0001"]["reason"] == "within_tolerance"


def test_a_drop_holds_through_the_window_then_scales_in_once() -> None:
    fleet = Fleet(members=1, capacity=6)
    fleet.load("bank-0000", 20, 1000)  # asks for 2
    reasons = []
    for _ in range(9):
        tick = fleet.tick(10)
        reasons.append(tick.decisions["vmss-bank-0000"].reason)
    assert Reason.STABILIZING in reasons and reasons.count(Reason.SCALE_IN) == 1, reasons
    assert fleet.capacity("bank-0000") == 2


def test_a_burst_is_stored_between_ticks_and_lengthens_the_scale_in_window() -> None:
    fleet = Fleet(members=1, capacity=2)
    fleet.scaler.defaults = replace(fleet.scaler.defaults, transient_window_seconds=120, transient_memory_seconds=600)
    fleet.load("bank-0000", 99, 2000)
    fleet.tick(10)
    assert fleet.capacity("bank-0000") == 4
    fleet.load("bank-0000", 20, 900)  # back to what 2 nodes carry, 10 s after the scale-out: a burst
    fleet.tick(10)
    stored = fleet.state.read(STATE_PATH)
    assert stored is not None
    assert stored.body["sets"]["vmss-bank-0000"]["burst_at"], stored.body["sets"]
    held = [fleet.tick(10).decisions["vmss-bank-0000"] for _ in range(10)]  # 100 s: past 60 s, not yet 120 s
    assert fleet.capacity("bank-0000") == 4, [d.message for d in held]
    assert "came and went" in held[-1].message
    for _ in range(4):
        fleet.tick(10)
    assert fleet.capacity("bank-0000") == 2, "the longer window has passed"


def test_missing_metrics_hold_and_one_missing_metric_never_scales_in() -> None:
    fleet = Fleet(capacity=6)
    fleet.load("bank-0001", 10, None)
    for _ in range(12):
        tick = fleet.tick(10)
    assert tick.decisions["vmss-bank-0000"].reason is Reason.MISSING_DATA
    assert tick.decisions["vmss-bank-0001"].reason is Reason.PARTIAL_DATA
    assert fleet.capacity("bank-0000") == 6 and fleet.capacity("bank-0001") == 6


def test_a_throttled_metrics_batch_holds_its_scale_sets_and_decides_the_rest() -> None:
    fleet = Fleet(members=60, capacity=6)
    for mid in fleet.ids:
        fleet.load(mid, 10, 500)
    fleet.metrics.throttled.add(fleet.ids["bank-0000"])  # the first batch of 50
    for _ in range(12):
        tick = fleet.tick(10)
    assert {fleet.capacity(f"bank-{n:04d}") for n in range(50)} == {6}
    assert {fleet.capacity(f"bank-{n:04d}") for n in range(50, 60)} == {1}
    assert tick.decisions["vmss-bank-0000"].reason is Reason.MISSING_DATA


def test_a_thousand_scale_sets_cost_twenty_metrics_calls_and_one_listing() -> None:
    fleet = Fleet(members=1000)
    for mid in fleet.ids:
        fleet.load(mid, 75, 1700)
    tick = fleet.tick()
    assert (tick.metrics_calls, fleet.metrics.calls, tick.arm_reads) == (20, 20, 1)
    assert len(tick.decisions) == 1000 and not tick.applied


def test_a_replayed_tick_changes_nothing() -> None:
    fleet = Fleet()
    fleet.load("bank-0000", 99, 2000)
    fleet.tick()
    before = fleet.capacity("bank-0000")
    events = len(fleet.queues.events())
    replay = fleet.scaler.tick(fleet.token)  # the same instant again
    assert fleet.capacity("bank-0000") == before and not replay.applied
    assert len(fleet.queues.events()) == events


def test_a_protected_instance_is_never_scaled_in() -> None:
    fleet = Fleet(members=1, capacity=4)
    for instance in fleet.sets.instances["vmss-bank-0000"][:3]:
        fleet.sets.set_protection("vmss-bank-0000", instance.instance_id, protect_from_scale_in=True)
    fleet.load("bank-0000", 5, 10)
    for _ in range(12):
        tick = fleet.tick(10)
    assert fleet.capacity("bank-0000") == 3 and tick.arm_reads >= 1


def test_a_deposed_coordinator_is_refused_before_it_touches_anything() -> None:
    fleet = Fleet()
    fleet.load("bank-0000", 99, 2000)
    fleet.clock.advance(16)
    assert fleet.leases.try_acquire(COORDINATOR, "test/2", 15) is not None
    with pytest.raises(FencedError):
        fleet.scaler.tick(fleet.token)
    assert fleet.capacity("bank-0000") == 2 and fleet.state.read(STATE_PATH) is None


def test_member_bounds_come_from_the_record() -> None:
    fleet = Fleet(members=1, capacity=2, max_nodes=3)
    fleet.load("bank-0000", 99, 2000)
    fleet.tick()
    assert fleet.capacity("bank-0000") == 3
    decision = fleet.tick(timedelta(minutes=3).total_seconds()).decisions["vmss-bank-0000"]
    assert decision.reason is Reason.AT_MAX
    assert json.loads(fleet.queues.sent[0].body)["type"] == "scale.changed"


def test_a_fleet_wide_drop_lists_instances_of_at_most_fifty_sets_a_tick_taking_turns() -> None:
    fleet = Fleet(members=120, capacity=6)
    for mid in fleet.ids:
        fleet.load(mid, 10, 500)
    reads = []
    for _ in range(14):
        reads.append(fleet.tick(10).arm_reads)
    assert max(reads) <= 51
    assert {fleet.capacity(mid) for mid in fleet.ids} == {1}


def test_a_complete_minute_is_read_against_the_nodes_that_served_it_a_minute_under_way_against_now() -> None:
    now = datetime(2026, 11, 25, 12, 0, 30, tzinfo=UTC)
    vmss = ScaleSet("/subscriptions/s/vmss-a", "vmss-a", "westeurope", 4, '"1"', "Succeeded")

    def batch(start: datetime) -> MetricsBatch:
        earlier = start - timedelta(minutes=1)
        series = [
            MetricSeries(vmss.id, m, (MetricPoint(start, v), MetricPoint(earlier, 1.0)))
            for m, v in ((CPU, 60.0), (TPM, 2000.0))
        ]
        return MetricsBatch(tuple(series), ())

    complete = observe(batch(now - timedelta(seconds=90)), vmss, now)
    assert (complete.cpu_percent, complete.tpm, complete.capacity) == (60.0, 2000.0, 4)
    assert complete.sample_start == now - timedelta(seconds=90) and complete.sample_seconds == 60
    under_way = observe(batch(now - timedelta(seconds=30)), vmss, now)
    assert under_way.sample_start is None and under_way.cpu_percent == 60.0
    stale = observe(batch(now - timedelta(minutes=4)), vmss, now)
    assert stale.cpu_percent is None and stale.partial


def _trusted_history(now: datetime, nodes: float) -> dict:  # type: ignore[type-arg]
    """A stored history whose profile has a week of days all asking for ``nodes`` and has been right."""
    kept = ((round(nodes * 850),) * fc.DAYS_KEPT,) * fc.BINS_PER_DAY
    profile = fc.Profile(since=now - timedelta(days=8), bins={k: kept for k in fc.KINDS}, error=0.1, load=8.0,
                         judged_at=now)  # fmt: skip
    return history_to_json(History(profile=profile))


@pytest.mark.parametrize("mode", [fc.Mode.FORECAST, fc.Mode.ON])
def test_the_forecast_is_stored_with_each_decision_and_acted_on_only_when_on(mode: fc.Mode) -> None:
    fleet = Fleet(members=1, capacity=2)
    fleet.scaler.defaults = replace(fleet.scaler.defaults, forecast=fc.ForecastPolicy(mode=mode))
    name = "vmss-bank-0000"
    fleet.state.create(STATE_PATH, {"sets": {name: _trusted_history(fleet.clock.now(), 12)}})
    fleet.load("bank-0000", 70, 1600)  # within the tolerance of 2 nodes: the reactive policy holds
    fleet.tick()
    body = fleet.state.read(STATE_PATH).body
    last = body["last"][name]
    assert last["forecast"]["would_target"] == 6 and last["forecast"]["would_reason"] == "predicted"
    assert last["forecast"]["standing"] == "trusted" and last["forecast"]["error_nodes"] is not None
    assert body["sets"][name]["profile"]["bins"]["weekday"][0] == [10200] * fc.DAYS_KEPT, "the profile is kept"
    if mode is fc.Mode.FORECAST:
        assert fleet.capacity("bank-0000") == 2 and last["reason"] == "within_tolerance"
        assert not last["forecast"]["acted"]
    else:
        assert fleet.capacity("bank-0000") == 6 and last["reason"] == "predicted" and last["forecast"]["acted"]
        assert body["sets"][name]["changes"][-1]["predicted"] is True
    shown = forecast_error(last)  # what status shows under autoscale.last.<set>.forecast_error
    assert shown is not None and shown["standing"] == "trusted" and shown["nodes"] == last["forecast"]["error_nodes"]
    assert scaling_view(fleet.state)["sets"][name]["forecast_error"] == shown, "the dashboard shows the same"
