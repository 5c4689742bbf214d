"""Local Functions hosts that a tool or a test starts itself, beside the ones ``make up`` starts: a
second deployment of a member (the demo's standby, the coordination test's), the chaos trial's
instances it kills and restarts, the benches' hosts.

Each is ``python -m tools.funchost`` of this checkout with a settings file, writing its log to a file;
``await_ready`` waits for its ready file (every listener and timer started), and stops waiting at once,
with the exit code and where the log is, when the process exits first. ``api_status`` reads a member's
``/api/status`` from whichever of its hosts answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from tools.harness.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


def funchost(
    *,
    ready: Path,
    settings: Path | None = None,
    port: int | None = None,
    app_dir: Path | None = None,
    host_json: Path | None = None,
    no_http: bool = False,
) -> list[str]:
    """The command line of one local host of the app in ``app_dir`` (default: this checkout's)."""
    cmd = [sys.executable, "-m", "tools.funchost"]
    if app_dir is not None:
        cmd += ["--app-dir", str(app_dir)]
    if settings is not None:
        cmd += ["--settings", str(settings)]
    if host_json is not None:
        cmd += ["--host-json", str(host_json)]
    if port is not None:
        cmd += ["--port", str(port)]
    if no_http:
        cmd += ["--no-http"]
    return [*cmd, "--ready-file", str(ready)]


def spawn(
    cmd: list[str], log: Path, *, env: Mapping[str, str] | None = None, append: bool = True, new_session: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` (a ``funchost`` command line) in this checkout, its output into ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab" if append else "wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(  # this interpreter running our own module, no shell  # nosec B603
            cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=dict(env) if env is not None else None,
            start_new_session=new_session,
        )  # fmt: skip


def await_ready(
    proc: subprocess.Popen[bytes],
    ready: Path,
    what: str,
    log: Path,
    timeout: float,
    *,
    error: Callable[[str], Exception] = RuntimeError,
) -> None:
    """Until ``ready`` exists; ``error`` at once if ``proc`` exits first, or after ``timeout``."""

    def started() -> bool:
        if ready.exists():
            return True
        if proc.poll() is not None:
            raise error(f"{what} exited with {proc.returncode}; see {log}")
        return False

    wait_until(f"{what} to start (log {log})", started, timeout, every=0.1, error=error)


def api_status(
    member: str, ports: Iterable[int], *, error: Callable[[str], Exception] = RuntimeError
) -> dict[str, Any]:
    """``GET /api/status`` of ``member``'s own deployment: the first of its hosts on ``ports`` that answers."""
    errors = []
    for port in ports:
        try:
            # a local http URL of the member's own host
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as r:  # nosec B310
                return dict(json.loads(r.read()))
        except (OSError, ValueError) as e:
            errors.append(f"port {port}: {e}")
    raise error(f"{member}'s deployment does not answer ({'; '.join(errors)})")
