"""Shared fixtures: a real Azurite per test session on free ports, in a temporary folder.

Tests never use the default ports, so `make test` runs beside a `make up` stack, and several test
sessions can run at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import azurite


@pytest.fixture(scope="session")
def azurite_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite.Azurite]:
    location = tmp_path_factory.mktemp("azurite")
    ports = azurite.free_ports(3)
    az, proc = azurite.start(Path(location), ports=(ports[0], ports[1], ports[2]), log_file=location / "azurite.log")
    try:
        yield az
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def storage_connection_string(azurite_instance: azurite.Azurite) -> str:
    return azurite_instance.connection_string


@pytest.fixture
def unique_name() -> str:
    """A fresh lowercase name for a queue or container, so tests in one session never share state."""
    return "t" + uuid.uuid4().hex[:20]
