"""Each port's contract runs against its in-memory fake and its Azure adapter on the emulator alike."""

from __future__ import annotations

import pytest

from shared.adapters.compute import ArmScaleSets
from shared.adapters.keyvault import KeyVaultKeyStore
from shared.adapters.metrics import MonitorMetrics
from shared.fakes.keys import FakeKeyStore
from shared.fakes.metrics import FakeMetricsSource
from shared.fakes.scalesets import FakeScaleSets
from shared.settings import Settings


@pytest.fixture(params=["fake", "azure"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def keys(backend: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if backend == "fake":
        return FakeKeyStore()
    settings: Settings = request.getfixturevalue("azure_settings")
    return KeyVaultKeyStore.from_settings(settings)


@pytest.fixture
def scalesets(backend: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if backend == "fake":
        return FakeScaleSets()
    settings: Settings = request.getfixturevalue("azure_settings")
    return ArmScaleSets.from_settings(settings)


@pytest.fixture
def metrics(backend: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if backend == "fake":
        return FakeMetricsSource()
    settings: Settings = request.getfixturevalue("azure_settings")
    return MonitorMetrics.from_settings(settings)
