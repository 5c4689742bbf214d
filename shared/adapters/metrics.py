"""The MetricsSource port over the Monitor metrics batch API (azure-monitor-querymetrics)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from azure.monitor.querymetrics import MetricsClient

from shared.adapters import sdk_models
from shared.adapters.azure_common import client_options, credential, translate
from shared.ports.metrics import MAX_RESOURCES_PER_BATCH, MetricPoint, MetricsBatch, MetricSeries
from shared.settings import Settings

sdk_models.prepare(*sdk_models.METRICS)  # before threads build its models

NAMESPACE = "microsoft.compute/virtualmachinescalesets"


class MonitorMetrics:
    def __init__(self, client: MetricsClient, namespace: str = NAMESPACE):
        self.client, self.namespace = client, namespace

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitorMetrics:
        client = MetricsClient(
            settings.text("AZURE_METRICS_ENDPOINT"), credential(settings), **client_options(settings, "metrics")
        )
        return cls(client)

    def query(
        self,
        resource_ids: list[str],
        metric_names: list[str],
        *,
        window: timedelta,
        grain: timedelta,
        aggregation: str,
        end: datetime | None = None,
    ) -> MetricsBatch:
        if not 0 < len(resource_ids) <= MAX_RESOURCES_PER_BATCH:
            raise ValueError(
                f"a metrics batch takes 1 to {MAX_RESOURCES_PER_BATCH} resource ids, got {len(resource_ids)}"
            )
        end = end or datetime.now(UTC)
        try:
            results = self.client.query_resources(
                resource_ids=resource_ids, metric_namespace=self.namespace, metric_names=metric_names,
                timespan=(end - window, end), granularity=grain, aggregations=[aggregation],
            )  # fmt: skip
        except Exception as e:
            raise translate(e, f"metrics for {len(resource_ids)} resource(s)") from e
        series: list[MetricSeries] = []
        seen: set[str] = set()
        for resource_id, result in zip(resource_ids, results, strict=False):
            for metric in result.metrics:
                points = tuple(
                    MetricPoint(v.timestamp, getattr(v, aggregation.lower(), None))
                    for ts in metric.timeseries
                    for v in ts.data
                )
                if points:
                    seen.add(resource_id)
                    series.append(MetricSeries(resource_id, str(metric.name), points))
        missing = tuple(r for r in resource_ids if r not in seen)
        return MetricsBatch(tuple(series), missing)
