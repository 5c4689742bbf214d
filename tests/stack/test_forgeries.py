"""A short run of the forgeries bench (``tools/forgeries``): one forgery of every kind of issue 15's
attacks, by one dishonest party against every honest member's deployment (three for most kinds), on a
local stack of its own (Azurite with an account per member, the emulator with an identity and a vault
per member, the ceremony, bank-c admitted for real). None is accepted, each refusal is recorded, and no honest
deployment ever calls a key outside its own vault."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import forgeries

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_every_kind_of_forgery_is_refused_with_a_record_by_every_honest_deployment(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = Path(tmp_path_factory.mktemp("forgeries"))
    with forgeries.local_stack(root, say=lambda _line: None) as stack:
        tally = forgeries.run_attacks(stack, per_kind=1, say=lambda _line: None)
        foreign = list(stack.foreign)
    rows = tally.by_kind()
    assert all(tried > 0 for tried, _, _ in rows.values()), tally.table()
    assert tally.accepted == [], tally.table()
    assert tally.unrecorded == [], tally.table()
    assert foreign == [], "an honest deployment called a key outside its own vault"
