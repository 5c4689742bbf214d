"""The fence in an identity's ledger database: a write from an instance that no longer holds the identity
is refused by PostgreSQL itself, whatever that instance believes.

A lease says which instance may run an identity; it cannot stop a process that was paused past its lease
(a VM frozen for live migration, a long GC, a partition) from waking up and writing. The resource must
check (Kleppmann's fencing tokens; docs/stateful-nodes.md). Here the resource is the identity's ledger:

- ``fence.holder`` (one row) is the fencing token of the identity's current tenure, from its blob lease.
- Every session of the node carries its tenure's token as the custom setting ``fence.token``, given at
  login in the connection's startup options (libpq ``options=-c fence.token=N``; PgJDBC's ``options``
  URL parameter for Corda's ``dataSource.url``). Nothing the node runs sets it afterwards.
- Every table of the ledger has the statement trigger ``fence_check`` (``arm``): before any INSERT, UPDATE,
  DELETE or TRUNCATE it reads the holder's token ``FOR SHARE`` and refuses (SQLSTATE ``CPF01``) a session
  whose token is absent or not that token, and every write before the first tenure. The share lock lasts
  to the end of the writer's transaction.
- ``fence.take(token, instance)`` is how a new tenure begins, before its node starts: a token that is not
  newer than the holder's is refused before anything else happens; otherwise it ends every other
  session of the identity's role in this database (``pg_terminate_backend``: their open transactions roll
  back), then moves the holder to the new token, which waits for any writer transaction still holding its
  share lock, and refuses a token that is not newer. So every write of the old tenure commits before the
  take does, and every write after it carries the new token: the ledger never has writes of two tenures
  interleaved, and a late writer gets ``CPF01`` on its first statement.

What it does not do: the node's role owns its tables and could drop a trigger; the fence stops a stale
node, not a hostile one (that is the role's credential, which only the member's nodes hold). Tables made
after ``arm`` are unfenced until ``arm`` runs again: the keeper arms after the node's schema migration and
before the node starts, and refuses to start a node when a table is unarmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The SQLSTATE of a write refused by the fence (a custom code: class ``CP``, the control plane).
FENCED = "CPF01"

INSTALL = """
CREATE SCHEMA IF NOT EXISTS fence;
CREATE TABLE IF NOT EXISTS fence.holder (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    token bigint NOT NULL,
    instance text NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO fence.holder (token, instance) VALUES (0, '') ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION fence.check() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    held bigint;
    mine text := coalesce(current_setting('fence.token', true), '');
BEGIN
    SELECT token INTO held FROM fence.holder FOR SHARE;
    IF held = 0 OR mine !~ '^[0-9]{1,18}$' OR mine::bigint <> held THEN
        RAISE EXCEPTION 'fenced: this session writes with fencing token %, the identity is held with token %',
            coalesce(nullif(mine, ''), 'none'), held
            USING ERRCODE = 'CPF01',
                  HINT = 'a newer instance holds this identity; this node must stop';
    END IF;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION fence.take(new_token bigint, new_instance text) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    before bigint;
BEGIN
    -- a take that is already stale disturbs nobody: it is refused before it ends any session
    SELECT token INTO before FROM fence.holder;
    IF new_token <= before THEN
        RAISE EXCEPTION 'fenced: token % is not newer than the holder''s %', new_token, before
            USING ERRCODE = 'CPF01';
    END IF;
    PERFORM pg_terminate_backend(pid, 5000) FROM pg_stat_activity
     WHERE datname = current_database() AND usename = current_user AND pid <> pg_backend_pid();
    SELECT token INTO before FROM fence.holder FOR UPDATE;
    IF new_token <= before THEN
        RAISE EXCEPTION 'fenced: token % is not newer than the holder''s %', new_token, before
            USING ERRCODE = 'CPF01';
    END IF;
    UPDATE fence.holder SET token = new_token, instance = new_instance, taken_at = clock_timestamp();
    RETURN before;
END
$fn$;

CREATE OR REPLACE FUNCTION fence.unarmed() RETURNS SETOF text LANGUAGE sql STABLE AS $fn$
    SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'fence')
       AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
       AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'fence_check')
     ORDER BY 1
$fn$;

CREATE OR REPLACE FUNCTION fence.arm() RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
    t text;
    armed integer := 0;
BEGIN
    FOR t IN SELECT fence.unarmed() LOOP
        EXECUTE format('CREATE TRIGGER fence_check BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION fence.check()', t);
        armed := armed + 1;
    END LOOP;
    RETURN armed;
END
$fn$;
"""


class FenceError(RuntimeError):
    """The fence refused: a token not newer than the holder's, or a write from an old tenure."""


@dataclass(frozen=True)
class Holder:
    token: int
    instance: str


def _is_fenced(error: BaseException) -> bool:
    return getattr(error, "sqlstate", None) == FENCED


def install(conn: Any) -> None:
    """Create the fence (idempotent): run as the identity's role, in its database, once before any tenure."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('fence.install'))")
        conn.execute(INSTALL)


def holder(conn: Any) -> Holder:
    row = conn.execute("SELECT token, instance FROM fence.holder").fetchone()
    return Holder(int(row[0]), str(row[1]))


def take(conn: Any, token: int, instance: str) -> int:
    """Begin tenure ``token`` for ``instance``: end the old tenure's sessions, then move the holder.

    Returns the token it replaced; ``FenceError`` when ``token`` is not newer (a later tenure began)."""
    import psycopg

    try:
        with conn.transaction():
            row = conn.execute("SELECT fence.take(%s, %s)", (token, instance)).fetchone()
    except psycopg.Error as error:
        if _is_fenced(error):
            raise FenceError(str(error).splitlines()[0]) from error
        raise
    return int(row[0])


def arm(conn: Any) -> list[str]:
    """Give every table of the ledger the fence's trigger; the tables still unarmed after (none, or an error)."""
    with conn.transaction():
        conn.execute("SELECT fence.arm()")
    return [str(r[0]) for r in conn.execute("SELECT fence.unarmed()").fetchall()]


def startup_options(token: int) -> str:
    """The connection's startup options that make its writes those of tenure ``token``."""
    return f"-c fence.token={int(token)}"
