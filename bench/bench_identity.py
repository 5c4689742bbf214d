"""Identity takeover: the control plane's part of a Corda identity's failover, with the keeper's default
times (30 s lease, renewed every 5 s, a standby asking every 2 s), on Azurite and a private PostgreSQL.

Each trial: instance A's keeper holds the identity and runs its node; at a random point of A's renewal
cycle, A's VM dies (its node killed, its keeper gone without releasing anything); B's keeper, standing
by, takes the identity once A's lease expires, fences the ledger and starts its node. Timed on one
monotonic clock, split:
- ``identity_takeover_detect``: from the death to B holding the lease (the lease running out, plus up to
  one standby interval): the bulk, set by the lease duration;
- ``identity_takeover_fence``: B's fence take, schema step (none here) and arming, to its node's start;
- ``identity_takeover``: the two together, the death to B's node started.
A Corda node's own start comes on top (issue 27's ``identity_failover_*`` figures, on real nodes, which
this machine cannot run yet). The node here is a process that only sleeps: what is measured is the
keeper's and the ledger's part.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from azure.storage.blob import ContainerClient

from nodeagent.identity import fence
from nodeagent.identity.keeper import Keeper, ProcessNode, Times
from nodeagent.identity.lease import IdentityLease, client_options
from shared.decisions.identities import LEASE_CONTAINER, holder_name
from tools import azurite, postgres
from tools.harness.stack import running_azurite
from tools.harness.wait import wait_until

TRIALS = 10
TIMES = Times()


class Node(ProcessNode):
    """A node process that only sleeps, noting when it started."""

    def __init__(self) -> None:
        super().__init__([sys.executable, "-c", "import time; time.sleep(3600)"])
        self.started_at = 0.0

    def start(self, token: int) -> None:
        super().start(token)
        self.started_at = time.monotonic()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def trial(container: ContainerClient, ledger: postgres.Ledger, identity: str, rng: random.Random) -> dict[str, float]:
    def keeper(number: int) -> tuple[Keeper, Node]:
        node = Node()
        lease = IdentityLease(container, identity, holder_name("vmss-bench", str(number)), TIMES.lease_seconds)
        return Keeper(lease, lambda: psycopg.connect(ledger.conninfo(), autocommit=True), node, TIMES), node

    (a, a_node), (b, b_node) = keeper(0), keeper(1)
    wait_until("A's tenure", lambda: a.step() and a.tenure is not None, 60, every=0.1)
    alive, stop = threading.Event(), threading.Event()
    alive.set()

    def a_runs() -> None:  # A's keeper, until its VM dies
        while alive.is_set():
            a.step()
            time.sleep(TIMES.poll)

    runners = [threading.Thread(target=a_runs), threading.Thread(target=b.run, args=(stop,))]
    for runner in runners:
        runner.start()
    time.sleep(rng.uniform(TIMES.renew_every, 2 * TIMES.renew_every))  # anywhere in A's renewal cycle
    alive.clear()
    if a_node.process is None:
        raise RuntimeError("A's keeper holds the identity but started no node")
    os.killpg(a_node.process.pid, signal.SIGKILL)  # the VM dies: node and keeper, nothing released
    died = time.monotonic()
    runners[0].join()
    wait_until("B's node", lambda: b_node.started_at > 0, 120, every=0.02)
    if b.tenure is None:
        raise RuntimeError("B's node started but B's keeper holds no tenure")
    held = b.tenure.valid_until - TIMES.lease_seconds  # B's keeper noted when it sent the winning acquire
    stop.set()
    runners[1].join(timeout=60)
    return {"detect": held - died, "fence": b_node.started_at - held, "takeover": b_node.started_at - died}


def run() -> dict[str, float]:
    rng = random.Random(27)  # nosec B311 - a trial's timing, not a secret
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-identity-") as folder, running_azurite(Path(folder)) as az:
        container = ContainerClient.from_connection_string(
            az.connection_string_for(azurite.ACCOUNT), LEASE_CONTAINER, **client_options(TIMES.call_timeout)
        )
        container.create_container()
        with postgres.running() as server:
            for number in range(TRIALS):
                ledger = server.create_ledger(f"bench-{number}")
                with psycopg.connect(ledger.conninfo(), autocommit=True) as conn:
                    fence.install(conn)
                results.append(trial(container, ledger, f"bench-{number}", rng))
                last = results[-1]
                print(f"  trial {number + 1}/{TRIALS}: takeover {last['takeover']:.2f} s "
                      f"(lease {last['detect']:.2f} s + fence {last['fence']:.3f} s)", flush=True)  # fmt: skip
    figures: dict[str, float] = {}
    print(
        f"\n  {'figure':<26}{'p50':>8}{'p99':>8}{'max':>8}   (seconds, {TRIALS} deaths, lease {TIMES.lease_seconds} s)"
    )
    for key, name in (("detect", "identity_takeover_detect"), ("fence", "identity_takeover_fence"),
                      ("takeover", "identity_takeover")):  # fmt: skip
        values = [r[key] for r in results]
        p50, p99 = statistics.median(values), _percentile(values, 0.99)
        print(f"  {name:<26}{p50:>8.2f}{p99:>8.2f}{max(values):>8.2f}")
        figures[f"{name}_p50_seconds"] = round(p50, 3)
        figures[f"{name}_p99_seconds"] = round(p99, 3)
    bound = f"{TIMES.lease_seconds} s lease + {TIMES.standby_every:g} s standby interval"
    print(f"  bound: {bound}; a Corda node's start comes on top")
    return figures
