"""The MetricsSource contract: the fake and the metrics batch API (emulator, real SDK) agree."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from shared.errors import TransientError
from shared.ports.metrics import MetricsSource
from shared.ports.scalesets import ScaleSetSpec

CPU, TPM = "Percentage CPU", "TransactionsPerMinute"


def arrange(backend: str, metrics: MetricsSource, request: pytest.FixtureRequest, tpm: float) -> str:
    """A scale set with load; returns its resource id."""
    name = f"vmss-m{uuid.uuid4().hex[:10]}"
    if backend == "fake":
        rid = f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/{name}"
        metrics.set(rid, CPU, 42.0)  # type: ignore[attr-defined]
        metrics.set(rid, TPM, tpm)  # type: ignore[attr-defined]
        return rid
    from shared.adapters.compute import ArmScaleSets
    from tools.harness.stack import admin

    scalesets = ArmScaleSets.from_settings(request.getfixturevalue("backend_settings"))
    scalesets.begin_create_or_update(ScaleSetSpec(name, "westeurope", 2, "Standard_D2s_v5", "a:b:c:d", "", "", "", ""))
    admin(request.getfixturevalue("emulator_instance"), "PUT", f"/_admin/load/{name}", {"tpm": tpm})
    time.sleep(0.05)
    found = scalesets.get(name)
    assert found is not None
    return found.id


def test_a_batch_returns_every_metric_for_a_resource_with_data(
    backend: str, metrics: MetricsSource, request: pytest.FixtureRequest
) -> None:
    rid = arrange(backend, metrics, request, tpm=500)
    batch = metrics.query(
        [rid], [CPU, TPM], window=timedelta(minutes=5), grain=timedelta(minutes=1), aggregation="Average"
    )
    assert not batch.partial
    names = {s.metric for s in batch.series if s.resource_id == rid}
    assert names == {CPU, TPM}
    assert all(len(s.points) >= 5 for s in batch.series)


def test_a_resource_without_data_is_reported_missing_not_dropped(
    backend: str, metrics: MetricsSource, request: pytest.FixtureRequest
) -> None:
    rid = arrange(backend, metrics, request, tpm=100)
    ghost = rid.rsplit("/", 1)[0] + "/vmss-ghost"
    batch = metrics.query(
        [rid, ghost], [CPU], window=timedelta(minutes=5), grain=timedelta(minutes=1), aggregation="Average"
    )
    assert batch.partial and batch.missing == (ghost,)


def test_a_batch_takes_at_most_fifty_resources(metrics: MetricsSource) -> None:
    ids = [
        f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/v{i}"
        for i in range(51)
    ]
    with pytest.raises(ValueError, match="1 to 50"):
        metrics.query(ids, [CPU], window=timedelta(minutes=5), grain=timedelta(minutes=1), aggregation="Average")


def test_metrics_throttling_surfaces_as_transient(
    backend: str, metrics: MetricsSource, request: pytest.FixtureRequest
) -> None:
    if backend == "fake":
        pytest.skip("faults are injected by the emulator")
    from tools.harness.stack import admin

    rid = arrange(backend, metrics, request, tpm=100)
    handle = request.getfixturevalue("emulator_instance")
    admin(handle, "PUT", "/_admin/faults/metrics", {"status": 429, "count": 20, "retry_after": 1})
    try:
        with pytest.raises(TransientError):
            metrics.query([rid], [CPU], window=timedelta(minutes=5), grain=timedelta(minutes=1), aggregation="Average")
    finally:
        admin(handle, "DELETE", "/_admin/faults")
