"""The chaos and bad-input suite's stacks: each the four member deployments and bank-b's second one.

``pytest tests/chaos`` (inside ``make test``) runs the short version on ONE stack: the bad-input corpus
with 80 generated messages, the HTTP cases on one deployment of each member and a third of the CLI
cases, then one trial of 30 s of faults on the same stack (its founders joined already: their join
requests of the trial are refused as taken, and end so). ``pytest tests/chaos --chaos-long`` (``make
chaos``) runs 160 generated messages, the HTTP cases on every deployment and every CLI case, then six
trials of 60 s, each with its own seed on a fresh stack. Everything runs on free ports in temporary
folders.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tools.chaos import MemberStack, start_founders

TRIALS = {False: 1, True: 6}
CHAOS_SECONDS = {False: 30.0, True: 60.0}
GENERATED = {False: 80, True: 160}


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
    #: A stack whose founders joined: the bad input's, then the short run's trial's.
    stack: MemberStack
    long: bool

    @property
    def generated(self) -> int:
        return GENERATED[self.long]

    @property
    def chaos_seconds(self) -> float:
        return CHAOS_SECONDS[self.long]


@pytest.fixture(scope="package")  # shared by the bad input and the trial; stopped once tests/chaos is done
def chaos(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[ChaosSession]:
    stack = MemberStack(tmp_path_factory.mktemp("chaos")).start()
    try:
        start_founders(stack)
        yield ChaosSession(stack, is_long(request.config))
    finally:
        stack.stop()
