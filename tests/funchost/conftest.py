"""Fixtures that run the local host as a real subprocess on a copy of a test app, against Azurite."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueServiceClient

from tools import azurite

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll until ``condition()`` is truthy; fail naming ``what`` if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def consecutive_free_ports(count: int) -> int:
    """A first port such that it and the ``count - 1`` after it are free: instance i serves on port + i."""
    for _ in range(50):
        first = azurite.free_ports(1)[0]
        if first + count <= 65535 and all(_bindable(first + i) for i in range(1, count)):
            return first
    raise AssertionError(f"found no {count} consecutive free ports")


@dataclass
class RunningHost:
    process: subprocess.Popen[bytes]
    port: int
    queues: QueueServiceClient
    log: Path
    app_dir: Path
    observed_cache: list[dict[str, Any]] = field(default_factory=list)

    def send(self, queue: str, body: str) -> None:
        client = self.queues.get_queue_client(queue)
        try:
            client.create_queue()
        except Exception:
            pass
        client.send_message(body)

    def drain(self, queue: str) -> list[str]:
        client = self.queues.get_queue_client(queue)
        try:
            messages = list(client.receive_messages(max_messages=32, messages_per_page=32, visibility_timeout=30))
        except Exception:
            return []
        for m in messages:
            client.delete_message(m)
        return [m.content for m in messages]

    def observed(self) -> list[dict[str, Any]]:
        self.observed_cache.extend(json.loads(body) for body in self.drain("observed"))
        return self.observed_cache

    def count(self, queue: str) -> int:
        try:
            return int(self.queues.get_queue_client(queue).get_queue_properties().approximate_message_count)
        except Exception:
            return 0

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def start_host(tmp_path: Path, azurite_instance: azurite.Azurite) -> Iterator[Callable[..., RunningHost]]:
    started: list[RunningHost] = []

    def start(
        app: str, *, instances: int = 1, settings: dict[str, str] | None = None, host_id: str | None = None
    ) -> RunningHost:
        app_dir = tmp_path / f"{app}-{uuid.uuid4().hex[:6]}"
        shutil.copytree(APPS / app, app_dir)
        values = {"AzureWebJobsStorage": azurite_instance.connection_string, "FUNCTIONS_WORKER_RUNTIME": "python",
                  "AzureFunctionsWebHost__hostid": host_id or f"test-{uuid.uuid4().hex[:8]}",
                  "TICK_SCHEDULE": "0 0 0 1 1 *", **(settings or {})}  # fmt: skip
        (app_dir / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
        port = consecutive_free_ports(instances)
        ready = app_dir / "ready"
        log = app_dir / "host.log"
        cmd = [sys.executable, "-m", "tools.funchost", "--app-dir", str(app_dir), "--port", str(port),
               "--instances", str(instances), "--ready-file", str(ready)]  # fmt: skip
        with open(log, "wb") as out:
            process = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        queues = QueueServiceClient.from_connection_string(azurite_instance_conn(azurite_instance))
        host = RunningHost(process, port, queues, log, app_dir)
        started.append(host)
        wait_for(lambda: ready.exists() or process.poll() is not None, what="the host to be ready")
        if process.poll() is not None:
            raise AssertionError(f"host exited early:\n{host.log_text()}")
        return host

    yield start
    for host in started:
        if host.process.poll() is None:
            host.process.send_signal(signal.SIGTERM)
            try:
                host.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                host.process.kill()
                host.process.wait()


def azurite_instance_conn(az: azurite.Azurite) -> str:
    from shared.adapters.storage import expand_connection_string

    return expand_connection_string(az.connection_string)


@pytest.fixture
def clean_queues(azurite_instance: azurite.Azurite) -> Iterator[None]:
    """Every test starts with the test apps' queues gone (they share one Azurite per session)."""
    service = QueueServiceClient.from_connection_string(azurite_instance_conn(azurite_instance))
    for q in service.list_queues():
        if q.name.startswith(("in-", "out-", "observed")):
            service.delete_queue(q.name)
    yield
