"""Start and stop Azurite from the project's own ``node_modules``, with a readiness check.

Used by ``make up`` (default ports, data under ``.local/azurite``) and by the test fixtures (free
ports, a temporary folder), so tests never collide with a running stack or with each other.

One Azurite serves several storage accounts (``AZURITE_ACCOUNTS``): ``devstoreaccount1``, which
today's single-deployment stack uses, and one account per local member (its id without hyphens,
``banka`` for ``bank-a``), so each member's deployment has storage of its own. As Azurite's
``AccountDataStore`` parses it, the variable is ``name:key1[:key2];name:key1[:key2];...``, keys in
base64, and once it is set it *replaces* the default account, so ``devstoreaccount1`` is listed
too. Every account uses Azurite's public development key. Endpoints are path-style
(``http://127.0.0.1:PORT/<account>``), the only form Azurite serves on an IP address.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
DEFAULT_PORTS = (10000, 10001, 10002)
ACCOUNT = "devstoreaccount1"
#: Azurite's public, documented development key (not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: The members of the local stack (docs/contract.md, "The local stack").
MEMBER_IDS = ("bank-a", "bank-b", "bank-c", "bank-d")
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")


def account_for(member_id: str) -> str:
    """A member's storage account in the local Azurite: its id without hyphens (``bank-a`` -> ``banka``)."""
    name = member_id.replace("-", "")
    if not _ACCOUNT_NAME.match(name):
        raise ValueError(f"member {member_id!r} gives the account name {name!r}: 3-24 lowercase letters and digits")
    return name


#: The accounts every Azurite the project starts serves: today's account first, then one per member.
ACCOUNTS: tuple[str, ...] = (ACCOUNT, *(account_for(m) for m in MEMBER_IDS))


def accounts_variable(accounts: Iterable[str]) -> str:
    """The value of ``AZURITE_ACCOUNTS`` for these accounts, each with the development key."""
    names = list(dict.fromkeys(accounts))
    for name in names:
        if not _ACCOUNT_NAME.match(name):
            raise ValueError(f"{name!r} is not a storage account name (3-24 lowercase letters and digits)")
    return ";".join(f"{name}:{ACCOUNT_KEY}" for name in names)


class AzuriteError(RuntimeError):
    """Azurite could not be started; the message says why and what to do."""


@dataclass(frozen=True)
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int
    pid: int | None = None
    accounts: tuple[str, ...] = ACCOUNTS

    @property
    def connection_string(self) -> str:
        """The connection string for ``devstoreaccount1`` (``UseDevelopmentStorage=true`` on the defaults)."""
        if (self.blob_port, self.queue_port, self.table_port) == DEFAULT_PORTS:
            return "UseDevelopmentStorage=true"
        return self.connection_string_for(ACCOUNT)

    def connection_string_for(self, account: str) -> str:
        """The connection string for one of this Azurite's accounts, path-style endpoints, development key."""
        if account not in self.accounts:
            raise ValueError(f"this Azurite serves {', '.join(self.accounts)}, not {account!r}")
        return (
            f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint(account)};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{account};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{account};"
        )

    def blob_endpoint(self, account: str) -> str:
        """The account's blob service URL (path-style: Azurite serves every account on one port)."""
        return f"http://127.0.0.1:{self.blob_port}/{account}"


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


def account_ready(az: Azurite, account: str) -> bool:
    """Whether Azurite serves ``account``: a blob and a queue request signed with its key both succeed.

    An account Azurite does not know fails authentication, so this tells a missing account (a wrong
    ``AZURITE_ACCOUNTS``) from one that serves.
    """
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    conn = az.connection_string_for(account)
    options: dict[str, Any] = {"connection_timeout": 1, "read_timeout": 2, "retry_total": 0}
    try:
        BlobServiceClient.from_connection_string(conn, **options).get_service_properties()
        QueueServiceClient.from_connection_string(conn, **options).get_service_properties()
    except (AzureError, OSError):
        return False
    return True


def wait_ready(az: Azurite, *, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until all three services accept requests and every account serves; fail early if the process died."""
    deadline = time.monotonic() + timeout
    waiting = list(az.accounts)
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AzuriteError(f"Azurite exited with code {proc.returncode} before it was ready")
        if is_azurite(az.blob_port) and port_in_use(az.queue_port) and port_in_use(az.table_port):
            waiting = [a for a in waiting if not account_ready(az, a)]
            if not waiting:
                return
        time.sleep(0.1)
    missing = f" (account(s) {', '.join(waiting)} not served)" if waiting else ""
    raise AzuriteError(f"Azurite was not ready within {timeout:.0f} s{missing}")


def start(
    location: Path,
    *,
    ports: tuple[int, int, int] = DEFAULT_PORTS,
    log_file: Path | None = None,
    timeout: float = 30.0,
    accounts: Iterable[str] = ACCOUNTS,
) -> tuple[Azurite, subprocess.Popen[bytes]]:
    """Start Azurite on ``ports`` with its data in ``location``, serving ``accounts``; return once each serves.

    ``devstoreaccount1`` is always served (today's stack and most tests use it), whatever ``accounts`` says.
    """
    served = tuple(dict.fromkeys((ACCOUNT, *accounts)))
    variable = accounts_variable(served)
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
    env = {**os.environ, "AZURITE_ACCOUNTS": variable}
    # argv built above
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)  # nosec B603
    az = Azurite(*ports, pid=proc.pid, accounts=served)
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

    A storage outage for the chaos suite (``tools/chaos``): clients see refused connections for
    ``down_seconds``, then the same account with the data Azurite saved when it stopped.
    """
    if az.pid is not None:
        stop_pid(az.pid)
    time.sleep(down_seconds)
    ports = (az.blob_port, az.queue_port, az.table_port)
    return start(location, ports=ports, log_file=log_file, timeout=timeout, accounts=az.accounts)
