"""The machine gives the suite what it needs: run first, so a failure outside the code says so first.

The checks themselves live in ``tests/preflight.py``; the rows below pin each one's boundaries.
"""

from __future__ import annotations

import errno
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import preflight

COMMIT = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_the_machine_gives_the_suite_what_it_needs() -> None:
    problems = preflight.problems()
    assert not problems, "outside the code: " + "; ".join(str(p) for p in problems)


@pytest.mark.parametrize(
    ("now", "wrong", "why"),
    [
        (COMMIT + timedelta(days=400), False, "a clock far ahead of the newest commit is a later day, not wrong"),
        (COMMIT, False, "the commit's own instant"),
        (COMMIT - preflight.CLOCK_TOLERANCE, False, "a clock behind by the tolerance (another machine's commit)"),
        (COMMIT - preflight.CLOCK_TOLERANCE - timedelta(seconds=1), True, "a second beyond the tolerance"),
        (COMMIT - timedelta(days=365), True, "a clock a year behind the code it runs"),
    ],
)
def test_a_clock_is_wrong_only_when_it_reads_before_the_newest_commit(now: datetime, wrong: bool, why: str) -> None:
    problem = preflight.clock_problem(now, COMMIT)
    assert (problem is not None) is wrong, why
    if problem is not None:
        assert "system clock" in str(problem) and "2026-12-07T12:00:00Z" in str(problem)


def test_without_a_commit_date_the_clock_is_not_judged() -> None:
    assert preflight.clock_problem(COMMIT - timedelta(days=999), None) is None


def test_a_missing_or_other_package_version_names_the_package_and_the_remedy(tmp_path: Path) -> None:
    pins_file = tmp_path / "requirements.txt"
    pins_file.write_text("# comment\nAzure_Core==1.0.0\npydantic[email]==2.0 ; python_version>'3'\nloose>=1\n")
    pins = preflight.requirement_pins(pins_file)
    assert pins == {"azure-core": "1.0.0", "pydantic": "2.0"}
    installed = {"azure-core": "1.0.0", "pydantic": "2.1"}
    problems = preflight.package_problems({**pins, "absent": "1"}, installed.get)
    assert [str(p) for p in problems] == [
        "the Python package absent==1: not installed (run `make bootstrap`)",
        "the Python package pydantic==2.0: 2.1 is installed (run `make bootstrap`)",
    ]


@pytest.mark.parametrize(
    ("majors", "wrong"),
    [((), True), ((13,), True), ((13, 19), True), ((15,), False), ((13, 18), False)],
)
def test_a_postgresql_server_is_needed_in_the_versions_corda_supports(
    tmp_path: Path, majors: tuple[int, ...], wrong: bool
) -> None:
    for major in majors:
        (tmp_path / str(major) / "bin").mkdir(parents=True)
        (tmp_path / str(major) / "bin" / "postgres").touch()
    problem = preflight.postgres_problem(tmp_path)
    assert (problem is not None) is wrong
    if problem is not None:
        assert str(tmp_path) in str(problem) and "ensure_postgres.sh" in str(problem)


def test_too_little_free_disk_is_named_with_what_is_free(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(preflight, "MIN_FREE_BYTES", 1 << 62)
    problem = preflight.disk_problem(tmp_path)
    assert problem is not None and "MiB are free" in problem.cause


def test_a_failure_from_outside_the_code_is_named_by_its_exception() -> None:
    def cause_of(exc: BaseException) -> str | None:
        try:
            raise exc
        except BaseException:
            return preflight.outside_cause(pytest.ExceptionInfo.from_current())

    assert cause_of(OSError(errno.EADDRINUSE, "Address already in use")) == "a port was taken by another process"
    assert cause_of(OSError(errno.ENOSPC, "No space left on device")) == "the disk is full"
    assert "package is missing" in str(cause_of(ModuleNotFoundError("No module named 'x'")))
    assert "/usr/bin/java" in str(cause_of(FileNotFoundError(errno.ENOENT, "No such file", "/usr/bin/java")))
    assert cause_of(FileNotFoundError(errno.ENOENT, "No such file", str(preflight.ROOT / "x"))) is None
    assert cause_of(AssertionError("a real failure")) is None


def test_the_header_says_when_the_clock_is_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(preflight.SHIFT_ENV, str(400 * 86400))
    monkeypatch.setenv("LD_PRELOAD", "/somewhere/clockshift.so")
    assert "moved +400 days" in preflight.clock_line()
    monkeypatch.delenv("LD_PRELOAD")
    assert "moved" not in preflight.clock_line()
