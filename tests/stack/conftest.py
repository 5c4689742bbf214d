"""An Azurite of its own for the per-member storage tests, serving accounts these tests choose.

Fresh accounts, so a test can see what provisioning creates from nothing; on free ports and in a
temporary folder, as tests/conftest.py does for the shared one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import azurite
from tools.harness.stack import running_azurite

#: The local members.
MEMBERS = azurite.MEMBER_IDS


@pytest.fixture(scope="package")
def member_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite.Azurite]:
    location = Path(tmp_path_factory.mktemp("azurite-members"))
    accounts = [azurite.account_for(m) for m in MEMBERS]
    with running_azurite(location, accounts=accounts, log_file=location / "azurite.log") as az:
        yield az
