"""The emulator itself: the Key Vault challenge, its load model, instance faults, and state that survives a restart."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from shared.adapters.compute import ArmScaleSets
from shared.adapters.keyvault import KeyVaultKeyStore
from shared.adapters.metrics import MonitorMetrics
from shared.ports.scalesets import ScaleSetSpec
from shared.settings import Settings
from tools import azurite, emulator
from tools.emulator import EmulatorHandle
from tools.harness.stack import admin
from tools.harness.wait import wait_until

pytestmark = pytest.mark.integration


def make_scale_set(settings: Settings, capacity: int) -> tuple[ArmScaleSets, str, str]:
    scalesets = ArmScaleSets.from_settings(settings)
    name = f"vmss-e{uuid.uuid4().hex[:10]}"
    scalesets.begin_create_or_update(
        ScaleSetSpec(name, "westeurope", capacity, "Standard_D2s_v5", "a:b:c:d", "", "", "", "")
    )
    found = scalesets.get(name)
    assert found is not None
    return scalesets, name, found.id


def test_key_vault_answers_an_unauthenticated_request_with_the_bearer_challenge(
    emulator_instance: EmulatorHandle,
) -> None:
    context = ssl.create_default_context(cafile=str(emulator_instance.ca))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{emulator_instance.url}/keys/any/versions?api-version=7.6", context=context, timeout=5)
    assert refused.value.code == 401
    challenge = refused.value.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'resource="https://vault.azure.net"' in challenge


def test_cpu_follows_load_over_serving_capacity_and_served_transactions_are_capped(
    azure_settings: Settings, emulator_instance: EmulatorHandle
) -> None:
    _, name, rid = make_scale_set(azure_settings, 2)  # 2 nodes x 1,000 tpm
    metrics = MonitorMetrics.from_settings(azure_settings)

    def latest(metric: str) -> float:
        batch = metrics.query(
            [rid], [metric], window=timedelta(minutes=2), grain=timedelta(minutes=1), aggregation="Average"
        )
        return float(batch.series[0].points[-1].value)  # type: ignore[arg-type]

    admin(emulator_instance, "PUT", f"/_admin/load/{name}", {"tpm": 500})
    light = latest("Percentage CPU")
    admin(emulator_instance, "PUT", f"/_admin/load/{name}", {"tpm": 5000})
    heavy = latest("Percentage CPU")
    assert light < 50 < heavy
    assert latest("TransactionsPerMinute") == pytest.approx(2000), "two nodes serve at most 2,000 tpm"


def test_a_crashed_instance_is_unhealthy_until_restarted_and_a_broken_one_until_reimaged(
    azure_settings: Settings, emulator_instance: EmulatorHandle
) -> None:
    scalesets, name, _ = make_scale_set(azure_settings, 2)
    first, second = (i.instance_id for i in scalesets.list_instances(name))
    admin(emulator_instance, "PUT", f"/_admin/instances/{name}/{first}", {"fault": "crashed"})
    admin(emulator_instance, "PUT", f"/_admin/instances/{name}/{second}", {"fault": "broken"})
    assert [i.healthy for i in scalesets.list_instances(name)] == [False, False]
    scalesets.restart(name, first)
    scalesets.restart(name, second)
    wait_until("the restarts done", lambda: all(i.power_state == "running"
                                                 for i in scalesets.list_instances(name)), timeout=10)  # fmt: skip
    assert [i.healthy for i in scalesets.list_instances(name)] == [True, False]
    scalesets.reimage(name, second)
    assert [i.healthy for i in scalesets.list_instances(name)] == [True, True]


def test_state_survives_a_restart_of_the_emulator(tmp_path: Path, azure_settings: Settings) -> None:
    port = azurite.free_ports(1)[0]
    handle, proc = emulator.start(tmp_path, port)
    settings = Settings({**azure_settings.values, "AZURE_KEY_VAULT_URL": handle.url, "AZURE_CA_BUNDLE": str(handle.ca)})
    try:
        key = KeyVaultKeyStore.from_settings(settings).create_key("survivor", "EC", tags={})
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait()
    handle, proc = emulator.start(tmp_path, port)
    try:
        again = KeyVaultKeyStore.from_settings(settings).get_key("survivor")
        assert again is not None and again.version == key.version and again.public_jwk == key.public_jwk
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait()


def test_more_than_fifty_resources_in_one_batch_call_is_refused_by_the_service(
    emulator_instance: EmulatorHandle,
) -> None:
    import json

    context = ssl.create_default_context(cafile=str(emulator_instance.ca))
    sub = "00000000-0000-0000-0000-000000000000"
    body = json.dumps({"resourceids": [f"/subscriptions/{sub}/x/v{i}" for i in range(51)]}).encode()
    url = f"{emulator_instance.url}/subscriptions/{sub}/metrics:getBatch?metricnames=x"
    headers = {"Authorization": "Bearer emulator-token", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=context, timeout=5)
    assert refused.value.code == 400


def test_metrics_made_to_go_missing_are_reported_missing_and_come_back(
    azure_settings: Settings, emulator_instance: EmulatorHandle
) -> None:
    _, name, rid = make_scale_set(azure_settings, 1)
    metrics = MonitorMetrics.from_settings(azure_settings)

    def query() -> tuple[str, ...]:
        return metrics.query(
            [rid], ["Percentage CPU"], window=timedelta(minutes=3), grain=timedelta(minutes=1), aggregation="Average"
        ).missing

    admin(emulator_instance, "PUT", f"/_admin/metrics/{name}", {"missing": True})
    assert query() == (rid,)
    admin(emulator_instance, "PUT", f"/_admin/metrics/{name}", {"missing": False})
    assert query() == ()


def test_the_scale_set_template_setting_makes_a_spec_and_names_what_is_missing() -> None:
    from shared.ports.scalesets import ScaleSetSpec as Spec
    from shared.settings import TEMPLATE

    spec = Spec.from_template(
        TEMPLATE, name="vmss-bank-c", location="westeurope", capacity=2, tags={"member_id": "bank-c"}
    )
    assert spec.vm_size == "Standard_D2s_v5" and spec.capacity == 2 and spec.subnet_id.endswith("/subnets/nodes")
    with pytest.raises(ValueError, match="image"):
        Spec.from_template('{"vm_size": "x"}', name="v", location="l", capacity=1, tags={})
    with pytest.raises(ValueError, match="not valid JSON"):
        Spec.from_template("{", name="v", location="l", capacity=1, tags={})
