"""A local stand-in for ARM Compute (scale sets), Monitor metrics (batch API), Key Vault keys and IMDS tokens.

It speaks their REST APIs over HTTPS with a CA of its own, so the real Azure SDK clients run against
it unchanged (``connection_verify`` set to ``<state-dir>/ca.pem``). A load model drives CPU and
transactions per minute; an admin API under ``/_admin/`` sets load and injects faults. State lives in
the state folder, so a restart keeps it. ``start()`` runs it as a process for the stack and tests.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class EmulatorError(RuntimeError):
    """The emulator did not start; the message says why."""


@dataclass(frozen=True)
class EmulatorHandle:
    port: int
    state_dir: Path

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def ca(self) -> Path:
        return self.state_dir / "ca.pem"


def healthy(handle: EmulatorHandle) -> bool:
    if not handle.ca.exists():
        return False
    context = ssl.create_default_context(cafile=str(handle.ca))
    try:
        with urllib.request.urlopen(f"{handle.url}/_admin/health", timeout=1, context=context) as r:  # noqa: S310 - https://localhost  # nosec B310
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def register_principal(handle: EmulatorHandle, member: str, *, vault_port: int | None = None) -> dict[str, Any]:
    """Register ``member``'s identity (``PUT /_admin/principals/{member}``) and return what its
    deployment is configured with: ``token``, ``subscription_id``, ``vault`` and ``vault_url``. A
    second call changes nothing; ``vault_port`` fixes the port of its vault (default: any free one)."""
    context = ssl.create_default_context(cafile=str(handle.ca))
    body = json.dumps({} if vault_port is None else {"vault_port": vault_port}).encode()
    url = f"{handle.url}/_admin/principals/{member}"
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers)  # noqa: S310 - https://localhost
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as r:  # noqa: S310 - https://localhost  # nosec B310
            answer: dict[str, Any] = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise EmulatorError(f"registering {member}: {e.code} {e.read().decode(errors='replace')}") from None
    return answer


def start(
    state_dir: Path, port: int, *, log_file: Path | None = None, timeout: float = 30
) -> tuple[EmulatorHandle, subprocess.Popen[bytes]]:
    handle = EmulatorHandle(port, state_dir)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    cmd = [sys.executable, "-m", "tools.emulator", "--port", str(port), "--state-dir", str(state_dir)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # nosec B603
    deadline = time.monotonic() + timeout
    while not healthy(handle):
        if proc.poll() is not None:
            raise EmulatorError(f"the emulator exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            proc.kill()
            raise EmulatorError(f"the emulator was not ready within {timeout:.0f} s")
        time.sleep(0.1)
    return handle, proc
