"""Each port's contract runs against its in-memory fake and its Azure adapter on the emulator alike.

The Azure adapters run twice: as version 1's single shared identity (the root vault, the default
subscription), and as one member's own identity (bank-a: its own subscription, its own vault on a
port of its own), the shape every deployment has once the stack runs one per member.
"""

from __future__ import annotations

import pytest

from shared.adapters.compute import ArmScaleSets
from shared.adapters.keyvault import KeyVaultKeyStore
from shared.adapters.metrics import MonitorMetrics
from shared.fakes.keys import FakeKeyStore
from shared.fakes.metrics import FakeMetricsSource
from shared.fakes.scalesets import FakeScaleSets
from shared.settings import Settings


@pytest.fixture(params=["fake", "azure", "azure-member"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend_settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    """The settings the Azure adapters are built from for this backend."""
    if backend == "fake":
        pytest.skip("the fake has no settings")
    name = "bank_a_settings" if backend == "azure-member" else "azure_settings"
    settings: Settings = request.getfixturevalue(name)
    return settings


@pytest.fixture
def keys(backend: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if backend == "fake":
        return FakeKeyStore()
    return KeyVaultKeyStore.from_settings(request.getfixturevalue("backend_settings"))


@pytest.fixture
def scalesets(backend: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if backend == "fake":
        return FakeScaleSets()
    return ArmScaleSets.from_settings(request.getfixturevalue("backend_settings"))


@pytest.fixture
def metrics(backend: str, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if backend == "fake":
        return FakeMetricsSource()
    return MonitorMetrics.from_settings(request.getfixturevalue("backend_settings"))
