"""Chaos and bad input on the local stack: the harness behind ``tests/chaos`` and ``bench/bench_chaos.py``.

``LocalStack`` runs a real Azurite, the Azure emulator and several local host instances of the real
``function_app.py`` (two deployments, one of them scaled out to two instances), every instance with:
- every queue message delivered twice (``FUNCHOST_DELIVER_TWICE``, the local host's testing facility:
  ``after`` on some instances, ``during`` on others);
- its clock off by some seconds (``CONSORTIUM_CLOCK_SKEW_SECONDS``, read only by ``SystemClock``);
- a 20 s receive invisibility (``FUNCHOST_RECEIVE_VISIBILITY_SECONDS``) instead of 10 minutes, so a
  message whose instance was killed comes back within a trial;
- 15 s timer listener locks (a host.json ``singleton`` section), so a killed instance's timers move on.

A trial (``run_trial``) onboards two founders and a newcomer voted in by them, surges the load of a
founder's scale set (scale ticks), asks for forced key rotations and an offboarding, while a monkey
kills instances with SIGKILL at random moments, restarts Azurite once on the same ports and data
folder, and sends 429 (with Retry-After), 5xx and latency storms from the emulator. Then the faults
stop, the killed instances come back, and the invariants are checked on what Azurite, Key Vault and
ARM hold (never on the harness's own notes): each member onboarded at most once (one onboarding key
version per key, one version per rotation, one scale set, once in the map), the map's version only
rises and every version seen verifies, capacities stay within each member's bounds, fenced documents'
tokens never go backwards (no stale coordinator write lands), and every message posted ends in a
final status, a visible rejection or a visible poison record. An ``Observer`` thread samples the map
and the fenced documents during the trial, so a regression that is later repaired is still seen.

Bad input (``queue_corpus``, ``HTTP_CASES``, ``CLI_CASES``) goes through the queues (each rejection must
be recorded with its reason, nothing poisoned, good messages posted alongside still complete), the
HTTP port of every instance (always an answer, never a 5xx but 501 for unknown methods, the host keeps
serving) and the ``consortium`` command line (exit 2 and a one-line reason naming the field or rule).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import os
import random
import re
import signal
import socket
import ssl
import string
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared import settings as settings_module
from shared.bootstrap import Platform
from shared.canonical import approval_payload, b64u, digest
from shared.messages import (
    Approval,
    KeyRotationRequest,
    OffboardingRequest,
    OnboardingRequest,
    Rejection,
    StepMessage,
    parse,
)
from shared.naming import KEY_KINDS, key_name, scale_set_name
from shared.ports.clock import SKEW_VARIABLE
from shared.services import onboarding as ob
from shared.services import rotation
from shared.services.autoscale import STATE_PATH as AUTOSCALE_STATE
from shared.services.leadership import COORDINATOR
from shared.services.network_map import MAP_PATH, SIGNER_PATH, verify_map
from shared.services.records import member_path, stable_id
from shared.services.rotation import STATE_PATH as ROTATION_STATE
from shared.services.rotation import request_report_path
from shared.services.status import WATCHED_QUEUES
from shared.settings import Settings
from tools import azurite, emulator

ROOT = Path(__file__).resolve().parent.parent
FINAL = ("active", "rejected", "failed", "offboarded")
#: (deployment, instance index, clock skew in seconds, FUNCHOST_DELIVER_TWICE) of each host instance.
INSTANCES = (("dep-a", 0, 0.0, "after"), ("dep-b", 0, 37.0, "during"), ("dep-a", 1, -23.0, "after"))
#: Documents the coordinator writes with its fencing token.
FENCED = (AUTOSCALE_STATE, ROTATION_STATE, SIGNER_PATH, MAP_PATH)
QUEUE_MODELS: dict[str, type[Any]] = {
    ob.REQUESTS: OnboardingRequest,
    ob.APPROVALS: Approval,
    ob.OFFBOARDING: OffboardingRequest,
    rotation.REQUESTS: KeyRotationRequest,
    **dict.fromkeys(ob.STEP_QUEUES.values(), StepMessage),
}


def rng_for(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - chaos timing, not security  # nosec B311


def rejection_path(queue: str, body: str) -> str:
    """Where the app records the rejection of ``body`` on ``queue`` (``Rejections.record``'s key)."""
    return f"rejections/{stable_id(queue, hashlib.sha256(body.encode()).hexdigest())}.json"


def wait_until(what: str, check: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):  # storage may be restarting: ask again
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def retrying(what: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Call ``what`` until it does not raise (a storm or an outage may be under way)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return what()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def request_body(member_id: str, request_id: str, node_count: int = 2, max_nodes: int = 4) -> str:
    return json.dumps({
        "request_id": request_id, "member_id": member_id, "legal_name": f"O={member_id.title()}, L=Amsterdam, C=NL",
        "region": "westeurope", "node_count": node_count, "contact_email": f"ops@{member_id}.example",
        "scale": {"min_nodes": 1, "max_nodes": max_nodes},
    })  # fmt: skip


# ------------------------------------------------------------------------------------- the stack


@dataclass
class Instance:
    deployment: str
    index: int
    skew: float
    deliver_twice: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    killed: bool = False

    @property
    def name(self) -> str:
        return f"{self.deployment}/{self.index}"


class LocalStack:
    """Azurite, the emulator and the host instances, all on free ports under ``work``."""

    def __init__(self, work: Path, founders: Iterable[str], *, extra: dict[str, str] | None = None):
        self.work = work
        self.founders = list(founders)
        self.extra = extra or {}
        self.az: azurite.Azurite | None = None
        self.az_proc: subprocess.Popen[bytes] | None = None
        self.em_proc: subprocess.Popen[bytes] | None = None
        self.em: emulator.EmulatorHandle | None = None
        self.values: dict[str, str] = {}
        self.instances: list[Instance] = []
        self.crashes: list[str] = []
        self._lock = threading.Lock()

    # -- lifecycle
    def start(self) -> LocalStack:
        self.work.mkdir(parents=True, exist_ok=True)
        ports = azurite.free_ports(4 + len(INSTANCES))
        self.az, self.az_proc = azurite.start(
            self.work / "azurite", ports=(ports[0], ports[1], ports[2]), log_file=self.work / "azurite.log"
        )
        self.em, self.em_proc = emulator.start(self.work / "emulator", ports[3], log_file=self.work / "emulator.log")
        self.admin("PUT", "/_admin/config", {"operation_seconds": 0.3, "boot_delay_seconds": 0, "restart_seconds": 0.2})
        self.values = {
            **settings_module.local_defaults(),
            "AzureWebJobsStorage": self.az.connection_string,
            "AZURE_ARM_ENDPOINT": self.em.url, "AZURE_METRICS_ENDPOINT": self.em.url,
            "AZURE_KEY_VAULT_URL": self.em.url, "AZURE_CA_BUNDLE": str(self.em.ca),
            "CONSORTIUM_FOUNDERS": ",".join(self.founders), "APPROVAL_QUORUM": "2", "ONBOARDING_POLL_SECONDS": "1",
            "AUTOSCALE_SCHEDULE": "*/3 * * * * *", "AUTOSCALE_BOOT_SECONDS": "0",
            "AUTOSCALE_SCALE_IN_WINDOW_SECONDS": "12", "AUTOSCALE_COOLDOWN_SECONDS": "4",
            "KEY_ROTATION_SCHEDULE": "*/3 * * * * *", "POISON_SWEEP_SCHEDULE": "*/3 * * * * *",
            "KEY_ROTATION_TLS": "rotate=P90D overlap=PT6S warn=P14D",
            "KEY_ROTATION_GOVERNANCE": "rotate=P365D overlap=PT6S warn=P30D",
            "KEY_ROTATION_SIGNER": "rotate=P180D overlap=PT6S warn=P30D",
            **self.extra,
        }  # fmt: skip
        host_json = json.loads((ROOT / "host.json").read_text())
        host_json["singleton"] = {"listenerLockPeriod": "00:00:15", "listenerLockRecoveryPollingInterval": "00:00:05"}
        (self.work / "host.json").write_text(json.dumps(host_json))
        for deployment in sorted({d for d, *_ in INSTANCES}):
            values = {**self.values, "CONSORTIUM_DEPLOYMENT": deployment, "AzureFunctionsWebHost__hostid": deployment}
            (self.work / f"{deployment}.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
        self.instances = [Instance(d, i, skew, twice, ports[4 + n]) for n, (d, i, skew, twice) in enumerate(INSTANCES)]
        for n in range(len(self.instances)):
            self.start_instance(n)
        return self

    def stop(self) -> None:
        for instance in self.instances:
            if instance.proc is not None and instance.proc.poll() is None:
                instance.proc.send_signal(signal.SIGTERM)
        for instance in self.instances:
            if instance.proc is not None:
                try:
                    instance.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    instance.proc.kill()
                    instance.proc.wait()
        for proc in (self.em_proc, self.az_proc):
            if proc is not None:
                azurite.stop_pid(proc.pid)

    @property
    def platform(self) -> Platform:
        return Platform(Settings(self.values))

    def log_path(self, n: int) -> Path:
        inst = self.instances[n]
        return self.work / f"{inst.deployment}-{inst.index}.log"

    def start_instance(self, n: int) -> None:
        inst = self.instances[n]
        ready = self.work / f"{inst.deployment}-{inst.index}.ready"
        ready.unlink(missing_ok=True)
        env = {
            **os.environ, SKEW_VARIABLE: str(inst.skew), "FUNCHOST_DELIVER_TWICE": inst.deliver_twice,
            "FUNCHOST_RECEIVE_VISIBILITY_SECONDS": "20",
        }  # fmt: skip
        log = open(self.log_path(n), "ab")  # noqa: SIM115 - the child keeps it; closed when it exits
        cmd = [
            sys.executable, "-m", "tools.funchost", "--app-dir", str(ROOT),
            "--settings", str(self.work / f"{inst.deployment}.settings.json"),
            "--host-json", str(self.work / "host.json"),
            "--port", str(inst.port), "--instance-index", str(inst.index), "--ready-file", str(ready),
        ]  # fmt: skip
        inst.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)  # our module  # nosec B603
        log.close()
        inst.killed = False
        deadline = time.monotonic() + 60
        while not ready.exists():
            if inst.proc.poll() is not None:
                raise RuntimeError(f"host {inst.name} exited with {inst.proc.returncode}; see {self.log_path(n)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"host {inst.name} did not start within 60 s")
            time.sleep(0.1)

    def kill_instance(self, n: int) -> None:
        inst = self.instances[n]
        if inst.proc is not None and inst.proc.poll() is None:
            inst.killed = True
            inst.proc.send_signal(signal.SIGKILL)
            inst.proc.wait()

    def running(self, n: int) -> bool:
        proc = self.instances[n].proc
        return proc is not None and proc.poll() is None

    def check_crashes(self) -> None:
        """Note an instance that exited without being killed (``ensure_running`` starts it again)."""
        for inst in self.instances:
            if inst.proc is not None and inst.proc.poll() is not None and not inst.killed:
                with self._lock:
                    self.crashes.append(f"host {inst.name} exited by itself with code {inst.proc.returncode}")
                inst.killed = True

    def ensure_running(self) -> None:
        self.check_crashes()
        for n in range(len(self.instances)):
            if not self.running(n):
                self.start_instance(n)

    def listener_crashes(self) -> list[str]:
        """Lines in which a host says one of its listeners died (the host runs on, deaf to that trigger)."""
        found = []
        for n in range(len(self.instances)):
            path = self.log_path(n)
            if path.exists():
                for line in path.read_text(errors="replace").splitlines():
                    if re.search(r"listener \S+ crashed", line):
                        found.append(f"{self.instances[n].name}: {line[:200]}")
        return found

    def host_crashes(self) -> list[str]:
        self.check_crashes()
        return [*self.crashes, *self.listener_crashes()]

    def restart_azurite(self, down_seconds: float) -> None:
        if self.az is None:
            raise RuntimeError("the stack is not started")
        self.az, self.az_proc = azurite.restart(
            self.az, self.work / "azurite", log_file=self.work / "azurite.log", down_seconds=down_seconds
        )

    def admin(self, method: str, path: str, body: object = None) -> Any:
        if self.em is None:
            raise RuntimeError("the stack is not started")
        context = ssl.create_default_context(cafile=str(self.em.ca))
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the emulator's https://localhost URL
            f"{self.em.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310 - https://localhost  # nosec B310
            raw = response.read()
        return json.loads(raw) if raw else None

    def second_deliveries(self) -> int:
        """Invocations of a message's second delivery (dequeue count 2), as the hosts' invocation logs record them."""
        total = 0
        for n in range(len(self.instances)):
            path = self.log_path(n)
            if path.exists():
                text = path.read_text(errors="replace")
                total += sum(1 for line in text.splitlines() if "Executed '" in line and '"dequeue_count": 2' in line)
        return total


# ----------------------------------------------------------------------------------- observing


class Observer(threading.Thread):
    """Samples the map, the fenced documents and the coordinator's token from Azurite while a trial runs."""

    def __init__(self, stack: LocalStack, every: float = 0.4):
        super().__init__(daemon=True, name="observer")
        self.platform = stack.platform
        self.paths = list(FENCED)
        self.every = every
        self.tokens: dict[str, list[int]] = {p: [] for p in self.paths}
        self.map_versions: list[int] = []
        self.maps: dict[int, dict[str, dict[str, Any]]] = {}
        self.lease_tokens: list[int] = []
        self._stop_event = threading.Event()

    def watch(self, path: str) -> None:
        """Sample ``path`` too from now on (a fenced document the trial makes the coordinator write)."""
        self.tokens.setdefault(path, [])
        self.paths.append(path)

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            self.sample()

    def sample(self) -> None:
        state = self.platform.state
        with contextlib.suppress(Exception):
            self.lease_tokens.append(self.platform.leases.read(COORDINATOR).fencing_token)
        for path in list(self.paths):
            with contextlib.suppress(Exception):
                doc = state.read(path)
                if doc is not None and "fencing_token" in doc.body:
                    self.tokens[path].append(int(doc.body["fencing_token"]))
                if path == MAP_PATH and doc is not None:
                    version = int(doc.body.get("version", 0))
                    self.map_versions.append(version)
                    self.maps.setdefault(version, {})[str(doc.body.get("signature"))] = doc.body

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
        self.sample()

    def violations(self) -> list[str]:
        found = []
        for path, seen in self.tokens.items():
            for before, after in itertools.pairwise(seen):
                if after < before:
                    found.append(f"stale write landed: {path} went from fencing token {before} back to {after}")
                    break
        for before, after in itertools.pairwise(self.map_versions):
            if after < before:
                found.append(f"network map version went back from {before} to {after}")
                break
        for version, docs in self.maps.items():
            if len(docs) > 1:
                found.append(f"network map version {version} was written {len(docs)} times with different content")
        return found

    def unverified_maps(self) -> list[str]:
        keys = self.platform.keys
        return [
            f"network map version {v} does not verify with the key it names"
            for v, docs in sorted(self.maps.items())
            for doc in docs.values()
            if not retrying(functools.partial(verify_map, doc, keys))
        ]


# --------------------------------------------------------------------------------------- chaos


class Monkey(threading.Thread):
    """Random faults while a trial runs: kill -9 of instances, storms from the emulator, one Azurite restart."""

    def __init__(self, stack: LocalStack, rng: random.Random, *, azurite_restart_after: float | None):
        super().__init__(daemon=True, name="monkey")
        self.stack, self.rng = stack, rng
        self.azurite_restart_after = azurite_restart_after
        self.started = time.monotonic()
        self.actions: Counter[str] = Counter()
        self.log: list[str] = []
        self.errors: list[str] = []
        self._stop_event = threading.Event()
        self._restarts: list[tuple[float, int]] = []
        self._clear_at: dict[str, float] = {}

    def note(self, what: str) -> None:
        self.actions[what.split(" ", 1)[0]] += 1
        self.log.append(f"{time.monotonic() - self.started:6.1f}s {what}")

    def run(self) -> None:
        while not self._stop_event.wait(self.rng.uniform(1.5, 4.5)):
            try:
                self.step()
            except Exception as e:  # the harness itself must not die mid-trial
                self.errors.append(f"{type(e).__name__}: {e}")

    def step(self) -> None:
        now = time.monotonic()
        for due, n in list(self._restarts):
            if due <= now:
                self._restarts.remove((due, n))
                self.stack.start_instance(n)
                self.note(f"restart {self.stack.instances[n].name}")
        for service, due in list(self._clear_at.items()):
            if due <= now:
                del self._clear_at[service]
                self.stack.admin("PUT", f"/_admin/faults/{service}", {})
        if self.azurite_restart_after is not None and now - self.started >= self.azurite_restart_after:
            self.azurite_restart_after = None
            down = self.rng.uniform(0.5, 3)
            self.stack.restart_azurite(down)
            self.note(f"azurite-restart (down {down:.1f} s)")
            return
        kind = self.rng.choice(["kill", "kill", "429", "5xx", "latency"])
        if kind == "kill":
            alive = [n for n in range(len(self.stack.instances)) if self.stack.running(n)]
            if len(alive) > 1:
                n = self.rng.choice(alive)
                self.stack.kill_instance(n)
                self._restarts.append((now + self.rng.uniform(0.5, 5), n))
                self.note(f"kill -9 {self.stack.instances[n].name}")
            return
        service = self.rng.choice(["compute", "metrics", "keyvault"])
        if kind == "429":
            spec: dict[str, Any] = {"status": 429, "count": self.rng.randint(3, 12), "retry_after": 1}
        elif kind == "5xx":
            spec = {"status": self.rng.choice([500, 502, 503]), "count": self.rng.randint(3, 12)}
        else:
            spec = {"latency_ms": self.rng.randint(200, 1500)}
            self._clear_at[service] = now + self.rng.uniform(2, 6)
        self.stack.admin("PUT", f"/_admin/faults/{service}", spec)
        self.note(f"{kind} {service} {spec}")

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=60)
        with contextlib.suppress(Exception):
            retrying(lambda: self.stack.admin("DELETE", "/_admin/faults"))
        self.stack.ensure_running()


# ---------------------------------------------------------------------------------------- trial


@dataclass
class Posted:
    queue: str
    body: str
    request_id: str
    member_id: str


@dataclass
class TrialResult:
    number: int
    members: list[str]
    violations: list[str]
    harness_errors: list[str]
    actions: Counter[str]
    log: list[str]
    posted: int
    seconds: float
    lease_tokens: tuple[int, int]
    map_versions: tuple[int, int]
    #: Seconds after the faults stopped until every message was accounted for, and until the work queues were empty.
    settled: tuple[float, float]

    def summary(self) -> str:
        acts = ", ".join(f"{n} {a}" for a, n in sorted(self.actions.items()))
        return (
            f"trial {self.number}: {len(self.violations)} violation(s) in {self.seconds:.0f} s; {self.posted} messages "
            f"posted; {acts}; coordinator token {self.lease_tokens[0]}→{self.lease_tokens[1]}, "
            f"map v{self.map_versions[0]}→v{self.map_versions[1]}; accounted for {self.settled[0]:.0f} s and drained "
            f"{self.settled[1]:.0f} s after the faults stopped"
        )


def trial_members(prefix: str, number: int) -> tuple[str, str, str]:
    return f"{prefix}{number}-a", f"{prefix}{number}-b", f"{prefix}{number}-c"


class Trial:
    def __init__(self, stack: LocalStack, prefix: str, number: int, rng: random.Random):
        self.stack, self.number, self.rng = stack, number, rng
        self.platform = stack.platform
        self.a, self.b, self.c = trial_members(prefix, number)
        self.posted: list[Posted] = []
        self.votes_posted = False
        self.done: set[str] = set()
        self.watch: Callable[[str], None] = lambda path: None

    def post(self, queue: str, body: dict[str, Any] | str) -> None:
        raw = body if isinstance(body, str) else json.dumps(body)
        document = json.loads(raw)
        retrying(lambda: self.platform.queues.send(queue, raw))
        self.posted.append(Posted(queue, raw, str(document["request_id"]), str(document.get("member_id"))))
        if queue == rotation.REQUESTS:
            self.watch(request_report_path(str(document["request_id"])))

    def record(self, member_id: str) -> dict[str, Any] | None:
        try:
            doc = self.platform.state.read(member_path(member_id))
        except Exception:
            return None
        return doc.body if doc else None

    def status(self, member_id: str) -> str | None:
        record = self.record(member_id)
        return record.get("status") if record else None

    def sign_vote(self, request_id: str, member_id: str, approver: str) -> str:
        payload = approval_payload(approver_id=approver, decision="approve", member_id=member_id, request_id=request_id)

        def sign() -> bytes:
            key = self.platform.keys.get_key(key_name(approver, "governance"))
            if key is None:
                raise RuntimeError(f"{approver} has no governance key")
            return self.platform.keys.sign(key.kid, digest(payload))

        return json.dumps({**payload, "signature": b64u(retrying(sign))})

    def drive(self, until: float, *, keep_busy: bool = False) -> None:
        """Post what the scenario needs as soon as its preconditions hold, until ``until`` (monotonic).

        With ``keep_busy``, once the scenario is posted the load of the first founder's scale set swings
        every few seconds (scale ticks out and in) and more forced rotations are asked for, so the
        faults keep landing in the middle of work until ``until``.
        """
        a, b, c = self.a, self.b, self.c
        steps: dict[str, Callable[[], bool]] = {}
        steps["load"] = lambda: self.status(a) == "active"
        steps["rotate-a"] = lambda: self.status(a) == "active"
        steps["vote"] = lambda: self.status(a) == self.status(b) == "active" and self.status(c) == "pending_approval"
        steps["rotate-c"] = lambda: self.status(c) == "active"
        steps["offboard-b"] = lambda: self.status(c) in FINAL and self.status(b) == "active"
        done = self.done
        swings = 0
        next_swing = time.monotonic() + 6
        while time.monotonic() < until and (keep_busy or len(done) < len(steps)):
            if keep_busy and len(done) == len(steps) and time.monotonic() >= next_swing:
                swings += 1
                next_swing = time.monotonic() + self.rng.uniform(4, 8)
                load = {"tpm": 6000 if swings % 2 == 0 else 300}
                retrying(functools.partial(self.stack.admin, "PUT", f"/_admin/load/{scale_set_name(a)}", load))
                member = self.rng.choice([m for m in (a, c) if self.status(m) == "active"] or [a])
                ask = {"request_id": f"rot-{member}-{swings}", "member_id": member, "force": True}
                self.post(rotation.REQUESTS, ask)
            for name, ready in steps.items():
                if name in done or not ready():
                    continue
                done.add(name)
                if name == "load":
                    retrying(lambda: self.stack.admin("PUT", f"/_admin/load/{scale_set_name(a)}", {"tpm": 6000}))
                elif name == "rotate-a":
                    self.post(rotation.REQUESTS, {"request_id": f"rot-{a}", "member_id": a, "force": True})
                elif name == "vote":
                    for approver in (a, b):
                        self.post(ob.APPROVALS, self.sign_vote(f"req-{c}", c, approver))
                    self.votes_posted = True
                elif name == "rotate-c":
                    self.post(rotation.REQUESTS, {"request_id": f"rot-{c}", "member_id": c, "force": True})
                elif name == "offboard-b":
                    self.post(ob.OFFBOARDING, {"request_id": f"off-{b}", "member_id": b, "reason": "chaos trial"})
            time.sleep(0.5)

    def start(self) -> None:
        self.post(ob.REQUESTS, request_body(self.a, f"req-{self.a}", node_count=2, max_nodes=4))
        self.post(ob.REQUESTS, request_body(self.b, f"req-{self.b}", node_count=1, max_nodes=3))
        self.post(ob.REQUESTS, request_body(self.c, f"req-{self.c}", node_count=1, max_nodes=2))

    # -- accounting: what became of every message posted (read from storage)
    def poison_seen(self) -> set[str]:
        """Bodies (first 512 characters) visible as poison: the sweep's records and what sits in -poison queues."""
        bodies: set[str] = set()
        state = self.platform.state
        for path in state.list_paths("poison/"):
            doc = state.read(path)
            if doc is not None:
                bodies.add(str(doc.body.get("excerpt")))
        service = self.platform.queues.service
        for queue in WATCHED_QUEUES:
            with contextlib.suppress(Exception):  # a poison queue that does not exist holds nothing
                for message in service.get_queue_client(f"{queue}-poison").peek_messages(max_messages=32):
                    bodies.add(str(message.content)[:512])
        return bodies

    def unaccounted(self) -> list[str]:
        """Messages posted in this trial that ended nowhere visible: no final status, rejection or poison record."""
        state = self.platform.state
        poisoned = self.poison_seen()
        missing = []
        for p in self.posted:
            if p.body[:512] in poisoned:  # this very message was given up on, visibly
                continue
            if state.read(rejection_path(p.queue, p.body)) is not None:
                continue
            record = self.record(p.member_id) or {}
            if p.queue == ob.REQUESTS:
                settled = record.get("status") in FINAL or (
                    record.get("status") == "pending_approval" and not self.votes_posted
                )
                if record.get("request_id") == p.request_id and settled:
                    continue
            elif p.queue == ob.APPROVALS:
                approver = json.loads(p.body)["approver_id"]
                if approver in (record.get("votes") or {}):
                    continue
            elif p.queue == ob.OFFBOARDING:
                if record.get("status") == "offboarded" and (record.get("offboarding") or {}).get("request_id") == (
                    p.request_id
                ):
                    continue
            elif p.queue == rotation.REQUESTS:
                report = state.read(request_report_path(p.request_id))
                if report is not None and int(report.body.get("runs", 0)) >= 1:
                    continue
            missing.append(f"{p.queue} {p.request_id}: no final status, rejection or poison record")
        return missing

    def invariants(self) -> list[str]:
        """Each member onboarded at most once, in the map iff active, capacities in bounds (Key Vault, ARM, Azurite)."""
        p = self.platform
        found: list[str] = []
        network_map = p.state.read(MAP_PATH)
        map_members = [m["member_id"] for m in (network_map.body["members"] if network_map else [])]
        duplicated = [m for m, n in Counter(map_members).items() if n > 1]
        if duplicated:
            found.append(f"members listed more than once in the map: {duplicated}")
        scale_sets = p.scalesets.list_all()
        for member in (self.a, self.b, self.c):
            record = self.record(member)
            if record is None:
                continue
            rid = record.get("request_id")
            for kind in KEY_KINDS:
                versions = p.keys.list_versions(key_name(member, kind))
                onboarding = [v for v in versions if v.tags.get("request_id") == rid]
                if len(onboarding) > 1:
                    found.append(f"{key_name(member, kind)}: {len(onboarding)} versions for onboarding request {rid}")
                per_rotation = Counter(v.tags.get("rotation_id") for v in versions if v.tags.get("rotation_id"))
                found += [f"{key_name(member, kind)}: rotation {r} made {n} versions" for r, n in per_rotation.items()
                          if n > 1]  # fmt: skip
                strays = [v.version for v in versions if v.tags.get("request_id", rid) != rid]
                if strays:
                    found.append(f"{key_name(member, kind)}: versions {strays} belong to no onboarding or rotation")
            sets = [s for s in scale_sets if s.tags.get("member_id") == member]
            if len(sets) > 1:
                found.append(f"{member}: {len(sets)} scale sets")
            in_map = map_members.count(member)
            should = 1 if record.get("status") == "active" and not record.get("offboarding") else 0
            if in_map != should:
                found.append(f"{member} is {record.get('status')} but listed {in_map} time(s) in the map")
        found += capacity_violations(p, scale_sets)
        return found


def capacity_violations(p: Platform, scale_sets: list[Any]) -> list[str]:
    """Every active member's scale set, and every capacity change the autoscaler recorded, within its bounds."""
    found = []
    bounds: dict[str, tuple[int, int]] = {}
    for path in p.state.list_paths("members/"):
        doc = p.state.read(path)
        if doc is None:
            continue
        scale = doc.body.get("scale") or {}
        bounds[doc.body["member_id"]] = (int(scale.get("min_nodes", 1)), int(scale.get("max_nodes", 1)))
        if doc.body.get("status") == "active" and not doc.body.get("offboarding"):
            live = next((s for s in scale_sets if s.name == scale_set_name(doc.body["member_id"])), None)
            low, high = bounds[doc.body["member_id"]]
            if live is not None and not low <= live.capacity <= high:
                found.append(f"{live.name} has {live.capacity} node(s), outside {low}..{high}")
    state = p.state.read(AUTOSCALE_STATE)
    for change in (state.body.get("recent") or []) if state else []:
        low, high = bounds.get(change.get("member_id"), (1, 10**6))
        if not low <= int(change.get("capacity", low)) <= high:
            what = f"{change.get('capacity')} node(s) for {change.get('member_id')}"
            found.append(f"autoscale wrote {what}, outside {low}..{high}")
    return found


def fence_violations(p: Platform) -> list[str]:
    """No fenced document carries a token newer than the coordinator lease has ever handed out."""
    newest = p.leases.read(COORDINATOR).fencing_token
    found = []
    for path in FENCED:
        doc = p.state.read(path)
        if doc is not None and int(doc.body.get("fencing_token", 0)) > newest:
            found.append(f"{path} carries fencing token {doc.body['fencing_token']}, newer than the lease's {newest}")
    return found


def run_trial(
    stack: LocalStack, prefix: str, number: int, *, seed: int, chaos_seconds: float, settle_seconds: float = 150
) -> TrialResult:
    """One trial: the scenario under chaos, then the faults stop and the invariants are checked."""
    started = time.monotonic()
    rng = rng_for(seed)
    trial = Trial(stack, prefix, number, rng)
    observer = Observer(stack)
    trial.watch = observer.watch
    observer.sample()
    first_token = observer.lease_tokens[-1] if observer.lease_tokens else 0
    first_version = observer.map_versions[-1] if observer.map_versions else 0
    observer.start()
    monkey = Monkey(stack, rng, azurite_restart_after=rng.uniform(0.3, 0.8) * chaos_seconds)
    trial.start()
    monkey.start()
    trial.drive(until=started + chaos_seconds, keep_busy=True)
    monkey.stop()
    calm = time.monotonic()
    violations: list[str] = []
    trial.drive(until=calm + 30)  # what could not be posted under chaos
    retrying(lambda: stack.admin("PUT", f"/_admin/load/{scale_set_name(trial.a)}", {"tpm": 300}))
    waiting: list[str] = [f"{time.monotonic() - calm:6.1f}s after the faults: posted {sorted(trial.done)}"]
    last: list[list[str]] = [[]]

    def settled() -> bool:
        try:
            missing = trial.unaccounted()
        except Exception as e:
            missing = [f"(could not tell: {type(e).__name__}: {e})"]
        if missing != last[0]:
            last[0] = missing
            waiting.append(f"{time.monotonic() - calm:6.1f}s after the faults: waiting for {missing}")
        return not missing

    try:
        wait_until("every message accounted for", settled, settle_seconds, every=1.0)
    except TimeoutError:
        violations += retrying(trial.unaccounted)
    accounted = time.monotonic() - calm
    with contextlib.suppress(TimeoutError):  # late redeliveries land before the checks, not after them
        wait_until("work queues drained", lambda: not any(trial.platform.queues.count(q) for q in QUEUE_MODELS), 60)
    drained = time.monotonic() - calm
    observer.stop()
    violations += observer.violations()
    violations += retrying(observer.unverified_maps, timeout=60)
    violations += retrying(trial.invariants, timeout=60)
    violations += retrying(lambda: fence_violations(stack.platform))
    return TrialResult(
        number, [trial.a, trial.b, trial.c], violations, monkey.errors, monkey.actions, monkey.log + waiting,
        len(trial.posted),
        time.monotonic() - started,
        (first_token, max(observer.lease_tokens or [0])), (first_version, max(observer.map_versions or [0])),
        (accounted, drained),
    )  # fmt: skip


# ------------------------------------------------------------------------------------ bad input

ZERO_SIGNATURE = b64u(bytes(64))


def good_message(queue: str) -> dict[str, Any]:
    """A well-formed message for ``queue`` naming a member that does not exist (the base of the mutations)."""
    member, rid = "nobody-here", "req-nobody-here"
    if queue == ob.REQUESTS:
        return dict(json.loads(request_body(member, rid)))
    if queue == ob.APPROVALS:
        return {"request_id": rid, "member_id": member, "approver_id": "bank-zz", "decision": "approve",
                "signature": ZERO_SIGNATURE}  # fmt: skip
    if queue == ob.OFFBOARDING:
        return {"request_id": rid, "member_id": member, "reason": "leaving"}
    if queue == rotation.REQUESTS:
        return {"request_id": rid, "member_id": member, "force": True}
    step = next(s for s, q in ob.STEP_QUEUES.items() if q == queue)
    return {"request_id": rid, "member_id": member, "step": step}


def _handwritten() -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for queue in QUEUE_MODELS:
        good = good_message(queue)
        cases += [
            (queue, ""), (queue, "not json"), (queue, "{"), (queue, "[]"), (queue, "null"), (queue, "42"),
            (queue, json.dumps({**good, "member_id": "../../etc/passwd"})),
            (queue, json.dumps({**good, "request_id": "a b"})),
            (queue, json.dumps({**good, "admin": True})),
            (queue, json.dumps({k: v for k, v in good.items() if k != "request_id"})),
            (queue, json.dumps({**good, "member_id": "x" * 20_000})),
        ]  # fmt: skip
    good = good_message(ob.REQUESTS)
    cases += [
        (ob.REQUESTS, json.dumps({**good, "legal_name": "O=Bank, L=Paris, C=XX"})),
        (ob.REQUESTS, json.dumps({**good, "legal_name": "O=Bank, L=Paris, C=FR, CN=<script>"})),
        (ob.REQUESTS, json.dumps({**good, "node_count": True})),
        (ob.REQUESTS, json.dumps({**good, "node_count": 0})),
        (ob.REQUESTS, json.dumps({**good, "scale": {"min_nodes": 5, "max_nodes": 2}})),
        (ob.REQUESTS, json.dumps({**good, "contact_email": "x@y"})),
        (ob.REQUESTS, json.dumps({**good, "region": "West Europe"})),
        (ob.APPROVALS, json.dumps({**good_message(ob.APPROVALS), "decision": "maybe"})),
        (ob.APPROVALS, json.dumps({**good_message(ob.APPROVALS), "signature": "A" * 10})),
        (ob.APPROVALS, json.dumps({**good_message(ob.APPROVALS), "signature": "!!notbase64!!"})),
        (ob.APPROVALS, json.dumps(good_message(ob.APPROVALS))),  # a vote on a request nobody made: unknown_request
        (ob.OFFBOARDING, json.dumps(good_message(ob.OFFBOARDING))),  # unknown_member
        (ob.OFFBOARDING, json.dumps({**good_message(ob.OFFBOARDING), "reason": ""})),
        (rotation.REQUESTS, json.dumps(good_message(rotation.REQUESTS))),  # not_active
        (rotation.REQUESTS, json.dumps({**good_message(rotation.REQUESTS), "force": "yes"})),
        (ob.STEP_QUEUES["provision"], json.dumps({**good_message(ob.STEP_QUEUES["provision"]), "step": "keys"})),
        (ob.STEP_QUEUES["keys"], json.dumps({**good_message(ob.STEP_QUEUES["keys"]), "polls": -1})),
        (ob.STEP_QUEUES["publish"], json.dumps({**good_message(ob.STEP_QUEUES["publish"]), "step": "deploy"})),
    ]
    return cases


#: Expected reasons of the hand-written cases that pass the schema and are refused by the workflow.
SEMANTIC_REASONS = {
    ob.APPROVALS: "unknown_request",
    ob.OFFBOARDING: "unknown_member",
    rotation.REQUESTS: "not_active",
}


def expected_reason(queue: str, raw: str) -> str | None:
    """The reason the app must record for ``raw`` on ``queue``; None when the message is acceptable there."""
    parsed = parse(QUEUE_MODELS[queue], raw)
    if isinstance(parsed, Rejection):
        return parsed.reason
    if isinstance(parsed, StepMessage) and ob.STEP_QUEUES[parsed.step] != queue:
        return "wrong_queue"
    if getattr(parsed, "member_id", None) == "nobody-here" and queue in SEMANTIC_REASONS:
        return SEMANTIC_REASONS[queue]
    return None


def queue_can_carry(raw: str) -> bool:
    """Storage queues carry XML 1.0 text (no control characters; ``\\r`` is normalised by the XML parser)."""
    carried = all((ch in "\t\n" or ord(ch) >= 0x20) and not 0xFFFE <= ord(ch) <= 0xFFFF for ch in raw)
    return carried and len(raw) < 48_000


def generated_cases(count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` bad messages drawn with hypothesis: one field of a good message mutated, dropped or
    retyped, unknown fields, truncated or whole-replaced JSON, noise; only those the app must refuse."""
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import seed as hypothesis_seed
    from hypothesis import settings as hypothesis_settings
    from hypothesis import strategies as st

    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
        max_leaves=8,
    )
    found: list[tuple[str, str]] = []

    @hypothesis_seed(seed)
    @hypothesis_settings(
        max_examples=count * 4, database=None, deadline=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(
        queue=st.sampled_from(sorted(QUEUE_MODELS)),
        shape=st.sampled_from(["field", "drop", "extra", "truncate", "replace", "noise"]),
        pick=st.integers(min_value=0, max_value=10),
        value=values,
        noise=st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " \t\n", max_size=80),
    )
    def collect(queue: str, shape: str, pick: int, value: Any, noise: str) -> None:
        good = good_message(queue)
        name = sorted(good)[pick % len(good)]
        if shape == "field":
            raw = json.dumps({**good, name: value})
        elif shape == "drop":
            raw = json.dumps({k: v for k, v in good.items() if k != name})
        elif shape == "extra":
            raw = json.dumps({**good, (noise[:12] or "x") + "_": value})
        elif shape == "truncate":
            text = json.dumps(good)
            raw = text[: max(1, len(text) * pick // 11)]
        elif shape == "replace":
            raw = json.dumps(value)
        else:
            raw = noise
        found.append((queue, raw))

    collect()
    seen: set[tuple[str, str]] = set()
    cases = []
    for queue, raw in found:
        if (queue, raw) in seen or not queue_can_carry(raw) or expected_reason(queue, raw) is None:
            continue
        seen.add((queue, raw))
        cases.append((queue, raw))
    return cases[:count]


def queue_corpus(generated: int = 160, seed: int = 20240) -> list[tuple[str, str, str]]:
    """(queue, message, expected reason): the hand-written cases and ``generated`` drawn by hypothesis."""
    cases = []
    for queue, raw in [*_handwritten(), *generated_cases(generated, seed)]:
        reason = expected_reason(queue, raw)
        if reason is not None and queue_can_carry(raw):
            cases.append((queue, raw, reason))
    unique = {(q, r): reason for q, r, reason in cases}
    return [(q, r, reason) for (q, r), reason in unique.items()]


@dataclass
class BadInputResult:
    tried: int = 0
    lost: list[str] = field(default_factory=list)
    wrong_reason: list[str] = field(default_factory=list)
    poisoned: list[str] = field(default_factory=list)


def poison_counts(p: Platform) -> dict[str, int]:
    return {q: p.queues.count(f"{q}-poison") for q in QUEUE_MODELS}


def run_queue_corpus(stack: LocalStack, cases: list[tuple[str, str, str]], good_members: list[str]) -> BadInputResult:
    """Post every case (and good requests among them) to the live hosts; each must end as a recorded rejection."""
    p = stack.platform
    before = poison_counts(p)
    result = BadInputResult(tried=len(cases))
    middle = len(cases) // 2
    for n, (queue, raw, _) in enumerate(cases):
        if n == middle:
            for member in good_members:
                p.queues.send(ob.REQUESTS, request_body(member, f"req-{member}"))
        p.queues.send(queue, raw)
    paths = {rejection_path(queue, raw): (queue, raw, reason) for queue, raw, reason in cases}

    def recorded() -> set[str]:
        return set(p.state.list_paths("rejections/")) & set(paths)

    with contextlib.suppress(TimeoutError):
        wait_until("every bad message recorded", lambda: len(recorded()) == len(paths), timeout=120, every=1.0)
    done = recorded()
    for path, (queue, raw, reason) in paths.items():
        if path not in done:
            result.lost.append(f"{queue}: {raw[:80]!r} left no rejection")
            continue
        doc = p.state.read(path)
        body = doc.body if doc else {}
        if body.get("reason") != reason or not body.get("message") or body.get("queue") != queue:
            result.wrong_reason.append(f"{queue}: {raw[:60]!r} recorded as {body.get('reason')!r}, expected {reason!r}")
    after = poison_counts(p)
    result.poisoned = [f"{q}-poison grew by {after[q] - before[q]}" for q in after if after[q] > before[q]]
    return result


#: (what, raw request, statuses that are right); None: the connection may close without an answer.
HTTP_CASES: list[tuple[str, bytes, set[int | None]]] = [
    ("POST on a GET route", b"POST /api/healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", {405}),
    ("DELETE /api/status", b"DELETE /api/status HTTP/1.1\r\nHost: x\r\n\r\n", {404, 405}),
    ("PUT /api/dashboard", b"PUT /api/dashboard HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", {404, 405}),
    ("PATCH /api/status", b"PATCH /api/status HTTP/1.1\r\nHost: x\r\n\r\n", {404, 405}),
    ("OPTIONS /api/healthz", b"OPTIONS /api/healthz HTTP/1.1\r\nHost: x\r\n\r\n", {405}),
    ("TRACE", b"TRACE /api/healthz HTTP/1.1\r\nHost: x\r\n\r\n", {501}),
    ("unknown method", b"FROBNICATE /api/healthz HTTP/1.1\r\nHost: x\r\n\r\n", {501}),
    ("lower-case method", b"get /api/healthz HTTP/1.1\r\nHost: x\r\n\r\n", {501}),
    ("TLS hello on the plain port", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(32) + b"\r\n\r\n",
     {400, None}),
    ("bad HTTP version", b"GET /api/healthz HTTP/9.9\r\nHost: x\r\n\r\n", {505}),
    ("garbage request line", b"\x00\x01\x02 / /\r\n\r\n", {400}),
    ("path traversal", b"GET /api/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("encoded traversal", b"GET /api/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("NUL in the path", b"GET /api/healthz%00 HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("unknown route", b"GET /api/members/../../../etc HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("non-ASCII path", "GET /api/h\u00e9althz HTTP/1.1\r\nHost: x\r\n\r\n".encode(), {404}),
    ("relative path", b"GET api/healthz HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("70 KB path", b"GET /api/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {414}),
    ("bad query escapes", b"GET /api/status?x=%ZZ&&=&code=%22%3E%3Cscript%3E HTTP/1.1\r\nHost: x\r\n\r\n",
     {200, 404, 503}),
    ("30 KB query", b"GET /api/healthz?q=" + b"%41" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {200}),
    ("repeated query keys", b"GET /api/dashboard?code=a&code=b&code=" + b"c" * 500 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
     {200, 404, 503}),
    ("70 KB header", b"GET /api/healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n", {431}),
    ("200 headers", b"GET /api/healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200))
     + b"\r\n", {431}),
    ("header without a colon", b"GET /api/healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", {200, 400}),
    ("non-numeric Content-Length", b"POST /api/healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", {400}),
    ("negative Content-Length", b"POST /api/healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", {400}),
    ("1 TB Content-Length", b"POST /api/healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n", {413}),
    ("Content-Length beyond the body", b"GET /api/healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nshort",
     {200}),
    ("chunked garbage", b"POST /api/status HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
     {404, 405}),
    ("headers never finished", b"GET /api/healthz HTTP/1.1\r\nHost: x\r\nX-A: 1", {None, 200, 400}),
    ("nothing at all", b"", {None}),
]  # fmt: skip


def http_exchange(port: int, raw: bytes, timeout: float = 10.0) -> int | None:
    """Send ``raw``, close the sending side, and return the status of the answer (None if there is none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with contextlib.suppress(OSError):  # the server may answer and close before reading it all
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
        data = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(match.group(1)) if match else None


def healthz(port: int) -> bool:
    with contextlib.suppress(OSError):
        return http_exchange(port, b"GET /api/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == 200
    return False


def run_http_cases(stack: LocalStack) -> BadInputResult:
    """Every case against every instance's HTTP port; each must be answered as listed, the host must keep serving."""
    result = BadInputResult()
    for n, inst in enumerate(stack.instances):
        for what, raw, allowed in HTTP_CASES:
            result.tried += 1
            try:
                status = http_exchange(inst.port, raw)
            except OSError as e:
                status = None
                if None not in allowed:
                    result.lost.append(f"{inst.name} {what}: {e}")
                    continue
            if status not in allowed:
                result.wrong_reason.append(f"{inst.name} {what}: answered {status}, expected one of {allowed}")
            if not healthz(inst.port) or not stack.running(n):
                result.lost.append(f"{inst.name} stopped serving after {what!r}")
    return result


#: (argv, words the one-line reason must contain): each must exit 2.
CLI_CASES: list[tuple[list[str], list[str]]] = [
    (["onboard", "Bank_C", "--legal-name", "O=Bank C, L=Amsterdam, C=NL"], ["MEMBER", "must match"]),
    (["onboard", "bank-c", "--legal-name", "Bank C"], ["legal_name"]),
    (["onboard", "bank-c", "--legal-name", "O=Bank C, L=Amsterdam, C=XX"], ["legal_name", "country"]),
    (["onboard", "bank-c", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--nodes", "0"], ["node_count"]),
    (["onboard", "bank-c", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--nodes", "two"], ["--nodes", "int"]),
    (["onboard", "bank-c", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--email", "nobody"], ["contact_email"]),
    (["onboard", "bank-c", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--region", "West Europe"], ["region"]),
    (["onboard", "bank-c", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--min-nodes", "4", "--max-nodes", "2"],
     ["min_nodes"]),
    (["onboard", "bank-c", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--request-id", "../x"], ["request_id"]),
    (["onboard", "bank-c"], ["--legal-name"]),
    (["approve", "../req", "--as", "bank-a"], ["REQUEST_ID"]),
    (["approve", "req-1", "--as", "Bank A"], ["--as"]),
    (["approve", "req-never-taken", "--as", "bank-a", "--wait", "0"], ["REQUEST_ID", "no onboarding request"]),
    (["reject", "req-1"], ["--as"]),
    (["offboard", "bank-c"], ["--reason"]),
    (["offboard", "bank-c", "--reason", ""], ["reason"]),
    (["offboard", "x", "--reason", "r"], ["MEMBER"]),
    (["rotate-keys", "--member", "Not_A_Member"], ["--member"]),
    (["rotate-keys", "--wait", "-1"], ["--wait"]),
    (["rotate-keys", "--request-id", "bad id!", "--wait", "0"], ["request_id"]),
    (["load", "bank-c", "--tpm", "-5"], ["--tpm"]),
    (["load", "bank-c"], ["--tpm"]),
    (["load", "../etc", "--tpm", "1"], ["MEMBER"]),
    (["fault", "service", "compute", "--status", "404"], ["--status"]),
    (["fault", "service", "storage"], ["invalid choice"]),
    (["fault", "node", "bank-c", "0", "--kind", "melted"], ["--kind"]),
    (["rejections", "--limit", "0"], ["--limit"]),
    (["replay-poison", "--queue", "nope"], ["--queue"]),
    (["frobnicate"], ["invalid choice"]),
    (["status", "--jsn"], ["unrecognized arguments"]),
]  # fmt: skip


def run_cli_cases(stack: LocalStack, cases: list[tuple[list[str], list[str]]]) -> BadInputResult:
    """Each command must exit 2 with its reason on the last line of stderr, naming the field or the rule."""
    consortium = Path(sys.executable).parent / "consortium"
    env = {**os.environ, **stack.values}

    def one(case: tuple[list[str], list[str]]) -> str | None:
        argv, words = case
        done = subprocess.run(  # our own entry point with fixed arguments  # nosec B603
            [str(consortium), *argv], cwd=stack.work, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        if done.returncode != 2:
            return f"consortium {' '.join(argv)}: exit {done.returncode}, expected 2 ({last!r})"
        missing = [w for w in words if w.lower() not in last.lower()]
        if missing or "Traceback" in done.stderr:
            return f"consortium {' '.join(argv)}: reason {last!r} does not name {missing}"
        return None

    result = BadInputResult(tried=len(cases))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for problem in pool.map(one, cases):
            if problem:
                result.wrong_reason.append(problem)
    return result


# -------------------------------------------------------------------------------------- figures


@dataclass
class Figures:
    trials: list[TrialResult] = field(default_factory=list)
    bad: dict[str, BadInputResult] = field(default_factory=dict)
    host_crashes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, float]:
        return {
            "chaos_trials": len(self.trials),
            "chaos_violations": sum(len(t.violations) for t in self.trials),
            "bad_inputs_tried": sum(r.tried for r in self.bad.values()),
            "bad_inputs_lost": sum(len(r.lost) + len(r.wrong_reason) + len(r.poisoned) for r in self.bad.values()),
            "host_crashes": len(self.host_crashes),
        }


def run_all(
    work: Path, *, trials: int, chaos_seconds: float, seed: int = 1, generated: int = 160, cli_cases: int | None = None
) -> Figures:
    """Bad input then ``trials`` chaos trials on one fresh stack; what the bench reports."""
    prefix = "".join(rng_for(seed).choice(string.ascii_lowercase) for _ in range(3))
    good = [f"{prefix}good-a", f"{prefix}good-b"]
    founders = [m for t in range(trials) for m in trial_members(prefix, t)[:2]] + good
    stack = LocalStack(work, founders).start()
    figures = Figures()
    try:
        figures.bad["queues"] = run_queue_corpus(stack, queue_corpus(generated, seed), good)
        figures.bad["http"] = run_http_cases(stack)
        figures.bad["cli"] = run_cli_cases(stack, CLI_CASES[:cli_cases])
        for t in range(trials):
            figures.trials.append(run_trial(stack, prefix, t, seed=seed * 1000 + t, chaos_seconds=chaos_seconds))
            print("  " + figures.trials[-1].summary(), flush=True)
            for v in figures.trials[-1].violations:
                print(f"    violation: {v}", flush=True)
            for e in figures.trials[-1].harness_errors:
                print(f"    harness error (not counted as a violation): {e}", flush=True)
        figures.host_crashes = stack.host_crashes()
    finally:
        stack.stop()
    return figures
