"""Start and stop Azurite from the project's own ``node_modules``, with a readiness check.

Used by ``make up`` (default ports, data under ``.local/azurite``) and by the test fixtures (free
ports, a temporary folder), so tests never collide with a running stack or with each other.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
DEFAULT_PORTS = (10000, 10001, 10002)
ACCOUNT = "devstoreaccount1"
#: Azurite's public, documented development key (not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteError(RuntimeError):
    """Azurite could not be started; the message says why and what to do."""


@dataclass(frozen=True)
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int
    pid: int | None = None

    @property
    def connection_string(self) -> str:
        """The connection string for these ports (``UseDevelopmentStorage=true`` on the defaults)."""
        if (self.blob_port, self.queue_port, self.table_port) == DEFAULT_PORTS:
            return "UseDevelopmentStorage=true"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT};"
        )


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_ports(count: int) -> list[int]:
    """Ports the OS says are free right now (bound and released together, so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def is_azurite(port: int) -> bool:
    """Whether an Azurite blob service answers on ``port`` (it names itself in the Server header)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{ACCOUNT}?comp=list", timeout=1) as r:  # a local http URL  # nosec B310
            server = r.headers.get("Server", "")
    except urllib.error.HTTPError as e:
        server = e.headers.get("Server", "")
    except OSError:
        return False
    return "Azurite" in server


def wait_ready(az: Azurite, *, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until all three services accept requests; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AzuriteError(f"Azurite exited with code {proc.returncode} before it was ready")
        if is_azurite(az.blob_port) and port_in_use(az.queue_port) and port_in_use(az.table_port):
            return
        time.sleep(0.1)
    raise AzuriteError(f"Azurite was not ready within {timeout:.0f} s")


def start(
    location: Path,
    *,
    ports: tuple[int, int, int] = DEFAULT_PORTS,
    log_file: Path | None = None,
    timeout: float = 30.0,
) -> tuple[Azurite, subprocess.Popen[bytes]]:
    """Start Azurite on ``ports`` with its data in ``location``; return once it answers."""
    if not AZURITE_BIN.exists():
        raise AzuriteError(f"{AZURITE_BIN.relative_to(ROOT)} is missing: run `make bootstrap` (npm ci)")
    taken = [p for p in ports if port_in_use(p)]
    if taken:
        raise AzuriteError(
            f"port(s) {', '.join(map(str, taken))} already in use"
            + (" by another Azurite" if is_azurite(ports[0]) else " by another program")
            + ": stop it (`make down`, or find it with `ss -ltnp`) and try again"
        )
    location.mkdir(parents=True, exist_ok=True)
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    cmd = [
        str(AZURITE_BIN),
        "--location", str(location),
        "--blobHost", "127.0.0.1", "--blobPort", str(ports[0]),
        "--queueHost", "127.0.0.1", "--queuePort", str(ports[1]),
        "--tableHost", "127.0.0.1", "--tablePort", str(ports[2]),
        "--skipApiVersionCheck",
        "--disableTelemetry",
    ]  # fmt: skip
    if log_file:
        cmd += ["--debug", str(log_file.with_suffix(".debug.log"))] if os.environ.get("AZURITE_DEBUG") else []
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # argv built above  # nosec B603
    az = Azurite(*ports, pid=proc.pid)
    try:
        wait_ready(az, timeout=timeout, proc=proc)
    except AzuriteError:
        stop_pid(proc.pid)
        raise
    return az, proc


def stop_pid(pid: int, *, timeout: float = 10.0) -> None:
    """Stop the process group cleanly (SIGTERM), then SIGKILL if it lingers."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:  # our own child: reap it, or it lingers as a zombie
                return
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def restart(
    az: Azurite, location: Path, *, log_file: Path | None = None, down_seconds: float = 0.0, timeout: float = 30.0
) -> tuple[Azurite, subprocess.Popen[bytes]]:
    """Stop the Azurite ``az`` names (by its pid) and start it again on the same ports and data folder.

    A storage outage for the chaos suite (``tools/chaos.py``): clients see refused connections for
    ``down_seconds``, then the same account with the data Azurite saved when it stopped.
    """
    if az.pid is not None:
        stop_pid(az.pid)
    time.sleep(down_seconds)
    return start(location, ports=(az.blob_port, az.queue_port, az.table_port), log_file=log_file, timeout=timeout)
