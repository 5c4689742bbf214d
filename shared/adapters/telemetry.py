"""Where telemetry goes: Application Insights in Azure, OTLP or the console locally, or nowhere.

``configure`` installs the OpenTelemetry SDK once per process, chosen by ``TELEMETRY_EXPORTER``:
``auto`` (the default) exports to Application Insights through azure-monitor-opentelemetry when
``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (the Bicep sets it, with Entra authentication),
else over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, else nothing; ``console`` prints
spans and metrics to stderr; ``otlp`` and ``azure_monitor`` force those; ``none`` installs nothing,
and the instruments stay the OpenTelemetry API's no-ops. Only this module imports the SDK and the
Azure exporter; the trigger layer speaks the OpenTelemetry API.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

EXPORTERS = ("auto", "azure_monitor", "otlp", "console", "none")
SERVICE_NAME = "consortium-control-plane"
_lock = threading.Lock()
_configured: list[str] = []


def choose(values: Mapping[str, str]) -> str:
    """The exporter ``values`` ask for; ValueError naming the setting and the rule when it is unknown."""
    wanted = (values.get("TELEMETRY_EXPORTER") or "auto").strip().lower()
    if wanted not in EXPORTERS:
        raise ValueError(f"setting TELEMETRY_EXPORTER={wanted!r} must be one of {', '.join(EXPORTERS)}")
    if wanted != "auto":
        return wanted
    if values.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        return "azure_monitor"
    if values.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return "otlp"
    return "none"


def configure(values: Mapping[str, str]) -> str:
    """Install the SDK for this process once; returns the exporter in use."""
    with _lock:
        if _configured:
            return _configured[0]
        exporter = choose(values)
        if exporter == "azure_monitor":
            from azure.monitor.opentelemetry import configure_azure_monitor

            configure_azure_monitor(
                connection_string=values.get("APPLICATIONINSIGHTS_CONNECTION_STRING"),
                resource=_resource(values),
                logger_name="consortium",  # our structured logs, not every library's
            )
        elif exporter in ("otlp", "console"):
            _install_sdk(exporter, values)
        _configured.append(exporter)
        return exporter


def _resource(values: Mapping[str, str]):  # type: ignore[no-untyped-def]
    from opentelemetry.sdk.resources import Resource

    return Resource.create(
        {"service.name": SERVICE_NAME, "service.instance.id": values.get("CONSORTIUM_DEPLOYMENT", "default")}
    )


def _install_sdk(exporter: str, values: Mapping[str, str]) -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        MetricExporter,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    span_exporter: SpanExporter
    metric_exporter: MetricExporter
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter, metric_exporter = OTLPSpanExporter(), OTLPMetricExporter()  # OTEL_EXPORTER_OTLP_* settings
    else:
        span_exporter, metric_exporter = ConsoleSpanExporter(), ConsoleMetricExporter()
    resource = _resource(values)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=60_000)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
