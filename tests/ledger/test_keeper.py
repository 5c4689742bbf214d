"""The identity keeper on real storage (Azurite's blob leases) and a real ledger (PostgreSQL): one identity
never runs on two instances, an instance cut off from storage stops its node before another can take the
identity, and an instance frozen past its tenure writes nothing when it wakes.

Each instance's node is ``tests.support.ledger_node``, a process writing to the ledger as a Corda node's
JDBC pool would (no Corda 4.12 node on this machine: issue 25). Keepers are stepped by the test where the
order matters, and run on their own threads where the clock does (the cut-off).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from azure.storage.blob import ContainerClient

from nodeagent.identity import fence
from nodeagent.identity.keeper import Keeper, ProcessNode, Times
from nodeagent.identity.lease import IdentityLease, client_options
from shared.adapters.blob_leases import BlobLeaseStore
from shared.decisions.identities import LEASE_CONTAINER, Move, holder_name
from tests.support.tcp_proxy import Proxy
from tools import azurite, provision
from tools.harness.wait import wait_until
from tools.postgres import Ledger, Postgres

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: Short, as the rules allow: a 15 s lease (the shortest blob lease), renewed every 2 s, the node stopped
#: 2 * 1.5 + 2 + 1 = 6 s before the tenure could end.
FAST = Times(lease_seconds=15, renew_every=2.0, grace=2.0, margin=1.0, call_timeout=1.5, standby_every=0.5, poll=0.1)
_identities = itertools.count(1)


class TimedNode(ProcessNode):
    """The stand-in node as the keeper runs it, noting (on this process's monotonic clock) when it started
    and when it was last down."""

    def __init__(self, ledger: Ledger, log: Path, migrate_seconds: float = 0):
        module = [sys.executable, "-m", "tests.support.ledger_node"]
        env = {"LEDGER_CONNINFO": ledger.conninfo(), "NODE_LOG": str(log), "PYTHONPATH": str(ROOT),
               "MIGRATE_SECONDS": str(migrate_seconds)}  # fmt: skip
        super().__init__([*module, "run"], migrate_command=[*module, "migrate"], env=env)
        self.log, self.started_at, self.stopped_at = log, 0.0, 0.0

    def start(self, token: int) -> None:
        super().start(token)
        self.started_at = time.monotonic()

    def stop(self, grace: float) -> None:
        super().stop(grace)
        self.stopped_at = time.monotonic()

    def events(self, kind: str) -> list[str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [line for line in lines if line.startswith(kind)]


@dataclass
class Instance:
    keeper: Keeper
    node: TimedNode
    proxy: Proxy | None


@pytest.fixture
def identity(postgres_server: Postgres) -> Iterator[tuple[str, Ledger]]:
    name = f"bank-{next(_identities)}"
    ledger = postgres_server.create_ledger(name)
    with psycopg.connect(ledger.conninfo(), autocommit=True) as conn:
        fence.install(conn)
    yield name, ledger


@pytest.fixture
def make_instance(
    azurite_instance: azurite.Azurite, identity: tuple[str, Ledger], tmp_path: Path
) -> Iterator[Callable[..., Instance]]:
    made: list[Instance] = []
    name, ledger = identity

    def make(number: int, *, through_proxy: bool = False, migrate_seconds: float = 0) -> Instance:
        proxy = Proxy(azurite_instance.blob_port) if through_proxy else None
        port = proxy.port if proxy else azurite_instance.blob_port
        conn = azurite_instance.connection_string_for(azurite.ACCOUNT).replace(
            f"127.0.0.1:{azurite_instance.blob_port}", f"127.0.0.1:{port}"
        )
        container = ContainerClient.from_connection_string(conn, LEASE_CONTAINER, **client_options(FAST.call_timeout))
        if not container.exists():
            container.create_container()
        lease = IdentityLease(container, name, holder_name("vmss-bank", str(number)), FAST.lease_seconds)
        node = TimedNode(ledger, tmp_path / f"node-{number}.log", migrate_seconds)
        instance = Instance(Keeper(lease, lambda: psycopg.connect(ledger.conninfo(), autocommit=True), node, FAST),
                            node, proxy)  # fmt: skip
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.keeper.shut_down()
        instance.node.stop(1.0)
        if instance.proxy:
            instance.proxy.close()


@pytest.fixture
def control_plane(azurite_instance: azurite.Azurite) -> BlobLeaseStore:
    """How the member's control plane reads the identities' leases: its own lease reader."""
    conn = azurite_instance.connection_string_for(azurite.ACCOUNT)
    return BlobLeaseStore(ContainerClient.from_connection_string(conn, LEASE_CONTAINER))


def rows(ledger: Ledger) -> list[tuple[int, int, int]]:
    with psycopg.connect(ledger.conninfo()) as conn:
        return [(int(i), int(t), int(p)) for i, t, p in conn.execute("SELECT id, token, pid FROM records ORDER BY id")]


def assert_tenures_never_interleave(ledger: Ledger) -> dict[int, int]:
    """The ledger's records, in commit order of their ids, come in one run per tenure, tenures in order,
    each written by one process; returns the count per token."""
    runs: list[tuple[int, int]] = []
    counts: dict[int, int] = {}
    for _, token, pid in rows(ledger):
        if not runs or runs[-1] != (token, pid):
            runs.append((token, pid))
        counts[token] = counts.get(token, 0) + 1
    assert [t for t, _ in runs] == sorted({t for t, _ in runs}), f"tenures interleave in the ledger: {runs}"
    return counts


def step_until(instance: Instance, move: Move, timeout: float = 30.0) -> None:
    wait_until(f"the keeper's move {move}", lambda: instance.keeper.step() is move, timeout, every=0.1)


def test_one_instance_runs_the_identity_and_the_other_stands_by(
    make_instance: Callable[..., Instance], identity: tuple[str, Ledger], control_plane: BlobLeaseStore
) -> None:
    name, ledger = identity
    a, b = make_instance(0), make_instance(1)
    assert a.keeper.step() is Move.ACQUIRE and a.node.running()
    assert b.keeper.step() is Move.ACQUIRE and not b.node.running() and b.keeper.tenure is None
    record = control_plane.read(name)
    assert (record.holder, record.fencing_token, record.leased) == ("vmss-bank/0", 1, True)
    assert record in control_plane.records()  # as the control plane's protection of instances lists them
    wait_until("the node's first records", lambda: len(rows(ledger)) > 10, 30)
    with psycopg.connect(ledger.conninfo()) as conn:
        assert fence.holder(conn) == fence.Holder(1, "vmss-bank/0")


def test_a_node_that_exits_gives_the_identity_to_the_standby_without_waiting_for_the_lease(
    make_instance: Callable[..., Instance], identity: tuple[str, Ledger], control_plane: BlobLeaseStore
) -> None:
    name, ledger = identity
    a, b = make_instance(0), make_instance(1)
    a.keeper.step()
    wait_until("the node's first records", lambda: rows(ledger), 30)
    assert a.node.process is not None
    os.killpg(a.node.process.pid, signal.SIGKILL)
    step_until(a, Move.RELEASE)
    assert not control_plane.read(name).leased  # released: nobody waits out the 15 s
    assert b.keeper.step() is Move.ACQUIRE and b.node.running()
    assert control_plane.read(name).holder == "vmss-bank/1"
    wait_until("the new tenure's records", lambda: any(t == 2 for _, t, _ in rows(ledger)), 30)
    assert set(assert_tenures_never_interleave(ledger)) == {1, 2}


def test_an_instance_cut_off_from_storage_stops_its_node_before_the_standby_can_take_the_identity(
    make_instance: Callable[..., Instance],
    identity: tuple[str, Ledger],
    control_plane: BlobLeaseStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name, ledger = identity
    a, b = make_instance(0, through_proxy=True), make_instance(1)
    a.keeper.step()
    wait_until("the node's first records", lambda: len(rows(ledger)) > 10, 30)
    stop = threading.Event()
    threads = [threading.Thread(target=i.keeper.run, args=(stop,)) for i in (a, b)]
    for thread in threads:
        thread.start()
    try:
        assert a.proxy is not None
        a.proxy.cut()
        wait_until("the standby's tenure", lambda: b.keeper.tenure is not None, 60)
        wait_until("the new tenure's records", lambda: any(t == 2 for _, t, _ in rows(ledger)), 30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert 0 < a.node.stopped_at < b.node.started_at  # down before the other began
    assert a.node.events("refused") == []  # so it never even tried to write late
    assert "tenure 1 ends (ending): node stopped" in caplog.text and "(renewals failing: " in caplog.text
    assert set(assert_tenures_never_interleave(ledger)) == {1, 2}
    assert control_plane.read(name).fencing_token == 2


def test_an_instance_frozen_past_its_tenure_writes_nothing_when_it_wakes(
    make_instance: Callable[..., Instance], identity: tuple[str, Ledger], caplog: pytest.LogCaptureFixture
) -> None:
    """The VM stops dead (SIGSTOP: keeper and node alike) for longer than the lease; another instance takes
    the identity; the frozen one wakes up believing it still runs it. The ledger refuses its node."""
    _, ledger = identity
    a, b = make_instance(0), make_instance(1)
    a.keeper.step()
    wait_until("the node's first records", lambda: len(rows(ledger)) > 10, 30)
    assert a.node.process is not None
    os.killpg(a.node.process.pid, signal.SIGSTOP)  # a's keeper is frozen too: the test no longer steps it
    step_until(b, Move.KEEP, timeout=FAST.lease_seconds + 30)  # b acquires once a's lease expires, then keeps
    os.killpg(a.node.process.pid, signal.SIGCONT)
    wait_until("the woken node's write refused by the fence", lambda: a.node.events("refused"), 30)
    assert (
        "fenced: this session writes with fencing token 1, the identity is held with token 2"
        in (a.node.events("refused")[0])
    )
    assert a.keeper.step() is Move.STOP and not a.node.running()  # its keeper wakes and stops it at once
    assert "tenure 1 ends (over): node stopped" in caplog.text and "after the tenure could have ended" in caplog.text
    wait_until("the new tenure's records", lambda: any(t == 2 for _, t, _ in rows(ledger)), 30)
    assert set(assert_tenures_never_interleave(ledger)) == {1, 2}


def test_a_schema_step_longer_than_the_lease_keeps_the_tenure_and_the_standby_waits(
    make_instance: Callable[..., Instance], identity: tuple[str, Ledger], control_plane: BlobLeaseStore
) -> None:
    """Corda's first migration can take longer than a lease: the keeper renews while it runs."""
    name, ledger = identity
    a, b = make_instance(0, migrate_seconds=FAST.lease_seconds + 5), make_instance(1)
    stop, moves = threading.Event(), []
    first = threading.Thread(target=lambda: moves.append(a.keeper.step()))  # returns once the 20 s step is done
    first.start()
    wait_until("a's lease", lambda: control_plane.read(name).holder == "vmss-bank/0", 30)
    standby = threading.Thread(target=b.keeper.run, args=(stop,))
    standby.start()
    try:
        first.join(timeout=60)
        assert moves == [Move.ACQUIRE] and a.node.running() and b.keeper.tenure is None
        record = control_plane.read(name)
        assert (record.holder, record.fencing_token, record.leased) == ("vmss-bank/0", 1, True)
        wait_until("the node's first records", lambda: rows(ledger), 30)
    finally:
        stop.set()
        standby.join(timeout=30)
    assert b.node.started_at == 0


def test_a_schema_step_cut_off_from_storage_is_abandoned_before_the_tenure_could_end(
    make_instance: Callable[..., Instance], caplog: pytest.LogCaptureFixture
) -> None:
    a = make_instance(0, through_proxy=True, migrate_seconds=60)
    assert a.proxy is not None
    threading.Timer(1.0, a.proxy.cut).start()
    started = time.monotonic()
    assert a.keeper.step() is Move.ACQUIRE and a.keeper.tenure is None
    assert time.monotonic() - started < FAST.lease_seconds  # abandoned in time, not after the 60 s step
    assert a.node.started_at == 0 and not a.node.running()
    assert "tenure 1 ends: the ledger was still being prepared when the tenure neared its end" in caplog.text
    assert a.node.migration is not None and a.node.migration.returncode == -signal.SIGKILL


def test_a_node_that_cannot_be_started_gives_the_identity_back_and_says_why(
    make_instance: Callable[..., Instance], identity: tuple[str, Ledger], control_plane: BlobLeaseStore,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    name, _ = identity
    a = make_instance(0)
    a.node.command = ["/nonexistent/corda-node"]
    assert a.keeper.step() is Move.ACQUIRE and a.keeper.tenure is None and not a.node.running()
    assert not control_plane.read(name).leased  # another instance may run it meanwhile
    assert "tenure 1 ends: the node did not start" in caplog.text and "/nonexistent/corda-node" in caplog.text
    assert a.keeper.step() is Move.ACQUIRE and control_plane.read(name).fencing_token == 1  # not retried at once


def test_a_ledger_table_the_fence_cannot_arm_stops_the_tenure_before_the_node_starts(
    make_instance: Callable[..., Instance], identity: tuple[str, Ledger], postgres_server: Postgres,
    control_plane: BlobLeaseStore, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    name, ledger = identity
    with psycopg.connect(postgres_server.admin_conninfo(ledger.database), autocommit=True) as admin:
        admin.execute("CREATE TABLE not_the_nodes (id int)")  # owned by someone else: no trigger can be put on it
    a = make_instance(0)
    assert a.keeper.step() is Move.ACQUIRE
    assert not a.node.running() and a.keeper.tenure is None
    assert not control_plane.read(name).leased  # given back for an instance (or an operator) that can
    assert "tenure 1 ends: not begun: permission denied for table not_the_nodes" in caplog.text


def test_the_keeper_command_hands_the_identity_over_when_systemd_stops_it(
    azurite_instance: azurite.Azurite, identity: tuple[str, Ledger], control_plane: BlobLeaseStore, tmp_path: Path
) -> None:
    """``python -m nodeagent.identity --config`` as a VM runs it, twice (two instances), with a SAS for the
    identity-leases container as the local stack gives it: SIGTERM to the running one stops its node and
    releases the lease, and the standby takes over without waiting for the lease to run out."""
    name, ledger = identity
    container = ContainerClient.from_connection_string(
        azurite_instance.connection_string_for(azurite.ACCOUNT), LEASE_CONTAINER
    )
    if not container.exists():
        container.create_container()  # as provisioning makes it
    sas = provision.identity_leases_sas(azurite.ACCOUNT, azurite.ACCOUNT_KEY)
    (tmp_path / "ledger.pw").write_text(ledger.password)
    keepers: list[subprocess.Popen[bytes]] = []
    for number in (0, 1):
        config = tmp_path / f"identity-{number}.toml"
        config.write_text(
            f'identity = "{name}"\nscale_set = "vmss-bank"\ninstance_id = "{number}"\n'
            f'leases_url = "{azurite_instance.blob_endpoint(azurite.ACCOUNT)}/{LEASE_CONTAINER}?{sas}"\n'
            f'credential = "sas"\nledger = "host={ledger.host} port={ledger.port} dbname={ledger.database} '
            f'user={ledger.role}"\nledger_password_file = "{tmp_path / "ledger.pw"}"\n'
            f'node_command = ["{sys.executable}", "-m", "tests.support.ledger_node", "run"]\n'
            f'migrate_command = ["{sys.executable}", "-m", "tests.support.ledger_node", "migrate"]\n'
            "[times]\nlease_seconds = 15\nrenew_every = 2\ngrace = 2\nmargin = 1\ncall_timeout = 1.5\n"
        )
        env = {**os.environ, "LEDGER_CONNINFO": ledger.conninfo(), "NODE_LOG": str(tmp_path / f"node-{number}.log"),
               "PYTHONPATH": str(ROOT), "MIGRATE_SECONDS": "2"}  # fmt: skip  # a schema step that takes a while
        log = (tmp_path / f"keeper-{number}.log").open("wb")
        keepers.append(subprocess.Popen([sys.executable, "-m", "nodeagent.identity", "--config", str(config)],
                                        env=env, stderr=log, cwd=ROOT))  # fmt: skip
        if number == 0:
            wait_until("the first keeper's tenure", lambda: control_plane.read(name).holder == "vmss-bank/0", 30)
    try:
        # The lease names its holder before the schema step has made the ledger's table: the node's start,
        # which comes after it, is what the keeper's log says.
        first_log = tmp_path / "keeper-0.log"
        wait_until("the first node's start", lambda: "tenure 1 begins on vmss-bank/0" in first_log.read_text(), 30)
        wait_until("the first tenure's records", lambda: len(rows(ledger)) > 10, 30)
        stopped = time.monotonic()
        keepers[0].send_signal(signal.SIGTERM)
        assert keepers[0].wait(timeout=30) == 0
        wait_until("the standby's tenure", lambda: control_plane.read(name).holder == "vmss-bank/1", 30)
        assert time.monotonic() - stopped < FAST.lease_seconds  # handed over, not waited out
        wait_until("the new tenure's records", lambda: any(t == 2 for _, t, _ in rows(ledger)), 30)
    finally:
        for keeper in keepers:
            if keeper.poll() is None:
                keeper.send_signal(signal.SIGTERM)
                keeper.wait(timeout=30)
    assert keepers[1].returncode == 0
    first = first_log.read_text()
    assert "tenure 1 begins on vmss-bank/0" in first and "tenure 1 ends: the keeper is stopping" in first
    assert (tmp_path / "node-0.log").read_text().splitlines()[-1] == "stopped"
    assert set(assert_tenures_never_interleave(ledger)) == {1, 2}
    assert not control_plane.read(name).leased
