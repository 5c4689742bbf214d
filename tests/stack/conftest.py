"""An Azurite of its own for the per-member storage tests, serving accounts these tests choose.

Fresh accounts, so a test can see what provisioning creates from nothing; on free ports and in a
temporary folder, as tests/conftest.py does for the shared one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import azurite

#: The local members.
MEMBERS = azurite.MEMBER_IDS


@pytest.fixture(scope="package")
def member_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite.Azurite]:
    location = Path(tmp_path_factory.mktemp("azurite-members"))
    ports = azurite.free_ports(3)
    accounts = [azurite.account_for(m) for m in MEMBERS]
    az, proc = azurite.start(
        location, ports=(ports[0], ports[1], ports[2]), log_file=location / "azurite.log", accounts=accounts
    )
    try:
        yield az
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait(timeout=10)
