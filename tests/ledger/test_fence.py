"""The fence in an identity's ledger, on a real PostgreSQL: only the current tenure's sessions write, a
stale take disturbs nobody, and an old tenure's writes all commit before a new tenure's first one.

The sessions here stand in for a Corda node's JDBC pool (no Corda 4.12 node on this machine: issue 25):
each logs in as the identity's role with its tenure's token in its startup options, as the node's
``dataSource.url`` would carry it.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodeagent.identity import fence
from tools.postgres import Ledger

pytestmark = pytest.mark.integration


def session(ledger: Ledger, token: int | None, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    options = {"options": fence.startup_options(token)} if token is not None else {}
    return psycopg.connect(ledger.conninfo(application_name=f"node-{token}", **options), autocommit=autocommit)


@pytest.fixture
def keeper(ledger: Ledger) -> psycopg.Connection[Any]:
    """The keeper's own session (no token: it never writes the ledger), with a fenced table the node made."""
    conn = psycopg.connect(ledger.conninfo(application_name="keeper"), autocommit=True)
    conn.execute("CREATE TABLE records (id bigserial PRIMARY KEY, token bigint NOT NULL, note text)")
    assert fence.arm(conn) == []
    return conn


def count(conn: psycopg.Connection[Any], query: str) -> int:
    row = conn.execute(query).fetchone()
    assert row is not None and row[0] is not None
    return int(row[0])


def refused(conn: psycopg.Connection[Any], statement: str) -> str:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(statement)
    assert caught.value.sqlstate == fence.FENCED, caught.value
    return str(caught.value).splitlines()[0]


def test_install_is_idempotent_and_a_new_ledger_is_held_by_nobody(ledger: Ledger) -> None:
    with psycopg.connect(ledger.conninfo(), autocommit=True) as conn:
        fence.install(conn)
        fence.install(conn)
        assert fence.holder(conn) == fence.Holder(0, "")


