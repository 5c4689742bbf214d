"""The local stack behind `make up` / `make down`: Azurite, the Azure emulator and the local host.

``up`` starts each piece in the background, waits on a readiness check (never a sleep), and records
what it started in ``.local/stack.json`` (pid and start time); a second ``up`` reports what already runs
and starts only what is missing. ``down`` stops what ``up`` recorded (SIGTERM, then SIGKILL after a grace
period), only where the pid still belongs to the process ``up`` started, and is harmless when nothing
runs. A taken port is reported by number before anything starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tools import azurite

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class StackPaths:
    root: Path = ROOT

    @property
    def local(self) -> Path:
        return self.root / ".local"

    @property
    def logs(self) -> Path:
        return self.local / "logs"

    @property
    def record(self) -> Path:
        return self.local / "stack.json"


class StackError(RuntimeError):
    """The stack could not start; the message says which piece and why."""


def _started(pid: int) -> float | None:
    """When process ``pid`` started (psutil's ``create_time``), or None when no such process runs.

    Recorded beside each pid by ``up`` and compared by ``down``: a pid the system has since given to
    another process has another start time, so ``down`` never signals a process it did not start.
    """
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # a zombie child of ours: reap it, it counts as gone
            return None
        return float(process.create_time())
    except (psutil.NoSuchProcess, ValueError):
        return None


def _alive(entry: dict[str, Any]) -> bool:
    """Whether the process a record entry names still runs: same pid and same start time."""
    started = entry.get("started")
    current = _started(int(entry.get("pid", 0) or 0))
    return current is not None and started is not None and abs(current - float(started)) < 0.01


def _read(paths: StackPaths) -> dict[str, Any]:
    if not paths.record.exists():
        return {}
    try:
        return dict(json.loads(paths.record.read_text()))
    except json.JSONDecodeError:
        return {}


def _write(paths: StackPaths, record: dict[str, Any]) -> None:
    paths.local.mkdir(parents=True, exist_ok=True)
    paths.record.write_text(json.dumps(record, indent=2))


def _http_ready(url: str, *, ca: Path | None = None) -> bool:
    context = ssl.create_default_context(cafile=str(ca)) if ca and ca.exists() else None
    try:
        with urllib.request.urlopen(url, timeout=1, context=context) as r:  # noqa: S310 - local URLs only  # nosec B310
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def _configure_emulator(url: str, ca: Path) -> str:
    """Nodes in the emulator boot as long as the app believes (AUTOSCALE_BOOT_SECONDS in local.settings.json)."""
    values = json.loads((ROOT / "local.settings.json").read_text()).get("Values", {})
    boot = str(values.get("AUTOSCALE_BOOT_SECONDS", "90"))
    body = json.dumps({"boot_delay_seconds": float(boot)}).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(f"{url}/_admin/config", data=body, method="PUT", headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=10, context=ssl.create_default_context(cafile=str(ca))):  # noqa: S310 - https://localhost  # nosec B310
        return boot


def _wait(check: Any, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise StackError(f"{what} exited with code {proc.returncode} before it was ready; log {log}:\n{tail}")
        time.sleep(0.1)
    raise StackError(f"{what} was not ready within {timeout:.0f} s; see {log}")


def _spawn(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        # cmd is built by up(): this interpreter running one of our own modules
        return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,  # nosec B603
                                env={**os.environ, **(env or {})})  # fmt: skip


def _sayer(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    return say


def up(
    paths: StackPaths | None = None,
    *,
    host: bool = True,
    emulator_port: int = 8443,
    host_port: int = 7071,
    instances: int = 1,
    quiet: bool = False,
) -> dict[str, Any]:
    """Start what is not running yet; return the record of what runs."""
    paths = paths or StackPaths()
    say = _sayer(quiet)
    record = {k: v for k, v in _read(paths).items() if _alive(v)}

    if "azurite" in record:
        say(f"azurite        already running (pid {record['azurite']['pid']})")
    else:
        try:
            _, proc = azurite.start(paths.local / "azurite", log_file=paths.logs / "azurite.log")
        except azurite.AzuriteError as e:
            raise StackError(f"azurite: {e}") from None
        record["azurite"] = {"pid": proc.pid, "started": _started(proc.pid), "ports": list(azurite.DEFAULT_PORTS)}
        say(f"azurite        ready on 10000/10001/10002 (pid {proc.pid})")
    _write(paths, record)

    if (ROOT / "tools" / "emulator" / "__main__.py").exists():
        state = paths.local / "emulator"
        health = f"https://localhost:{emulator_port}/_admin/health"
        if "emulator" in record:
            say(f"emulator       already running (pid {record['emulator']['pid']})")
        else:
            if azurite.port_in_use(emulator_port):
                raise StackError(f"emulator: port {emulator_port} already in use by another program")
            log = paths.logs / "emulator.log"
            proc = _spawn(
                [sys.executable, "-m", "tools.emulator", "--port", str(emulator_port), "--state-dir", str(state)], log
            )
            _wait(lambda: _http_ready(health, ca=state / "ca.pem"), proc, "the Azure emulator", log, 60)
            record["emulator"] = {"pid": proc.pid, "started": _started(proc.pid), "port": emulator_port}
            boot = _configure_emulator(f"https://localhost:{emulator_port}", state / "ca.pem")
            say(f"emulator       ready on https://localhost:{emulator_port} (pid {proc.pid}, nodes boot in {boot} s)")
        _write(paths, record)

    if host:
        if "funchost" in record:
            say(f"functions host already running (pid {record['funchost']['pid']})")
        else:
            taken = [p for p in range(host_port, host_port + instances) if azurite.port_in_use(p)]
            if taken:
                raise StackError(f"functions host: port(s) {', '.join(map(str, taken))} already in use")
            log = paths.logs / "funchost.log"
            ready = paths.local / "funchost.ready"
            ready.unlink(missing_ok=True)
            cmd = [sys.executable, "-m", "tools.funchost", "--port", str(host_port), "--instances", str(instances),
                   "--ready-file", str(ready)]  # fmt: skip
            proc = _spawn(cmd, log)
            _wait(ready.exists, proc, "the local Functions host", log, 60)
            record["funchost"] = {"pid": proc.pid, "started": _started(proc.pid), "port": host_port,
                                  "instances": instances}  # fmt: skip
            say(f"functions host ready on http://localhost:{host_port} (pid {proc.pid}, {instances} instance(s))")
        _write(paths, record)
    say(f"logs in {paths.logs.relative_to(paths.root) if paths.logs.is_relative_to(paths.root) else paths.logs}")
    return record


def down(paths: StackPaths | None = None, *, quiet: bool = False) -> None:
    """Stop what `up` started, newest first; harmless when nothing runs."""
    paths = paths or StackPaths()
    say = _sayer(quiet)
    record = _read(paths)
    if not record:
        say("nothing to stop")
        return
    for name in ("funchost", "emulator", "azurite"):
        entry = record.get(name)
        if not entry:
            continue
        pid = int(entry["pid"])
        if _alive(entry):
            azurite.stop_pid(pid, timeout=150 if name == "funchost" else 10)
            say(f"stopped {name} (pid {pid})")
        else:
            say(f"{name} was not running (pid {pid} is gone, or now another process's)")
    paths.record.unlink(missing_ok=True)


def status(paths: StackPaths | None = None) -> dict[str, Any]:
    paths = paths or StackPaths()
    return {k: {**v, "running": _alive(v)} for k, v in _read(paths).items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.stack", description="Start or stop the local stack.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start Azurite, the Azure emulator and the local Functions host")
    p_up.add_argument(
        "--no-host", action="store_true", help="start Azurite and the emulator only (e.g. for `func start`)"
    )
    p_up.add_argument("--instances", type=int, default=1, help="local host instances (default 1)")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="show what runs")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(host=not args.no_host, instances=args.instances)
        elif args.command == "down":
            down()
        else:
            current = status()
            if not current:
                print("nothing runs")
            for name, entry in current.items():
                print(f"{name:10} {'running' if entry['running'] else 'stopped'}  pid {entry['pid']}")
    except StackError as e:
        print(f"make up: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
