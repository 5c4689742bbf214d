"""The chaos and bad-input suite's stack: one Azurite, one emulator and three host instances per session.

``pytest tests/chaos`` (inside ``make test``) runs the short version: one trial of 30 s of faults, the
whole queue corpus, the HTTP cases and half the CLI cases. ``pytest tests/chaos --chaos-long`` (``make
chaos``) runs six trials of 60 s and every CLI case. Everything runs on free ports in a temporary folder.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tools.chaos import LocalStack, trial_members

TRIALS = {False: 1, True: 6}
CHAOS_SECONDS = {False: 30.0, True: 60.0}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-long", action="store_true", default=False,
        help="the long chaos and bad-input suite (make chaos): six trials of 60 s of faults, every CLI case",
    )  # fmt: skip


def is_long(config: pytest.Config) -> bool:
    return bool(config.getoption("--chaos-long", default=False))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "trial" in metafunc.fixturenames:
        metafunc.parametrize("trial", range(TRIALS[is_long(metafunc.config)]))


@dataclass
class ChaosSession:
    stack: LocalStack
    prefix: str
    good: list[str]
    long: bool

    @property
    def chaos_seconds(self) -> float:
        return CHAOS_SECONDS[self.long]


@pytest.fixture(scope="session")
def chaos(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ChaosSession]:
    long = is_long(request.config)
    prefix = "".join(secrets.choice(string.ascii_lowercase) for _ in range(3))
    good = [f"{prefix}good-a", f"{prefix}good-b"]
    founders = [m for t in range(TRIALS[long]) for m in trial_members(prefix, t)[:2]] + good
    stack = LocalStack(tmp_path_factory.mktemp("chaos"), founders).start()
    try:
        yield ChaosSession(stack, prefix, good, long)
    finally:
        stack.stop()
