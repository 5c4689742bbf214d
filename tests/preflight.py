"""Preflight: what the suite needs from outside the code, checked before any test runs.

A clean clone's suite can fail for reasons that are not in the code: a wall clock that is wrong, a
package that did not install, no free port on loopback, a full disk, Azurite missing from
``node_modules``. Those failures show up deep inside some fixture, as a timeout or an ``OSError``,
and send the reader into the code. So each such need is checked here first: the checks run as the
suite's first tests (``test_the_machine_gives_the_suite_what_it_needs``), each failure names its
cause and what to do, the report header shows the clock the suite runs on, and the summary repeats
any cause found outside the code after the failures it explains.

The clock is the one need the suite also varies on purpose: ``make test`` runs the unit and CLI suites
a second time with the wall clock moved ahead (``tools/clockshift``), so a test that depends on the
day it runs fails now, not in a week. The header says when a run is shifted.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import subprocess  # nosec B404 - git, to read the newest commit's date
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The environment variable that moves the wall clock of a shifted run (tools/clockshift).
SHIFT_ENV = "CLOCKSHIFT_SECONDS"
#: A machine's clock may lag the newest commit (made on another machine) by this much before it is wrong.
CLOCK_TOLERANCE = timedelta(hours=12)
#: Free space the suite needs for its Azurite data, emulator state and hosts' logs.
MIN_FREE_BYTES = 1 << 30
REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)")


@dataclass(frozen=True)
class Problem:
    """A need outside the code that this machine does not meet: what, and what to do."""

    need: str
    cause: str
    remedy: str

    def __str__(self) -> str:
        return f"{self.need}: {self.cause} ({self.remedy})"


def newest_commit_time(root: Path = ROOT) -> datetime | None:
    """The committer date of HEAD, or None where there is no git or no repository."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        out = subprocess.run(  # nosec B603 - fixed arguments
            [git, "-C", str(root), "log", "-1", "--format=%cI"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return datetime.fromisoformat(out).astimezone(UTC) if out else None


def clock_problem(now: datetime, newest_commit: datetime | None) -> Problem | None:
    """A wall clock earlier than the newest commit is wrong: certificates, leases and proposal
    lifetimes are all judged on it."""
    if newest_commit is None or now >= newest_commit - CLOCK_TOLERANCE:
        return None
    return Problem(
        "the system clock",
        f"it reads {now:%Y-%m-%dT%H:%M:%SZ}, before the newest commit ({newest_commit:%Y-%m-%dT%H:%M:%SZ})",
        "set the machine's clock",
    )


def requirement_pins(*files: Path) -> dict[str, str]:
    """``name==version`` pins of the requirements files (names as pip normalises them)."""
    pins: dict[str, str] = {}
    for path in files:
        for line in path.read_text().splitlines():
            match = REQUIREMENT.match(line.strip())
            if match:
                pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def package_problems(pins: dict[str, str], installed: Callable[[str], str | None]) -> list[Problem]:
    """Each pinned package that is missing or at another version."""
    problems = []
    for name, wanted in sorted(pins.items()):
        found = installed(name)
        if found != wanted:
            cause = "not installed" if found is None else f"{found} is installed"
            problems.append(Problem(f"the Python package {name}=={wanted}", cause, "run `make bootstrap`"))
    return problems


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def azurite_problem(root: Path = ROOT) -> Problem | None:
    if (root / "node_modules" / ".bin" / "azurite").exists() and shutil.which("node"):
        return None
    missing = "node is not on PATH" if not shutil.which("node") else "node_modules/.bin/azurite is missing"
    return Problem("Azurite from the npm lockfile", missing, "run `make bootstrap`")


def postgres_problem(root: Path = Path("/usr/lib/postgresql")) -> Problem | None:
    """tests/ledger start a private cluster of Debian's PostgreSQL server (14 to 18, as Corda 4.12 supports)."""
    from tools.postgres import PostgresError, server_binaries

    try:
        server_binaries(root)
    except PostgresError:
        return Problem("a PostgreSQL server 14 to 18", f"none under {root}", "run tools/ensure_postgres.sh as root")
    return None


def loopback_problem() -> Problem | None:
    """The suite starts Azurite, the emulator and hosts on ports the OS hands out on 127.0.0.1."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen(1)
    except OSError as exc:
        return Problem("a free port on 127.0.0.1", f"binding one failed: {exc}", "free ports or fix loopback")
    return None


def disk_problem(folder: Path | None = None) -> Problem | None:
    where = folder or Path(tempfile.gettempdir())
    free = shutil.disk_usage(where).free
    if free >= MIN_FREE_BYTES:
        return None
    return Problem(
        f"{MIN_FREE_BYTES >> 20} MiB free in {where}", f"only {free >> 20} MiB are free", "free some disk space"
    )


def problems() -> list[Problem]:
    """Every need outside the code this machine does not meet, right now."""
    found = [
        clock_problem(datetime.now(UTC), newest_commit_time()),
        azurite_problem(),
        postgres_problem(),
        loopback_problem(),
        disk_problem(),
    ]
    pins = requirement_pins(ROOT / "requirements.txt", ROOT / "requirements-dev.txt")
    return [p for p in found if p is not None] + package_problems(pins, installed_version)


def shift_seconds() -> int:
    try:
        return int(os.environ.get(SHIFT_ENV, "0"))
    except ValueError:
        return 0


def shifted() -> bool:
    """Whether this process runs with tools/clockshift moving its wall clock."""
    return bool(shift_seconds()) and "clockshift" in os.environ.get("LD_PRELOAD", "")


def clock_line() -> str:
    now = datetime.now(UTC)
    shift = shift_seconds()
    if shifted():
        real = now - timedelta(seconds=shift)
        return (
            f"wall clock: {now:%Y-%m-%dT%H:%M:%SZ}, moved {shift / 86400:+.0f} days from {real:%Y-%m-%d} "
            "(tools/clockshift): a failure here that the unshifted run does not have is a test that "
            "depends on the day it runs"
        )
    return f"wall clock: {now:%Y-%m-%dT%H:%M:%SZ}"


#: Failures that come from outside the code, by the exception that shows them.
OUTSIDE = (
    (ModuleNotFoundError, "a Python package is missing (run `make bootstrap`)"),
    (TimeoutError, "something did not answer in time: a loaded or slow machine, or a service that did not start"),
)


def outside_cause(excinfo: pytest.ExceptionInfo[BaseException]) -> str | None:
    """Why a failure may not be the code's, judged from its exception, or None."""
    exc = excinfo.value
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return "a port was taken by another process"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "the disk is full"
    if isinstance(exc, FileNotFoundError) and exc.filename and not str(exc.filename).startswith(str(ROOT)):
        return f"a program or file outside the repository is missing: {exc.filename}"
    for kind, cause in OUTSIDE:
        if isinstance(exc, kind):
            return cause
    return None


class Preflight:
    """The pytest plugin: the header line, the checks as the first test, causes in the summary."""

    def __init__(self) -> None:
        self.causes: list[tuple[str, str]] = []

    def pytest_report_header(self) -> list[str]:
        return [clock_line()]

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """The machine's checks run before everything else, so the first failure names the cause."""
        items.sort(key=lambda item: 0 if item.nodeid.startswith("tests/test_preflight.py") else 1)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
        outcome = yield
        report = outcome.get_result()
        if report.failed and call.excinfo is not None:
            cause = outside_cause(call.excinfo)
            if cause is not None:
                report.sections.append(("outside the code?", cause))
                self.causes.append((item.nodeid, cause))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if shifted() and terminalreporter.stats.get("failed"):
            terminalreporter.section("these tests ran on a moved clock")
            terminalreporter.line(clock_line())
        if not self.causes:
            return
        terminalreporter.section("failures that may come from outside the code")
        for nodeid, cause in self.causes:
            terminalreporter.line(f"{nodeid}: {cause}")
        terminalreporter.line(clock_line())
