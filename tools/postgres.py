"""A private PostgreSQL server for the local stack and the tests: Debian's ``postgresql`` package, one
cluster in a folder of its own, on a free loopback port, as Azurite is started.

Each Corda identity's ledger is a PostgreSQL database outside the VM that runs it (docs/stateful-nodes.md):
in Azure, the member's own flexible server; locally, this cluster. ``create_ledger`` makes one database
and one login role per identity, the role owning the database, as the member's operator (or its
provisioning) would; the node and its keeper then log in as that role, never as the superuser.

Debian's server refuses to run as root (``initdb``: "cannot be run as root"): as root, the cluster's folder
is made under the system's temporary folder, owned by the ``postgres`` account the package creates, and
the server runs as that account (``runuser``). The superuser's password is made for the run, kept in the
cluster's folder (0600) and never in the repository; every login is over TCP with SCRAM.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tools.azurite import free_ports

#: Corda 4.12 supports PostgreSQL 14 to 18 (its "platform support" page).
SUPPORTED_MAJORS = range(14, 19)
_IDENTITY = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


class PostgresError(RuntimeError):
    """The server could not be found or started; the message says why and what to do."""


def server_binaries(root: Path = Path("/usr/lib/postgresql")) -> Path:
    """The newest supported ``{root}/N/bin`` (Debian's layout) that has a server, or ``PostgresError``."""
    found = []
    for folder in root.glob("*/bin"):
        major = folder.parent.name
        if major.isdigit() and int(major) in SUPPORTED_MAJORS and (folder / "postgres").exists():
            found.append((int(major), folder))
    if not found:
        raise PostgresError(
            f"no PostgreSQL server (14 to 18) under {root}: install Debian's `postgresql` package "
            "(`make test` does it through tools/ensure_postgres.sh when it can)"
        )
    return max(found)[1]


def _as_server_account() -> list[str]:
    """The prefix that runs a server program as the ``postgres`` account when this process is root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise PostgresError("running as root and `runuser` is missing: PostgreSQL's server refuses to run as root")
    return ["runuser", "-u", "postgres", "--"]


def ledger_name(identity: str) -> str:
    """The database and role of one identity's ledger: ``ledger_`` and the identity, hyphens as underscores."""
    if not _IDENTITY.match(identity):
        raise ValueError(f"identity {identity!r}: lowercase letters, digits and hyphens, starting with a letter")
    return "ledger_" + identity.replace("-", "_")


@dataclass(frozen=True)
class Ledger:
    """Where one identity's node finds its ledger, and as whom it logs in."""

    identity: str
    host: str
    port: int
    database: str
    role: str
    password: str

    def conninfo(self, **options: str) -> str:
        """A libpq connection string (``options`` are extra keywords, e.g. ``application_name``)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host, port=self.port, dbname=self.database, user=self.role, password=self.password, **options
        )


@dataclass(frozen=True)
class Postgres:
    """A running private cluster: its port and the superuser's login for provisioning."""

    port: int
    folder: Path
    admin_password: str
    pid: int
    host: str = "127.0.0.1"

    def admin_conninfo(self, database: str = "postgres") -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host, port=self.port, dbname=database, user="postgres", password=self.admin_password
        )

    def create_ledger(self, identity: str) -> Ledger:
        """One identity's database and login role (made if absent; a new password each call)."""
        import psycopg
        from psycopg import sql

        name = ledger_name(identity)
        password = secrets.token_urlsafe(24)
        with psycopg.connect(self.admin_conninfo(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
            )
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name)))
        return Ledger(identity, self.host, self.port, name, name, password)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # argv built here  # nosec B603
    if done.returncode != 0:
        raise PostgresError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-600:]}")


def start(*, timeout: float = 30.0) -> tuple[Postgres, subprocess.Popen[bytes]]:
    """A new cluster in a new folder, started on a free port; returns once it accepts the superuser."""
    binaries, prefix = server_binaries(), _as_server_account()
    folder = Path(tempfile.mkdtemp(prefix="ledgers-pg-"))
    data, password = folder / "data", secrets.token_urlsafe(24)
    pwfile = folder / "superuser.pw"
    pwfile.write_text(password)
    pwfile.chmod(0o600)
    if prefix:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    _run(
        [*prefix, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}",
         "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"],
        "initdb",
    )  # fmt: skip
    (port,) = free_ports(1)
    log = (folder / "server.log").open("ab")
    proc = subprocess.Popen(  # argv built here  # nosec B603
        [*prefix, str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
         "-c", f"unix_socket_directories={folder}", "-c", "max_connections=200", "-c", "fsync=on"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    server = Postgres(port, folder, password, proc.pid)
    deadline = time.monotonic() + timeout
    import psycopg

    while True:
        if proc.poll() is not None:
            raise PostgresError(f"postgres exited with {proc.returncode}; its log: {folder / 'server.log'}")
        try:
            psycopg.connect(server.admin_conninfo(), connect_timeout=2).close()
            return server, proc
        except psycopg.OperationalError as error:
            if time.monotonic() > deadline:
                stop(server, proc)
                raise PostgresError(f"postgres did not accept logins within {timeout:.0f} s: {error}") from error
            time.sleep(0.1)


def stop(server: Postgres, proc: subprocess.Popen[bytes] | None = None, *, keep: bool = False) -> None:
    """Fast shutdown (SIGINT: roll back and disconnect), SIGKILL if it lingers; the folder goes unless ``keep``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGINT)
    if proc is not None:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    if not keep:
        shutil.rmtree(server.folder, ignore_errors=True)


@contextlib.contextmanager
def running() -> Iterator[Postgres]:
    """A private cluster for the block."""
    server, proc = start()
    try:
        yield server
    finally:
        stop(server, proc)
