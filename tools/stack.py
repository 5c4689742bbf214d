"""The local stack behind `make up` / `make down`: Azurite, the Azure emulator and the local host(s).

``up`` starts each piece in the background, waits on a readiness check (never a sleep), and records
what it started in ``.local/stack.json`` (pid and start time); a second ``up`` reports what already runs
and starts only what is missing. ``down`` stops what ``up`` recorded (SIGTERM, then SIGKILL after a grace
period), only where the pid still belongs to the process ``up`` started, and is harmless when nothing
runs. A taken port is reported by number before anything starts.

Two shapes: ``members`` (:func:`up_members`, what ``make up`` starts: one host per member,
bank-a..bank-d, each on its own account, port and ``.local/members/{member_id}/local.settings.json``,
its identity registered in the emulator, docs/contract.md "The local stack"; the founders' genesis
ceremony, ``tools/ceremony.py``, runs before the hosts start, so each starts with
``CONSORTIUM_GENESIS_HASH`` in its settings) and ``single`` (version 1's one host on
``local.settings.json`` and the account ``devstoreaccount1``, kept while the end-to-end tests, the
chaos suite and the demo still run on it). Both create every queue and container in the accounts they
use before a host starts (``tools/provision.py``). ``DEFAULT_SHAPE`` is what ``python -m tools.stack
up`` (``make up``) starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from shared.errors import ControlPlaneError
from tools import azurite, ceremony, member_settings, provision
from tools.harness.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ("single", "members")
#: What `make up` starts: one deployment per member (issue 15).
DEFAULT_SHAPE = "members"
#: Record keys of the hosts, stopped first by `down`: "funchost" (single) and "funchost:{member_id}" (members).
HOST_KEY = "funchost"


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
    def ready() -> bool:
        if check():
            return True
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise StackError(f"{what} exited with code {proc.returncode} before it was ready; log {log}:\n{tail}")
        return False

    wait_until(what, ready, timeout, every=0.1,
               error=lambda _: StackError(f"{what} was not ready within {timeout:.0f} s; see {log}"))  # fmt: skip


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


def _ensure_azurite(
    paths: StackPaths,
    record: dict[str, Any],
    say: Callable[[str], None],
    ports: tuple[int, int, int] = azurite.DEFAULT_PORTS,
    needed: tuple[str, ...] = azurite.ACCOUNTS,
) -> azurite.Azurite:
    """Azurite on ``ports`` (its defaults for `make up`), serving every account of ``azurite.ACCOUNTS``.

    An Azurite already running is checked for the accounts ``needed`` (one started before the member
    accounts existed serves ``devstoreaccount1`` only: enough for the single shape, not for members).
    """
    if "azurite" in record:
        blob, queue, table = (int(p) for p in record["azurite"].get("ports") or azurite.DEFAULT_PORTS)
        az = azurite.Azurite(blob, queue, table, pid=int(record["azurite"]["pid"]), accounts=needed)
        missing = [a for a in needed if not azurite.account_ready(az, a)]
        if missing:
            raise StackError(
                f"azurite: the running Azurite (pid {az.pid}) does not serve account(s) {', '.join(missing)}; "
                "it was started before they existed: `make down`, then `make up`"
            )
        say(f"azurite        already running (pid {record['azurite']['pid']})")
        return az
    try:
        served = tuple(dict.fromkeys((*azurite.ACCOUNTS, *needed)))  # members beyond bank-d (the bench's bank-e)
        az, proc = azurite.start(
            paths.local / "azurite", ports=ports, log_file=paths.logs / "azurite.log", accounts=served
        )
    except azurite.AzuriteError as e:
        raise StackError(f"azurite: {e}") from None
    record["azurite"] = {"pid": proc.pid, "started": _started(proc.pid), "ports": list(ports),
                         "accounts": list(az.accounts)}  # fmt: skip
    say(f"azurite        ready on {'/'.join(map(str, ports))}, accounts {', '.join(az.accounts)} (pid {proc.pid})")
    _write(paths, record)
    return az


def _provision(connection_string: str, account: str, say: Callable[[str], None]) -> None:
    try:
        made = provision.provision(connection_string)
    except Exception as e:  # any storage error: say which account, stop before a host starts
        raise StackError(f"azurite: could not create the queues and containers in {account}: {e}") from None
    created = len(made.queues) + len(made.containers)
    names = f"{len(provision.QUEUES)} queues, {len(provision.CONTAINERS)} containers"
    say(f"storage        {account}: {names} ({created} created)")


def _ensure_emulator(paths: StackPaths, record: dict[str, Any], say: Callable[[str], None], port: int) -> None:
    if not (ROOT / "tools" / "emulator" / "__main__.py").exists():
        return
    state = paths.local / "emulator"
    health = f"https://localhost:{port}/_admin/health"
    if "emulator" in record:
        say(f"emulator       already running (pid {record['emulator']['pid']})")
    else:
        if azurite.port_in_use(port):
            raise StackError(f"emulator: port {port} already in use by another program")
        log = paths.logs / "emulator.log"
        proc = _spawn([sys.executable, "-m", "tools.emulator", "--port", str(port), "--state-dir", str(state)], log)
        _wait(lambda: _http_ready(health, ca=state / "ca.pem"), proc, "the Azure emulator", log, 60)
        record["emulator"] = {"pid": proc.pid, "started": _started(proc.pid), "port": port}
        boot = _configure_emulator(f"https://localhost:{port}", state / "ca.pem")
        say(f"emulator       ready on https://localhost:{port} (pid {proc.pid}, nodes boot in {boot} s)")
    _write(paths, record)


def _register_principals(
    url: str, ca: Path, members: tuple[str, ...], say: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Register each member's identity in the emulator (its subscription, its vault); what it answered, by member.

    ``PUT /_admin/principals/{member_id}`` is harmless when the member is registered already. An
    emulator without per-member identities answers 404: then nothing is registered and the members'
    settings carry placeholders (``member_settings.emulator_values``).
    """
    if not ca.exists():
        return {}
    context = ssl.create_default_context(cafile=str(ca))
    registered: dict[str, dict[str, Any]] = {}
    for member in members:
        target = f"{url}/_admin/principals/{member}"
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(target, data=b"{}", method="PUT", headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as r:  # noqa: S310 - https://localhost  # nosec B310
                registered[member] = dict(json.loads(r.read()))
        except urllib.error.HTTPError as e:
            if e.code == 404:
                say("emulator       has no per-member identities yet: the members' settings carry placeholders")
                return {}
            raise StackError(f"emulator: registering {member} failed with {e.code}: {e.read()[:300]!r}") from None
    say(f"emulator       identities of {', '.join(registered)} registered")
    return registered


@dataclass(frozen=True)
class HostSpec:
    """One local Functions host to start: its record key, settings file, port(s) and environment."""

    key: str
    label: str
    port: int
    instances: int
    settings: Path | None = None
    env: dict[str, str] | None = None
    host_id: str | None = None


def _host_status(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/host/status", timeout=1) as r:  # a local http URL  # nosec B310
            return dict(json.loads(r.read()))
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _start_hosts(paths: StackPaths, record: dict[str, Any], specs: list[HostSpec], say: Callable[[str], None]) -> None:
    """Start the hosts not running yet, all at once, then wait until each takes messages.

    A host takes messages once its ready file exists (every queue listener and timer started, which the
    host does only after indexing the app) and, when it names a host id, its ``/admin/host/status``
    answers ``Running`` with that id, so a stale process on the port is not taken for it.
    """
    pending: list[tuple[HostSpec, subprocess.Popen[bytes], Path, Path]] = []
    for spec in specs:
        if spec.key in record:
            say(f"{spec.label:14} already running (pid {record[spec.key]['pid']})")
            continue
        taken = [p for p in range(spec.port, spec.port + spec.instances) if azurite.port_in_use(p)]
        if taken:
            raise StackError(f"{spec.label}: port(s) {', '.join(map(str, taken))} already in use")
    for spec in specs:
        if spec.key in record:
            continue
        name = spec.key.replace(":", "-")
        log, ready = paths.logs / f"{name}.log", paths.local / f"{name}.ready"
        ready.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "tools.funchost", "--port", str(spec.port), "--instances", str(spec.instances),
               "--ready-file", str(ready)]  # fmt: skip
        if spec.settings is not None:
            cmd += ["--settings", str(spec.settings)]
        pending.append((spec, _spawn(cmd, log, spec.env), log, ready))
    try:
        for spec, proc, log, ready in pending:
            what = f"the local Functions host of {spec.label}" if spec.host_id else "the local Functions host"
            _wait(ready.exists, proc, what, log, 90)
            if spec.host_id:
                _wait(lambda s=spec: _running_as(s), proc, what, log, 30)
            record[spec.key] = {"pid": proc.pid, "started": _started(proc.pid), "port": spec.port,
                                "instances": spec.instances}  # fmt: skip
            if spec.settings is not None:
                record[spec.key]["settings"] = str(spec.settings)
            _write(paths, record)
            say(f"{spec.label:14} ready on http://localhost:{spec.port} (pid {proc.pid}, {spec.instances} instance(s))")
    except StackError:
        for _, proc, _, _ in pending:  # hosts started by this call and not recorded: stop them, leave no orphan
            if proc.pid not in (int(v.get("pid", 0)) for v in record.values()):
                azurite.stop_pid(proc.pid)
        raise


def _running_as(spec: HostSpec) -> bool:
    status = _host_status(spec.port)
    return bool(status and status.get("state") == "Running" and status.get("id") == spec.host_id)


def up(
    paths: StackPaths | None = None,
    *,
    host: bool = True,
    emulator_port: int = 8443,
    host_port: int = 7071,
    instances: int = 1,
    quiet: bool = False,
    azurite_ports: tuple[int, int, int] = azurite.DEFAULT_PORTS,
) -> dict[str, Any]:
    """Start what is not running yet (the single-deployment shape); return the record of what runs.

    The queues and containers are created before the host starts, so a message posted right after
    `make up` lands (no ``QueueNotFound``).
    """
    if host and azurite_ports != azurite.DEFAULT_PORTS:
        raise StackError("the host reads local.settings.json, which names Azurite's default ports")
    paths = paths or StackPaths()
    say = _sayer(quiet)
    record = {k: v for k, v in _read(paths).items() if _alive(v)}
    az = _ensure_azurite(paths, record, say, azurite_ports, needed=(azurite.ACCOUNT,))
    _provision(az.connection_string, azurite.ACCOUNT, say)
    _ensure_emulator(paths, record, say, emulator_port)
    if host:
        _start_hosts(paths, record, [HostSpec(HOST_KEY, "functions host", host_port, instances)], say)
    say(f"logs in {paths.logs.relative_to(paths.root) if paths.logs.is_relative_to(paths.root) else paths.logs}")
    return record


def up_members(
    paths: StackPaths | None = None,
    *,
    members: tuple[str, ...] = azurite.MEMBER_IDS,
    emulator_port: int = 8443,
    instances: int = 1,
    quiet: bool = False,
    azurite_ports: tuple[int, int, int] = azurite.DEFAULT_PORTS,
    host_ports: dict[str, int] | None = None,
    start_hosts: bool = True,
) -> dict[str, Any]:
    """Start what is not running yet of the one-deployment-per-member shape; return the record of what runs.

    Azurite serves each member's account; each account gets every queue and container; each member's
    identity is registered in the emulator and its settings file written (``tools/member_settings.py``:
    fresh read credentials each time); the founders' genesis ceremony runs (``tools/ceremony.py``: a
    second time it finds the genesis and changes nothing) and puts ``CONSORTIUM_GENESIS_HASH`` in every
    member's file; then one local Functions host per member runs on that file and its port, and this
    returns once every one of them takes messages. ``azurite_ports``, ``emulator_port`` and
    ``host_ports`` are the contract's fixed ports unless a test chooses free ones. With ``start_hosts``
    False everything but the hosts is ready (the chaos suite starts, kills and restarts them itself).
    """
    paths = paths or StackPaths()
    say = _sayer(quiet)
    record = {k: v for k, v in _read(paths).items() if _alive(v)}
    az = _ensure_azurite(paths, record, say, azurite_ports, tuple(azurite.account_for(m) for m in members))
    for member in members:
        account = azurite.account_for(member)
        _provision(az.connection_string_for(account), account, say)
    _ensure_emulator(paths, record, say, emulator_port)
    url, ca = f"https://localhost:{emulator_port}", paths.local / "emulator" / "ca.pem"
    emulator = member_settings.Emulator(url, ca, _register_principals(url, ca, members, say))
    files = member_settings.write_all(az, root=paths.root, members=members, ports=host_ports, emulator=emulator)
    _found(paths, members, say)
    if not start_hosts:
        return record
    specs = []
    for member, path in files.items():
        values, port = member_settings.read(path)
        specs.append(
            HostSpec(
                key=f"{HOST_KEY}:{member}",
                label=member,
                port=port,
                instances=instances,
                settings=path,
                # the member's values win over whatever the caller's shell exports (the host only fills gaps)
                env=values,
                host_id=values[member_settings.HOST_ID_SETTING],
            )
        )
    _start_hosts(paths, record, specs, say)
    say(f"logs in {paths.logs.relative_to(paths.root) if paths.logs.is_relative_to(paths.root) else paths.logs}")
    return record


def _found(paths: StackPaths, members: tuple[str, ...], say: Callable[[str], None]) -> None:
    """The founders' genesis ceremony (or, when they hold it already, its check), before any host starts."""
    if not set(ceremony.FOUNDERS) <= set(members):
        say(f"ceremony       skipped: the founders {', '.join(ceremony.FOUNDERS)} are not all in this stack")
        return
    try:
        ceremony.run(paths.root, members=members, say=say)
    except (ceremony.CeremonyError, ControlPlaneError) as e:
        raise StackError(f"the founders' ceremony: {e}") from None


def down(paths: StackPaths | None = None, *, quiet: bool = False) -> None:
    """Stop what `up` started, newest first; harmless when nothing runs."""
    paths = paths or StackPaths()
    say = _sayer(quiet)
    record = _read(paths)
    if not record:
        say("nothing to stop")
        return
    hosts = [k for k in record if k == HOST_KEY or k.startswith(HOST_KEY + ":")]
    names = [n for n in (*hosts, "emulator", "azurite") if n in record]
    running = {n: _alive(record[n]) for n in names}
    for name in hosts:  # every host drains its running invocations at once, not one after another
        if running[name]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(record[name]["pid"]), signal.SIGTERM)
    for name in names:
        pid = int(record[name]["pid"])
        if running[name]:
            azurite.stop_pid(pid, timeout=150 if name in hosts else 10)
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
    p_up = sub.add_parser("up", help="start Azurite, the Azure emulator, the ceremony and the local Functions hosts")
    p_up.add_argument(
        "--no-host", action="store_true", help="start Azurite and the emulator only (e.g. for `func start`)"
    )
    p_up.add_argument("--instances", type=int, default=1, help="local host instances (default 1, per member)")
    p_up.add_argument(
        "--shape",
        choices=SHAPES,
        default=DEFAULT_SHAPE,
        help=f"single: one host on local.settings.json; members: one host per member, bank-a..bank-d "
        f"(default {DEFAULT_SHAPE})",
    )
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="show what runs")
    args = parser.parse_args(argv)
    try:
        if args.command == "up" and args.shape == "members":
            if args.no_host:
                raise StackError("--no-host starts no deployment: use --shape single --no-host")
            up_members(instances=args.instances)
        elif args.command == "up":
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
