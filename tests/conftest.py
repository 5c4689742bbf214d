"""Shared fixtures: a real Azurite per test session on free ports, in a temporary folder.

Tests never use the default ports, so `make test` runs beside a `make up` stack, and several test
sessions can run at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import Settings, local_defaults
from tests.preflight import Preflight
from tools import azurite, emulator
from tools.emulator import EmulatorHandle
from tools.harness.stack import FAST_EMULATOR, running_azurite, running_emulator


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(Preflight(), "preflight")


@pytest.fixture(scope="session")
def azurite_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite.Azurite]:
    location = tmp_path_factory.mktemp("azurite")
    with running_azurite(Path(location), log_file=location / "azurite.log") as az:
        yield az


@pytest.fixture(scope="session")
def storage_connection_string(azurite_instance: azurite.Azurite) -> str:
    return azurite_instance.connection_string


@pytest.fixture
def unique_name() -> str:
    """A fresh lowercase name for a queue or container, so tests in one session never share state."""
    return "t" + uuid.uuid4().hex[:20]


@pytest.fixture(scope="session")
def emulator_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """The Azure emulator on a free port with its own state folder, fast operations for tests."""
    state_dir = Path(tmp_path_factory.mktemp("emulator"))
    with running_emulator(state_dir, config=FAST_EMULATOR, log_file=state_dir / "emulator.log") as handle:
        yield handle


@pytest.fixture(scope="session")
def azure_settings(emulator_instance: EmulatorHandle, storage_connection_string: str) -> Settings:
    """Settings that point every Azure SDK client at the test emulator (and storage at the test Azurite)."""
    values = {
        **local_defaults(),
        "AzureWebJobsStorage": storage_connection_string,
        "AZURE_ARM_ENDPOINT": emulator_instance.url,
        "AZURE_METRICS_ENDPOINT": emulator_instance.url,
        "AZURE_KEY_VAULT_URL": emulator_instance.url,
        "AZURE_CA_BUNDLE": str(emulator_instance.ca),
    }
    return Settings(values)


def member_settings(handle: EmulatorHandle, base: Settings, member: str) -> Settings:
    """Settings of ``member``'s own deployment in the per-member shape: the emulator registers its
    identity (its subscription, its vault on a port of its own, its roles), and the SDK clients call
    as that identity, on that subscription and vault. Registering twice changes nothing."""
    registered = emulator.register_principal(handle, member)
    return Settings(
        {
            **base.values,
            "AZURE_EMULATOR_PRINCIPAL": member,
            "AZURE_SUBSCRIPTION_ID": registered["subscription_id"],
            "AZURE_KEY_VAULT_URL": registered["vault_url"],
        }
    )


@pytest.fixture(scope="session")
def bank_a_settings(emulator_instance: EmulatorHandle, azure_settings: Settings) -> Settings:
    return member_settings(emulator_instance, azure_settings, "bank-a")


@pytest.fixture(scope="session")
def bank_b_settings(emulator_instance: EmulatorHandle, azure_settings: Settings) -> Settings:
    return member_settings(emulator_instance, azure_settings, "bank-b")
