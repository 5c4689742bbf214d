"""Telemetry: one trace per onboarding across its queue steps, counters by reason, gauges from snapshots.

The real handlers of ``functions/onboarding.py`` run on the fakes' onboarding world; the
OpenTelemetry SDK records into memory (an in-memory span exporter and metric reader).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from azure.functions.queue import QueueMessage
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import functions.consortium as consortium_handlers
import functions.onboarding as handlers
from functions import coordination, telemetry
from shared.adapters import telemetry as setup
from shared.services import onboarding as ob
from tests.support.onboarding_world import Consortium, request
from tools.funchost.invoke import Out

SPANS = InMemorySpanExporter()
READER = InMemoryMetricReader()
HANDLERS = {
    ob.REQUESTS: handlers.onboarding_intake, ob.APPROVALS: handlers.onboarding_decision,
    "onboarding-keys": handlers.onboarding_keys, "onboarding-provision": handlers.onboarding_provision,
    "onboarding-propose": handlers.onboarding_propose, "onboarding-activate": handlers.onboarding_activate,
}  # fmt: skip
#: Each step's queue output binding: where its next step goes.
NEXT = {ob.REQUESTS: handlers.KEYS, handlers.KEYS: handlers.PROVISION,
        handlers.PROVISION: handlers.PROPOSE, handlers.PROPOSE: handlers.ACTIVATE}  # fmt: skip
MEMBER = "bank-a"


class World:
    """bank-a's deployment (a founder) on the fakes, as the handlers see it through ``platform()``."""

    def __init__(self) -> None:
        self.consortium = Consortium(("bank-a", "bank-b"))
        self.consortium.found("bank-a", "bank-b")
        self.deployment = self.consortium.deployments[MEMBER]
        self.service = self.deployment.service
        self.queues = self.deployment.queues

    def pending_work(self) -> list[Any]:
        return self.consortium.work(MEMBER)

    def status(self, member_id: str) -> str:
        return self.deployment.status()

    def record(self, member_id: str) -> dict[str, Any]:
        record = self.service.record()
        assert record is not None
        return record


@pytest.fixture(scope="module", autouse=True)
def sdk() -> None:
    setup.configure({"TELEMETRY_EXPORTER": "none"})  # this process exports nowhere; the test reads memory
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    world = World()
    coordinating = SimpleNamespace(ensure=lambda: SimpleNamespace(active=lambda: True))  # the only deployment
    fake_platform = SimpleNamespace(onboarding=world.service, consortium=world.service.consortium,
                                    coordinator=coordinating, settings=SimpleNamespace(values={}))  # fmt: skip
    for module in (handlers, telemetry, consortium_handlers, coordination):
        monkeypatch.setattr(module, "platform", lambda: fake_platform)
    SPANS.clear()
    yield world


def deliver_all(world: World) -> None:
    """Hand every queued work message to its real trigger function, like the host does."""
    for n in range(200):
        work = world.pending_work()
        if not work:
            return
        sent = work[0]
        world.queues.sent.remove(sent)
        message = QueueMessage(id=f"m{n}", body=sent.body.encode(), dequeue_count=1)
        if sent.queue not in NEXT:
            HANDLERS[sent.queue](message)  # type: ignore[no-untyped-call]
            continue
        next_step: Out[list[str]] = Out()
        HANDLERS[sent.queue](message, next_step)  # type: ignore[no-untyped-call]
        for body in next_step.get() or []:  # what the host sends for the queue output binding
            world.queues.send(NEXT[sent.queue], body)
    raise AssertionError("still busy after 200 deliveries")


def counted(name: str) -> list[tuple[dict[str, Any], float]]:
    data = READER.get_metrics_data()
    found = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found += [(dict(p.attributes or {}), p.value) for p in metric.data.data_points]
    return found


def test_every_step_of_one_onboarding_is_a_span_of_one_trace(world: World) -> None:
    world.queues.send(ob.REQUESTS, request("bank-a"))
    deliver_all(world)
    assert world.status("bank-a") == "active"
    spans = [s for s in SPANS.get_finished_spans() if s.attributes and s.attributes.get("consortium.request_id")]
    names = [s.name for s in spans]  # provision appears once per poll while ARM works
    assert names[0] == "onboarding-requests" and names[-1] == "onboarding-activate"
    assert set(names) == {
        "onboarding-requests", "onboarding-keys", "onboarding-provision", "onboarding-propose", "onboarding-activate",
    }  # fmt: skip
    assert {s.context.trace_id for s in spans} == {telemetry.trace_id_of("req-bank-a-001")}
    assert spans[0].attributes is not None and spans[0].attributes["consortium.member_id"] == "bank-a"


def test_two_requests_are_two_traces(world: World) -> None:
    world.queues.send(ob.REQUESTS, request("bank-a"))
    world.queues.send(ob.REQUESTS, request("bank-a", "req-bank-a-002"))  # refused: one is under way
    deliver_all(world)
    traced = {
        s.context.trace_id
        for s in SPANS.get_finished_spans()
        if s.attributes and s.attributes.get("consortium.request_id")
    }
    assert traced == {telemetry.trace_id_of("req-bank-a-001"), telemetry.trace_id_of("req-bank-a-002")}


def test_rejections_are_counted_by_queue_and_reason(world: World) -> None:
    world.queues.send(ob.REQUESTS, json.dumps({"request_id": "req-x", "member_id": "bank-a", "surprise": 1}))
    world.queues.send(ob.REQUESTS, "not json at all")
    deliver_all(world)
    rejections = {(a["queue"], a["reason"]): v for a, v in counted("consortium.rejections")}
    assert rejections[(ob.REQUESTS, "schema")] >= 1 and rejections[(ob.REQUESTS, "not_json")] >= 1


def test_gauges_report_the_latest_snapshot() -> None:
    telemetry.set_gauge("consortium.nodes.available", {telemetry.attrs(member_id="bank-a"): 3.0})
    telemetry.set_gauge("consortium.nodes.available", {telemetry.attrs(member_id="bank-a"): 2.0})
    assert counted("consortium.nodes.available") == [({"member_id": "bank-a"}, 2.0)]


def test_the_exporter_is_chosen_from_the_settings() -> None:
    assert setup.choose({}) == "none"
    assert setup.choose({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}) == "azure_monitor"
    assert setup.choose({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318"}) == "otlp"
    assert setup.choose({"TELEMETRY_EXPORTER": "console", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}) == "console"
    with pytest.raises(ValueError, match="TELEMETRY_EXPORTER='loud' must be one of"):
        setup.choose({"TELEMETRY_EXPORTER": "loud"})


def test_no_span_or_log_field_holds_key_material(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    world.queues.send(ob.REQUESTS, request("bank-a"))
    deliver_all(world)
    public = world.record("bank-a")["keys"]["tls"]["public_jwk"]
    text = json.dumps([dict(s.attributes or {}) for s in SPANS.get_finished_spans()]) + caplog.text
    text += json.dumps([getattr(r, "fields", {}) for r in caplog.records], default=str)
    assert public["x"] not in text and "PRIVATE KEY" not in text and '"d":' not in text
