"""An in-memory MetricsSource: tests set each resource's values; unset resources come back missing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.ports.metrics import MAX_RESOURCES_PER_BATCH, MetricPoint, MetricsBatch, MetricSeries


class FakeMetricsSource:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str], float] = {}
        self.calls: int = 0

    def set(self, resource_id: str, metric: str, value: float) -> None:
        self.values[(resource_id, metric)] = value

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
        self.calls += 1
        end = (end or datetime.now(UTC)).replace(second=0, microsecond=0)
        steps = max(1, int(window / grain))
        series, seen = [], set()
        for rid in resource_ids:
            for metric in metric_names:
                if (rid, metric) in self.values:
                    seen.add(rid)
                    points = tuple(
                        MetricPoint(end - grain * (steps - k), self.values[(rid, metric)]) for k in range(steps)
                    )
                    series.append(MetricSeries(rid, metric, points))
        return MetricsBatch(tuple(series), tuple(r for r in resource_ids if r not in seen))