def test_arm_covers_every_table_in_every_schema_and_names_the_ones_made_after_it(ledger: Ledger) -> None:
    with psycopg.connect(ledger.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE node_transactions (id int)")
        conn.execute("CREATE SCHEMA vault")
        conn.execute("CREATE TABLE vault.states (id int) PARTITION BY RANGE (id)")
        assert fence.arm(conn) == []
        conn.execute("CREATE TABLE node_checkpoints (id int)")
        assert [r[0] for r in conn.execute("SELECT fence.unarmed()").fetchall()] == ["public.node_checkpoints"]
        assert fence.arm(conn) == []
        assert conn.execute("SELECT fence.arm()").fetchone() == (0,)  # nothing left: arming twice adds nothing


def test_only_the_current_tenures_sessions_write(ledger: Ledger, keeper: psycopg.Connection[Any]) -> None:
    fence.take(keeper, 7, "vmss-a/3")
    with session(ledger, 7) as current:
        current.execute("INSERT INTO records (token) VALUES (7)")
        current.execute("UPDATE records SET note = 'updated'")
        current.execute("DELETE FROM records WHERE note IS NULL")
    for token, shown in ((None, "none"), (6, "6"), (8, "8")):
        with session(ledger, token) as other:
            for statement in ("INSERT INTO records (token) VALUES (0)", "UPDATE records SET note = 'x'",
                              "DELETE FROM records", "TRUNCATE records"):  # fmt: skip
                message = refused(other, statement)
                assert message == (
                    f"fenced: this session writes with fencing token {shown}, the identity is held with token 7"
                )
            assert other.execute("SELECT count(*) FROM records").fetchone() == (1,)  # reads are not fenced
    with psycopg.connect(ledger.conninfo(options="-c fence.token=7x"), autocommit=True) as odd:
        refused(odd, "INSERT INTO records (token) VALUES (7)")


def test_a_take_that_is_not_newer_is_refused_and_disturbs_no_session(
    ledger: Ledger, keeper: psycopg.Connection[Any]
) -> None:
    assert fence.take(keeper, 3, "vmss-a/1") == 0
    with session(ledger, 3) as current:
        current.execute("INSERT INTO records (token) VALUES (3)")
        for stale in (3, 2):
            with pytest.raises(fence.FenceError, match=rf"token {stale} is not newer than the holder's 3"):
                fence.take(keeper, stale, "vmss-a/2")
        current.execute("INSERT INTO records (token) VALUES (3)")  # still connected, still the holder
    assert fence.holder(keeper) == fence.Holder(3, "vmss-a/1")


def test_a_take_ends_the_old_tenures_sessions_and_rolls_back_what_they_had_not_committed(
    ledger: Ledger, keeper: psycopg.Connection[Any]
) -> None:
    fence.take(keeper, 1, "vmss-a/0")
    idle, busy = session(ledger, 1), session(ledger, 1, autocommit=False)
    idle.execute("INSERT INTO records (token, note) VALUES (1, 'committed')")
    busy.execute("INSERT INTO records (token, note) VALUES (1, 'in flight')")  # open transaction
    assert fence.take(keeper, 2, "vmss-a/1") == 1
    for conn in (idle, busy):
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
            conn.commit()
    with session(ledger, 1) as late:  # the old node's pool reconnects with the token it was started with
        refused(late, "INSERT INTO records (token, note) VALUES (1, 'late')")
    notes = keeper.execute("SELECT token, note FROM records ORDER BY id").fetchall()
    assert notes == [(1, "committed")]
    assert fence.holder(keeper) == fence.Holder(2, "vmss-a/1")


def test_an_old_tenures_writes_all_commit_before_the_new_tenures_first_while_it_writes_flat_out(
    ledger: Ledger, keeper: psycopg.Connection[Any]
) -> None:
    """A writer of tenure 1 inserts in a loop and reconnects whenever it is cut off (as a pool does); tenure
    2 takes over mid-stream and writes. The ids (one sequence, taken at insert) never interleave."""
    fence.take(keeper, 1, "vmss-a/0")
    stop = threading.Event()
    refusals: list[psycopg.Error] = []
    errors: list[psycopg.Error] = []

    def old_node() -> None:
        while not stop.is_set():
            try:
                with session(ledger, 1, autocommit=False) as conn:
                    while not stop.is_set():
                        conn.execute("INSERT INTO records (token) VALUES (1)")
                        conn.execute("INSERT INTO records (token) VALUES (1)")
                        conn.commit()
            except psycopg.Error as error:
                (refusals if error.sqlstate == fence.FENCED else errors).append(error)

    writer = threading.Thread(target=old_node)
    writer.start()
    try:
        while count(keeper, "SELECT count(*) FROM records") < 200:
            pass
        fence.take(keeper, 2, "vmss-a/1")
        with session(ledger, 2) as new:
            for _ in range(100):
                new.execute("INSERT INTO records (token) VALUES (2)")
        while len(refusals) < 3:  # the old node keeps trying and keeps being refused
            pass
    finally:
        stop.set()
        writer.join(timeout=30)
    last_old = count(keeper, "SELECT max(id) FROM records WHERE token = 1")
    first_new = count(keeper, "SELECT min(id) FROM records WHERE token = 2")
    assert last_old < first_new and count(keeper, "SELECT count(*) FROM records WHERE token = 2") == 100
    # each of the old node's two-row transactions landed whole or not at all
    assert count(keeper, "SELECT count(*) FROM records WHERE token = 1") % 2 == 0
    assert all(isinstance(e, psycopg.OperationalError) for e in errors)  # only its session ended by the take


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["take", "write"]), st.integers(0, 4)), min_size=1, max_size=12))
def test_a_write_lands_exactly_when_its_token_is_the_newest_taken(
    ledger: Ledger, keeper: psycopg.Connection[Any], steps: list[tuple[str, int]]
) -> None:
    """Any order of takes and writes, tokens relative to the holder's at the start: a take succeeds iff
    its token is newer than every token taken before; a write lands iff its token is the holder's."""
    base = fence.holder(keeper).token
    held = base
    for action, offset in steps:
        token = base + offset
        if action == "take":
            if token > held:
                fence.take(keeper, token, f"vm-{token}")
                held = token
            else:
                with pytest.raises(fence.FenceError):
                    fence.take(keeper, token, f"vm-{token}")
        else:
            with session(ledger, token) as conn:
                if token == held and held > 0:
                    conn.execute("INSERT INTO records (token) VALUES (%s)", (token,))
                else:
                    refused(conn, "INSERT INTO records (token) VALUES (0)")
    assert fence.holder(keeper).token == held
