"""Leader failover, graceful handover and split-brain writes, with 15-second blob leases on Azurite.

Three contender processes (``bench/leadership_contender.py``) run many independent coordinator
elections side by side, so one kill gives many trials at once:
- failover: the holder of every election is killed with SIGKILL; each trial is the time from the kill
  to the new coordinator's first action (goal: p99 at most 17 s, the lease plus one 2-second retry);
- handover: the holder is stopped with SIGTERM and releases its leases (goal: p99 at most 3 s);
- split brain: the holder of 100 elections is SIGSTOPped past its lease while another takes over and
  writes, then SIGCONTed; it keeps writing without checking its term, and every stale write that
  lands after a newer token's is counted (goal: 0).
The issue names 3 local Functions host instances; the coordinator timers that would run there are
not built yet, so the contenders are plain processes running the same ``LeaseKeeper`` code.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azure.storage.blob import BlobServiceClient

from shared.adapters.storage import expand_connection_string
from tools import azurite

ROOT = Path(__file__).resolve().parent.parent
FAILOVER_ELECTIONS = 24
SPLIT_BRAIN_ELECTIONS = 100


class Contender:
    def __init__(self, connection: str, container: str, me: str, elections: int, write: bool = False):
        cmd = [sys.executable, "-m", "bench.leadership_contender", connection, container, "--me", me,
               "--elections", str(elections)] + (["--write"] if write else [])  # fmt: skip
        self.me = me
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # argv built above  # nosec B603
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        if self.proc.stdout is None:  # never: the contender is started with stdout=PIPE
            raise RuntimeError(f"contender {self.me} has no stdout pipe")
        for line in self.proc.stdout:
            with self._lock:
                self.events.append(json.loads(line))

    def of(self, event: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["event"] == event]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def takeover_times(conn: str, service: BlobServiceClient, how: signal.Signals) -> list[float]:
    container = f"lead{uuid.uuid4().hex[:12]}"
    service.create_container(container)
    first = Contender(conn, container, "A", FAILOVER_ELECTIONS)
    standbys: list[Contender] = []
    try:
        wait_until(lambda: len(first.of("acquired")) == FAILOVER_ELECTIONS, 60, "A to hold every election")
        standbys = [Contender(conn, container, name, FAILOVER_ELECTIONS) for name in ("B", "C")]
        wait_until(lambda: all(s.of("started") for s in standbys), 30, "the standbys to start")
        time.sleep(3)  # the standbys are now polling
        t0 = time.time()
        os.kill(first.proc.pid, how)

        def taken() -> dict[str, float]:
            seen: dict[str, float] = {}
            for s in standbys:
                for e in s.of("acquired"):
                    if e["at"] >= t0:
                        seen[e["election"]] = min(seen.get(e["election"], math.inf), e["at"])
            return seen

        wait_until(lambda: len(taken()) == FAILOVER_ELECTIONS, 90, "every election to be taken over")
        return [at - t0 for at in taken().values()]
    finally:
        for c in [first, *standbys]:
            c.stop()


def split_brain(conn: str, service: BlobServiceClient) -> tuple[int, int, int]:
    container = f"split{uuid.uuid4().hex[:12]}"
    service.create_container(container)
    old = Contender(conn, container, "L", SPLIT_BRAIN_ELECTIONS, write=True)
    new: Contender | None = None
    try:
        wait_until(lambda: len(old.of("acquired")) == SPLIT_BRAIN_ELECTIONS, 90, "L to hold every election")
        time.sleep(1.5)
        new = Contender(conn, container, "S", SPLIT_BRAIN_ELECTIONS, write=True)
        standby = new
        time.sleep(1)
        old.proc.send_signal(signal.SIGSTOP)
        wait_until(lambda: len(standby.of("acquired")) == SPLIT_BRAIN_ELECTIONS, 90, "S to take every election")
        time.sleep(2)  # S writes with its newer tokens
        old.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: len(old.of("fenced")) >= SPLIT_BRAIN_ELECTIONS, 30, "every stale writer to be fenced")
    finally:
        for c in [old, new]:
            if c is not None:
                c.stop()
    landed = 0
    client = service.get_container_client(container)
    for i in range(SPLIT_BRAIN_ELECTIONS):
        writes = json.loads(client.download_blob(f"bench/e{i:03d}.json").readall())["writes"]
        landed += sum(1 for k, w in enumerate(writes) if k and max(writes[:k]) > w)
    return SPLIT_BRAIN_ELECTIONS, landed, len(old.of("fenced"))


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        ports = azurite.free_ports(3)
        az, proc = azurite.start(Path(tmp) / "azurite", ports=(ports[0], ports[1], ports[2]))
        try:
            conn = az.connection_string
            service = BlobServiceClient.from_connection_string(expand_connection_string(conn))
            failover = takeover_times(conn, service, signal.SIGKILL)
            handover = takeover_times(conn, service, signal.SIGTERM)
            trials, landed, fenced = split_brain(conn, service)
        finally:
            azurite.stop_pid(proc.pid)
    print(f"{'figure':34} {'value':>8}  goal")
    print(f"{'failover p50 (kill -9), s':34} {percentile(failover, 50):8.2f}")
    print(f"{'failover p99 (kill -9), s':34} {percentile(failover, 99):8.2f}  <= 17 ({len(failover)} trials)")
    print(f"{'handover p99 (graceful), s':34} {percentile(handover, 99):8.2f}  <= 3 ({len(handover)} trials)")
    print(f"{'split-brain writes that landed':34} {landed:8d}  0 ({trials} paused-leader trials, {fenced} refused)")
    print("15 s leases, standbys retry every 2 s; 3 contender processes (plain processes, not host instances)")
    return {
        "failover_p50_seconds": round(percentile(failover, 50), 2),
        "failover_p99_seconds": round(percentile(failover, 99), 2),
        "handover_p99_seconds": round(percentile(handover, 99), 2),
        "split_brain_writes": landed,
    }
