"""Leader failover, graceful handover and split-brain writes, with 15-second blob leases on Azurite.

Failover and handover run on three local host instances (``tools.funchost``), each a separate
deployment running the real ``function_app.py``: the coordinator heartbeat contends every 2 s and
the key rotation timer (every second here) acts only on the coordinator, writing its run record
fenced with its token. Each trial finds the coordinator from the lease, stops its process, and
times until the record carries a newer token, the new coordinator's first action; a replacement
deployment then joins, so every trial has three live instances.
- failover: ``kill -9`` (goal: p99 at most 17 s, the lease plus one 2-second retry), 20 trials;
- handover: SIGTERM, the host stops gracefully and releases the lease (goal: p99 at most 3 s).
- split brain: the coordinator is SIGSTOPped at a random point of its one-second tick, past its
  lease, while another instance takes over and acts, then SIGCONTed; a watcher samples every
  coordinator-owned document (rotation, autoscale, health state) every 50 ms, and a fencing token
  that goes back is a stale write that landed (goal: 0 over 100 trials).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from shared import settings as settings_module
from shared.bootstrap import Platform
from shared.services.leadership import COORDINATOR
from shared.services.rotation import STATE_PATH as ROTATION_STATE
from shared.settings import Settings
from tools.harness.hosts import await_ready, funchost, spawn
from tools.harness.stack import running_azurite, running_emulator
from tools.harness.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent
FAILOVER_TRIALS = 20
HANDOVER_TRIALS = 10
SPLIT_BRAIN_TRIALS = 100
#: Documents only the coordinator writes, each with the fencing token of the term that wrote it.
FENCED_DOCUMENTS = (ROTATION_STATE, "autoscale/state.json", "health/state.json")
DEPLOYMENTS = ("dep-a", "dep-b", "dep-c")
#: What the local host logs once an instance's coordinator heartbeat timer runs (it holds its listener lock).
HEARTBEAT_LISTENING = '"timer listener started (holds the listener lock)", "function": "coordinator_heartbeat"'


#: How often the bench looks at the lease and the fenced documents: the resolution of its figures.
POLL_SECONDS = 0.05


def until(what: str, check: Callable[[], object], timeout: float) -> None:
    """``wait_until`` at the bench's resolution; a RuntimeError (the bench fails) after ``timeout``."""
    wait_until(what, check, timeout, every=POLL_SECONDS, error=RuntimeError)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Hosts:
    """Three local host instances of the real app, one deployment each, against one Azurite and emulator."""

    def __init__(self, work: Path, values: dict[str, str]):
        self.work, self.values = work, values
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.platform = Platform(Settings(values))

    def start(self, deployment: str) -> None:
        settings = self.work / f"{deployment}.json"
        values = {**self.values, "CONSORTIUM_DEPLOYMENT": deployment, "AzureFunctionsWebHost__hostid": deployment}
        settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
        ready = self.work / f"{deployment}.ready"
        ready.unlink(missing_ok=True)
        log_file = self.work / f"{deployment}.log"
        cmd = funchost(ready=ready, settings=settings, app_dir=ROOT, no_http=True)
        proc = self.procs[deployment] = spawn(cmd, log_file)
        try:
            await_ready(proc, ready, deployment, log_file, 120)
            if proc.poll() is not None:
                raise RuntimeError(f"{deployment} exited {proc.returncode}")
            until(f"{deployment}'s heartbeat", lambda: HEARTBEAT_LISTENING in log_file.read_text(), 60)
        except RuntimeError as e:
            raise RuntimeError(f"{e}; its log ends:\n{log_file.read_text()[-3000:]}") from None

    def coordinator(self) -> tuple[str, int]:
        """The deployment holding the role and its token, once it has acted with that token."""
        lease = self.platform.leases.read(COORDINATOR)
        return str(lease.holder or "").split("/", 1)[0], lease.fencing_token

    def acted_token(self) -> int:
        doc = self.platform.state.read(ROTATION_STATE)
        return int(doc.body.get("fencing_token", 0)) if doc else 0

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _acting(hosts: Hosts) -> tuple[str, int] | None:
    """The coordinator's deployment and token, once a live instance holds the role and has acted with it."""
    name, token = hosts.coordinator()
    alive = name in hosts.procs and hosts.procs[name].poll() is None
    return (name, token) if alive and hosts.acted_token() == token else None


def _newer_action(hosts: Hosts, token: int) -> Callable[[], bool]:
    return lambda: hosts.acted_token() > token


