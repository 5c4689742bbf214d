"""The app's telemetry in OpenTelemetry terms: one trace per onboarding, counters and gauges.

- **Traces.** Every step of one onboarding (intake, votes, keys, provision, publish, activate) is a
  span in the same trace: the trace id is derived from the request id, so the steps, which run as
  separate queue messages, possibly on different instances, line up under one trace without any
  context travelling in the messages (their schema is the contract's).
- **Counters.** Scale decisions (by reason, applied or not), key rotation actions (by kind and
  action), rejections (by queue and reason), poison messages (by queue).
- **Gauges.** Available nodes and transactions per minute per member and active members (from the
  autoscaler's last tick), whether this instance is the coordinator, and each key's age in days
  (from the last rotation run). They read a snapshot this process keeps; nothing is read from
  storage when the exporter collects.
The SDK and the exporter are installed by ``shared.adapters.telemetry.configure`` (Application
Insights where ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set); without it these are no-ops.
Attributes carry ids, reasons and counts, never key material.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from shared.adapters import telemetry as setup
from shared.bootstrap import platform

_tracer = trace.get_tracer("consortium")
_meter = metrics.get_meter("consortium")
_lock = threading.Lock()
#: What the gauges report, kept by the handlers that learn it: {gauge: {attributes tuple: value}}.
SNAPSHOT: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}

SCALE_DECISIONS = _meter.create_counter(
    "consortium.scale.decisions", unit="{decision}", description="Autoscale decisions, by reason and applied"
)
KEY_ROTATIONS = _meter.create_counter(
    "consortium.key.rotations", unit="{action}", description="Key rotation actions, by kind and action"
)
REJECTIONS = _meter.create_counter(
    "consortium.rejections", unit="{message}", description="Messages rejected as bad input, by queue and reason"
)
POISON = _meter.create_counter(
    "consortium.poison.messages", unit="{message}", description="Messages moved to a poison queue, by queue"
)


def _observe(name: str) -> Any:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        with _lock:
            values = dict(SNAPSHOT.get(name, {}))
        return [Observation(value, dict(attributes)) for attributes, value in values.items()]

    return callback


for _name, _unit, _description in (
    ("consortium.nodes.available", "{node}", "Nodes serving, per member"),
    ("consortium.transactions_per_minute", "{transaction}/min", "Transactions per minute, per member"),
    ("consortium.members", "{member}", "Active members"),
    ("consortium.coordinator", "1", "1 on the instance that holds the coordinator role, else 0"),
    ("consortium.key.age_days", "d", "Age of each key since it became current"),
):
    _meter.create_observable_gauge(_name, callbacks=[_observe(_name)], unit=_unit, description=_description)


def ensure_configured() -> str:
    """Install the exporter chosen by the app's settings, once per process (on the first trigger)."""
    return setup.configure(platform().settings.values)


def set_gauge(name: str, values: dict[tuple[tuple[str, str], ...], float]) -> None:
    """Replace what gauge ``name`` reports (attributes as sorted pairs → value)."""
    with _lock:
        SNAPSHOT[name] = dict(values)


def trace_id_of(request_id: str) -> int:
    """The trace id of one onboarding: 128 bits of the request id's SHA-256 (never 0)."""
    return int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:16], "big") or 1


@contextlib.contextmanager
def onboarding_span(name: str, request_id: str | None, **attributes: Any) -> Iterator[trace.Span]:
    """A span for one step; all steps of one request id share a trace."""
    ensure_configured()
    context = None
    if request_id:
        parent = SpanContext(
            trace_id=trace_id_of(request_id),
            span_id=int.from_bytes(hashlib.sha256(f"root:{request_id}".encode()).digest()[:8], "big") or 1,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        context = trace.set_span_in_context(NonRecordingSpan(parent))
    clean = {k: v for k, v in attributes.items() if v is not None}
    if request_id:
        clean["consortium.request_id"] = request_id
    with _tracer.start_as_current_span(name, context=context, attributes=clean) as span:
        yield span


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span for a timer's work (a tick, a rotation run)."""
    ensure_configured()
    with _tracer.start_as_current_span(name, attributes={k: v for k, v in attributes.items() if v is not None}) as s:
        yield s


def attrs(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs.items()))
