"""`make down` signals only the processes `make up` started: a pid is checked with its start time (psutil)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tools import stack


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    # its own session, as `make up` starts each piece (stop_pid signals the process group)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _record(tmp_path: Path, entry: dict[str, object]) -> stack.StackPaths:
    paths = stack.StackPaths(root=tmp_path)
    paths.local.mkdir(parents=True)
    paths.record.write_text(json.dumps({"funchost": entry}))
    return paths


def test_a_pid_now_held_by_another_process_is_not_signalled(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    started = psutil.Process(sleeper.pid).create_time()
    paths = _record(tmp_path, {"pid": sleeper.pid, "started": started - 30, "port": 1})  # up started another one
    assert stack.status(paths)["funchost"]["running"] is False
    stack.down(paths, quiet=True)
    assert sleeper.poll() is None, "down signalled a process it did not start"
    assert not paths.record.exists()


def test_a_record_without_a_start_time_is_never_signalled(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    paths = _record(tmp_path, {"pid": sleeper.pid, "port": 1})
    stack.down(paths, quiet=True)
    assert sleeper.poll() is None


def test_the_process_up_started_is_stopped(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    paths = _record(tmp_path, {"pid": sleeper.pid, "started": psutil.Process(sleeper.pid).create_time(), "port": 1})
    assert stack.status(paths)["funchost"]["running"] is True
    stack.down(paths, quiet=True)
    assert sleeper.wait(timeout=10) is not None
    assert stack.status(paths) == {}
