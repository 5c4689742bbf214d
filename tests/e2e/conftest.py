"""Run the real ``function_app.py`` on the local host against the test Azurite."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared import settings as settings_module
from tools import azurite

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_settings(storage_connection_string: str) -> dict[str, str]:
    return {**settings_module.local_defaults(), "AzureWebJobsStorage": storage_connection_string}


@pytest.fixture
def run_app(tmp_path: Path, app_settings: dict[str, str]) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(deployment: str, **extra: str) -> subprocess.Popen[bytes]:
        values = {
            **app_settings,
            "CONSORTIUM_DEPLOYMENT": deployment,
            "AzureFunctionsWebHost__hostid": deployment,
            **extra,
        }
        settings_file = tmp_path / f"{deployment}.settings.json"
        settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
        ready = tmp_path / f"{deployment}.ready"
        port = azurite.free_ports(1)[0]
        log = open(tmp_path / f"{deployment}.log", "wb")  # noqa: SIM115 - closed when the process ends
        proc = subprocess.Popen(
            [sys.executable, "-m", "tools.funchost", "--app-dir", str(ROOT), "--settings", str(settings_file),
             "--port", str(port), "--ready-file", str(ready)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        started.append(proc)
        import time

        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, (tmp_path / f"{deployment}.log").read_text()
            assert time.monotonic() < deadline, "the host did not start"
            time.sleep(0.1)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
