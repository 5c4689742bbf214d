"""Azure Monitor metrics for many resources at once (the metrics batch API).

One call reads one or more metrics for up to 50 resources of the same subscription, region and
type. A resource the service returned nothing for is reported in ``missing`` rather than silently
dropped, so the autoscale policy can refuse to scale in on partial data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

MAX_RESOURCES_PER_BATCH = 50


@dataclass(frozen=True)
class MetricPoint:
    timestamp: datetime
    value: float | None


@dataclass(frozen=True)
class MetricSeries:
    resource_id: str
    metric: str
    points: tuple[MetricPoint, ...]


@dataclass(frozen=True)
class MetricsBatch:
    series: tuple[MetricSeries, ...]
    #: Resource ids asked for that came back with no data at all.
    missing: tuple[str, ...]

    @property
    def partial(self) -> bool:
        return bool(self.missing)


class MetricsSource(Protocol):
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
        """One batch call; at most ``MAX_RESOURCES_PER_BATCH`` resource ids."""
        ...
