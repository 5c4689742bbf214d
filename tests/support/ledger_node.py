"""Stands in for a Corda node's database side in the identity keeper's tests: no Corda 4.12 node can be
fetched on this machine (issue 25), and what the fence must stop is the node's JDBC pool, which this is.

``python -m tests.support.ledger_node migrate`` makes the ledger's table (as ``run-migration-scripts``
would); ``python -m tests.support.ledger_node run`` writes one record per transaction, with its tenure's
token and its pid, until SIGTERM, and reconnects after any error as a connection pool does, writing one
line per event to ``NODE_LOG``: ``refused <message>`` (the fence), ``error <message>`` or ``stopped``.
Settings from the environment: ``LEDGER_CONNINFO`` (libpq), ``MIGRATE_SECONDS`` (how long the schema step
takes, default 0), and from the keeper ``LEDGER_OPTIONS`` and ``FENCE_TOKEN``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import psycopg

FENCED = "CPF01"  # nodeagent.identity.fence.FENCED, not imported: this process is the node, not the agent


def _log(line: str) -> None:
    with Path(os.environ["NODE_LOG"]).open("a") as out:
        out.write(line.replace("\n", " ") + "\n")


def _connect() -> psycopg.Connection:
    return psycopg.connect(os.environ["LEDGER_CONNINFO"], options=os.environ["LEDGER_OPTIONS"], connect_timeout=3)


def migrate() -> None:
    time.sleep(float(os.environ.get("MIGRATE_SECONDS", "0")))  # a long schema step, as Corda's first can be
    with _connect() as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS records (id bigserial PRIMARY KEY, token bigint NOT NULL,"
            " pid integer NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )


def run() -> None:
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    token, pid = int(os.environ["FENCE_TOKEN"]), os.getpid()
    while not stopping:
        try:
            with _connect() as conn:
                while not stopping:
                    conn.execute("INSERT INTO records (token, pid) VALUES (%s, %s)", (token, pid))
                    conn.commit()
                    time.sleep(0.02)
        except psycopg.Error as error:
            kind = "refused" if error.sqlstate == FENCED else "error"
            _log(f"{kind} {str(error).splitlines()[0] if str(error) else type(error).__name__}")
            time.sleep(0.2)
    _log("stopped")


if __name__ == "__main__":
    {"migrate": migrate, "run": run}[sys.argv[1]]()
