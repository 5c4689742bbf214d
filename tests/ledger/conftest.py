"""A private PostgreSQL server for the session (Debian's package, ``tools.postgres``) and a fresh ledger
database per test, each with the fence installed as its identity's own role would install it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from nodeagent.identity import fence
from tools import postgres

_names = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.Postgres]:
    with postgres.running() as server:
        yield server


@pytest.fixture
def ledger(postgres_server: postgres.Postgres) -> postgres.Ledger:
    import psycopg

    made = postgres_server.create_ledger(f"identity-{next(_names)}")
    with psycopg.connect(made.conninfo(), autocommit=True) as conn:
        fence.install(conn)
    return made