def host_takeover_times(hosts: Hosts, how: signal.Signals, trials: int) -> list[float]:
    times = []
    for trial in range(trials):
        until("a coordinator that has acted", lambda: _acting(hosts) is not None, 60)
        acting = _acting(hosts)
        if acting is None:  # it stepped down between two reads: take the next trial's measure
            continue
        name, token = acting
        # a random point in the renewal cycle (not a secret)
        time.sleep(random.uniform(0, 5))  # nosec B311
        t0 = time.monotonic()
        os.kill(hosts.procs[name].pid, how)
        until(f"trial {trial}: a new coordinator's first action", _newer_action(hosts, token), 60)
        times.append(time.monotonic() - t0)
        hosts.procs[name].wait(timeout=30)
        print(f"  {how.name} of {name} (token {token}): next coordinator acted after {times[-1]:.2f} s", flush=True)
        del hosts.procs[name]
        # A replacement deployment joins, so every trial has three live instances. A restart under the same
        # host id would wait out its dead predecessor's timer listener lock (60 s, as the real host does)
        # and stand by without a heartbeat meanwhile.
        hosts.start(f"dep-{trial}-{how.name.lower()}")
    return times


class TokenWatch:
    """Samples the fencing token of every coordinator-owned document; a token that goes back is a stale write."""

    def __init__(self, hosts: Hosts):
        self.hosts = hosts
        self.seen: dict[str, int] = {}
        self.landed: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="token-watch")

    def __enter__(self) -> TokenWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            for path in FENCED_DOCUMENTS:
                try:
                    doc = self.hosts.platform.state.read(path)
                except Exception:  # noqa: S112 - a read that fails is no evidence either way  # nosec B112
                    continue
                if doc is None:
                    continue
                token = int(doc.body.get("fencing_token", 0))
                self.samples += 1
                if token < self.seen.get(path, 0):
                    self.landed.append(f"{path}: token {token} after {self.seen[path]}")
                self.seen[path] = max(token, self.seen.get(path, 0))


def host_split_brain(hosts: Hosts, trials: int) -> tuple[int, list[str], int]:
    """Pause the coordinator past its lease while another takes over and acts, then let it run on."""
    with TokenWatch(hosts) as watch:
        for trial in range(trials):
            until("a coordinator that has acted", lambda: _acting(hosts) is not None, 60)
            acting = _acting(hosts)
            if acting is None:
                continue
            name, token = acting
            # paused at a random point of its one-second rotation tick, maybe between its check and its write
            time.sleep(random.uniform(0, 1))  # nosec B311
            pid = hosts.procs[name].pid
            os.kill(pid, signal.SIGSTOP)
            try:
                until(f"trial {trial}: a new coordinator's first action", _newer_action(hosts, token), 60)
            finally:
                os.kill(pid, signal.SIGCONT)
            time.sleep(1.5)  # the paused instance runs on: its term is over and its writes must be refused
            if trial % 10 == 9:
                print(f"  {trial + 1} paused-leader trials, {len(watch.landed)} stale write(s) landed", flush=True)
    return trials, watch.landed, watch.samples


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as running:
        work = Path(tmp)
        az = running.enter_context(running_azurite(work / "azurite"))
        em = running.enter_context(running_emulator(work / "emulator"))
        values = {
            **settings_module.local_defaults(),
            "AzureWebJobsStorage": az.connection_string,
            "AZURE_ARM_ENDPOINT": em.url, "AZURE_METRICS_ENDPOINT": em.url, "AZURE_KEY_VAULT_URL": em.url,
            "AZURE_CA_BUNDLE": str(em.ca), "LEASE_SECONDS": "15", "COORDINATOR_SCHEDULE": "*/2 * * * * *",
            "KEY_ROTATION_SCHEDULE": "* * * * * *",  # the coordinator's first action, within a second
        }  # fmt: skip
        hosts = Hosts(work, values)
        try:
            for deployment in DEPLOYMENTS:
                hosts.start(deployment)
            print(f"3 local host instances ({', '.join(DEPLOYMENTS)}), 15 s leases")
            failover = host_takeover_times(hosts, signal.SIGKILL, FAILOVER_TRIALS)
            handover = host_takeover_times(hosts, signal.SIGTERM, HANDOVER_TRIALS)
            trials, landed, samples = host_split_brain(hosts, SPLIT_BRAIN_TRIALS)
        finally:
            hosts.stop_all()
    print(f"{'figure':34} {'value':>8}  goal")
    print(f"{'failover p50 (kill -9), s':34} {percentile(failover, 50):8.2f}")
    print(f"{'failover p99 (kill -9), s':34} {percentile(failover, 99):8.2f}  <= 17 ({len(failover)} trials)")
    print(f"{'handover p99 (graceful), s':34} {percentile(handover, 99):8.2f}  <= 3 ({len(handover)} trials)")
    print(
        f"{'split-brain writes that landed':34} {len(landed):8d}  0 ({trials} paused-leader trials, {samples} samples)"
    )
    for stale in landed:
        print(f"  stale write: {stale}")
    print("3 local host instances of the real app throughout, 15 s leases")
    return {
        "failover_p50_seconds": round(percentile(failover, 50), 2),
        "failover_p99_seconds": round(percentile(failover, 99), 2),
        "handover_p99_seconds": round(percentile(handover, 99), 2),
        "split_brain_writes": len(landed),
    }
