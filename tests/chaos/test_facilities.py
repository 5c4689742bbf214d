"""The test-only facilities the chaos suite relies on: the clock skew and the host's double delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.ports.clock import SKEW_VARIABLE, SystemClock
from shared.settings import names
from tools.funchost.config import QueueOptions
from tools.funchost.indexing import FunctionSpec
from tools.funchost.queues import QueueListener


def test_the_skew_moves_the_system_clock_and_is_not_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SKEW_VARIABLE, "-90")
    skewed = SystemClock().now()
    assert abs((datetime.now(UTC) - timedelta(seconds=90) - skewed).total_seconds()) < 1
    monkeypatch.delenv(SKEW_VARIABLE)
    assert abs((datetime.now(UTC) - SystemClock().now()).total_seconds()) < 1
    assert SKEW_VARIABLE not in names(), "Azure never sets it: it must not be in the settings registry"


def test_an_unknown_double_delivery_mode_is_refused_with_the_modes() -> None:
    spec = FunctionSpec.__new__(FunctionSpec)
    options = QueueOptions(16, 8, timedelta(seconds=2), timedelta(0), 5, "none")
    with pytest.raises(ValueError, match="FUNCHOST_DELIVER_TWICE='twice' must be one of"):
        QueueListener(spec, options, {}, None, ".", deliver_twice="twice")  # type: ignore[arg-type]
