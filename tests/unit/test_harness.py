"""The harness's wait-until helper (``tools/harness/wait.py``) and its wait for a host of our own to be
ready (``tools/harness/hosts.py``), on checks and processes that need no stack."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tools import azurite
from tools.harness.hosts import api_status, await_ready
from tools.harness.wait import WaitTimeout, retrying, wait_until


class NotYet(Exception):
    pass


def test_the_first_true_value_of_the_check_is_returned() -> None:
    answers = iter([None, 0, "", "found"])
    assert wait_until("an answer", lambda: next(answers), 5, every=0.001) == "found"


def test_a_check_that_never_comes_true_times_out_naming_what_was_awaited_and_what_was_seen() -> None:
    with pytest.raises(WaitTimeout, match="waited 0 s for the founders; it did not happen\n  seen: bank-a pending"):
        wait_until("the founders", lambda: False, 0.01, every=0.001, seen=lambda: "bank-a pending")


def test_a_timeout_is_a_timeout_error_or_the_callers_own_error() -> None:
    with pytest.raises(TimeoutError):
        wait_until("never", lambda: None, 0.01, every=0.001)
    with pytest.raises(RuntimeError, match="never"):
        wait_until("never", lambda: None, 0.01, every=0.001, error=RuntimeError)


def test_errors_the_caller_ignores_count_as_not_yet_and_the_last_one_is_said() -> None:
    calls = itertools.count()

    def storage_restarting() -> bool:
        if next(calls) < 3:
            raise NotYet("connection refused")
        return True

    assert wait_until("storage back", storage_restarting, 5, every=0.001, ignoring=(NotYet,)) is True

    def refusing() -> bool:
        raise NotYet("connection refused")

    with pytest.raises(WaitTimeout, match="seen: connection refused"):
        wait_until("storage back", refusing, 0.01, every=0.001, ignoring=(NotYet,))


def test_any_other_error_stops_the_wait_at_once() -> None:
    def host_exited() -> bool:
        raise RuntimeError("the host exited with 1")

    with pytest.raises(RuntimeError, match="exited"):
        wait_until("the host", host_exited, 60, ignoring=(NotYet,))


def test_between_runs_after_each_miss_and_moves_the_world_on() -> None:
    world = {"ticks": 0}
    wait_until("three ticks", lambda: world["ticks"] >= 3, 5, every=0.001,
               between=lambda: world.update(ticks=world["ticks"] + 1))  # fmt: skip
    assert world["ticks"] == 3


def test_retrying_calls_until_the_action_does_not_raise_and_then_gives_up_with_its_error() -> None:
    calls = itertools.count()

    def flaky() -> int:
        n = next(calls)
        if n < 2:
            raise NotYet(f"storm {n}")
        return n

    assert retrying(flaky, 5, every=0.001) == 2

    def down() -> int:
        raise NotYet("still down")

    with pytest.raises(NotYet, match="still down"):
        retrying(down, 0.01, every=0.001)


def test_a_host_is_ready_once_its_ready_file_exists(tmp_path: Path) -> None:
    ready = tmp_path / "host.ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(ready)!r}).touch(); time.sleep(5)"]
    )
    try:
        await_ready(proc, ready, "the host", tmp_path / "host.log", 30)
        assert ready.exists()
    finally:
        proc.kill()
        proc.wait()


def test_a_host_that_exits_before_it_is_ready_stops_the_wait_at_once_with_its_code(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(RuntimeError, match=r"the host exited with 3; see .*host\.log"):
        await_ready(proc, tmp_path / "host.ready", "the host", tmp_path / "host.log", 60)


class StatusHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"member_id": "bank-b", "status": "active"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_a_members_status_comes_from_whichever_of_its_hosts_answers_and_names_every_port_when_none_does() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StatusHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    silent = azurite.free_ports(1)[0]
    try:
        assert api_status("bank-b", [silent, server.server_address[1]])["status"] == "active"
        with pytest.raises(LookupError, match=f"bank-b's deployment does not answer \\(port {silent}: "):
            api_status("bank-b", [silent], error=LookupError)
    finally:
        server.shutdown()
        server.server_close()
