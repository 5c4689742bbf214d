"""Chaos and bad input on the one-deployment-per-member stack: the harness behind ``tests/chaos`` and
``bench/bench_chaos.py``.

``MemberStack`` starts what ``make up`` starts (``tools.stack.up_members``: Azurite with one account per
member, the Azure emulator with each member's identity, vault and subscription, each member's settings
file, the founders' genesis ceremony) in a folder of its own and on free ports, then runs the hosts
itself so it can kill and restart them: one deployment per member (bank-a..bank-d) and a second
deployment of bank-b (``bank-b-standby``) on bank-b's own storage, which competes for bank-b's
coordinator lease. Every host instance runs with:
- every queue message delivered twice (``FUNCHOST_DELIVER_TWICE``, the local host's testing facility:
  ``after`` on some instances, ``during`` on others);
- its clock off by some seconds (``CONSORTIUM_CLOCK_SKEW_SECONDS``, read only by ``SystemClock``);
- a 20 s receive invisibility (``FUNCHOST_RECEIVE_VISIBILITY_SECONDS``) instead of 10 minutes, so a
  message whose instance was killed comes back within a trial;
- 15 s timer listener locks (a host.json ``singleton`` section), so a killed instance's timers move on.

A trial (``run_trial``, on a stack of its own: the members are fixed identities and a trial ends with
some of them out of the chain) plays the consortium's story: the founders bank-a and bank-b join,
bank-c joins by their vote, bank-d by a split decision of three, load swings on bank-a's own scale set
(scale ticks), bank-a and bank-b rotate their keys (a ``rotate`` version of the chain for the
governance key), bank-c leaves and bank-a removes bank-d with bank-b's approval; meanwhile a monkey
kills deployments with SIGKILL at random moments, restarts Azurite once on the same ports and data,
and sends 429 (with Retry-After), 5xx and latency storms from the emulator, for the trial's length and
until the story's last step was posted and had ``FAULTS_AFTER_LAST_STEP`` seconds of faults to go
through. Then the faults stop, the
killed deployments come back, and the invariants are read back from each member's OWN storage, vault
and subscription (never from the harness's notes): every member's verified chain is a prefix of one
chain (no two documents of one version anywhere, and no deployment reporting a fork), every message
posted ended (a final status, a rejection or a poison record), each member's vault and subscription
hold only its own keys and scale set, capacities within bounds, a member out of the chain drained with
its keys disabled, no 403 in any host's log (the app never tries another member's resources, nor signs
with a key it disabled), no host crash. An ``Observer`` samples the chains, records and coordinator
leases during the trial, so a fork later repaired is still seen, and each violation carries the
history that names its cause (issue 19): the deliveries and dequeue counts the hosts logged, the
versions of the member's record, the holders of its coordinator lease, the chain versions seen, and
the kills.

Bad input (``queue_corpus``, ``HTTP_CASES``, ``CLI_CASES``) goes through each member's queues (each
refused once with its reason, recorded in that member's own storage; nothing poisoned; the founders'
good requests posted alongside still complete), the HTTP port of every deployment (always an answer,
the host keeps serving) and the ``consortium`` command line (exit 2 and a one-line reason naming the
field or rule); ``changed_nothing`` checks that each member's chain, record, vault and subscription
are as they were.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import re
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.bootstrap import Platform
from shared.decisions import chain
from shared.messages import (
    Decision,
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
from shared.services.consortium import SELF
from shared.services.leadership import COORDINATOR
from shared.services.records import member_path, rejection_path
from shared.services.rotation import request_report_path
from tools import azurite, ceremony, member_settings, stack
from tools.emulator import EmulatorHandle
from tools.harness import hosts
from tools.harness import stack as harness_stack
from tools.harness.stack import FAST_EMULATOR, LocalStack
from tools.harness.wait import retrying, wait_until

ROOT = Path(__file__).resolve().parent.parent
MEMBERS = azurite.MEMBER_IDS
FOUNDERS = ceremony.FOUNDERS
#: Statuses a member's own record ends in.
FINAL = ("active", "rejected", "failed", "left", "removed")
#: (member, deployment, clock skew in seconds, FUNCHOST_DELIVER_TWICE) of each host instance.
INSTANCES = (
    ("bank-a", "bank-a-local", 0.0, "after"),
    ("bank-b", "bank-b-local", 37.0, "during"),
    ("bank-c", "bank-c-local", -23.0, "after"),
    ("bank-d", "bank-d-local", 11.0, "during"),
    ("bank-b", "bank-b-standby", -9.0, "after"),
)
#: Settings every member's deployment starts with in the chaos stack: timers and windows short enough
#: for scale ticks, rotations and poison sweeps to happen within a trial.
CHAOS_VALUES = {
    "ONBOARDING_POLL_SECONDS": "1", "AUTOSCALE_SCHEDULE": "*/3 * * * * *", "AUTOSCALE_BOOT_SECONDS": "0",
    "AUTOSCALE_SCALE_IN_WINDOW_SECONDS": "12", "AUTOSCALE_COOLDOWN_SECONDS": "4",
    "KEY_ROTATION_SCHEDULE": "*/3 * * * * *", "POISON_SWEEP_SCHEDULE": "*/3 * * * * *",
    "KEY_ROTATION_TLS": "rotate=P90D overlap=PT6S warn=P14D",
    "KEY_ROTATION_GOVERNANCE": "rotate=P365D overlap=PT6S warn=P30D",
}  # fmt: skip
#: The load two nodes serve (850 transactions a minute each at the target): a founder's steady state.
STEADY_TPM = 1600
LEGAL_NAMES = ceremony.LEGAL_NAMES


def rng_for(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - chaos timing, not security  # nosec B311


#: What a check may meet while storage restarts or a storm goes on: not an answer yet, ask again.
UNDER_CHAOS: tuple[type[BaseException], ...] = (Exception,)


def request_body(member_id: str, request_id: str, node_count: int = 2, max_nodes: int = 4) -> str:
    return json.dumps({
        "request_id": request_id, "member_id": member_id, "legal_name": LEGAL_NAMES[member_id],
        "region": "westeurope", "node_count": node_count, "contact_email": f"ops@{member_id}.example",
        "scale": {"min_nodes": 1, "max_nodes": max_nodes},
    })  # fmt: skip


# ------------------------------------------------------------------------------------- the stack


@dataclass
class Instance:
    member: str
    deployment: str
    skew: float
    deliver_twice: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    killed: bool = False

    @property
    def name(self) -> str:
        return self.deployment


class MemberStack:
    """The local stack (``tools.harness.stack``, hosts not started) under ``work``, and the host instances
    this harness runs itself, so it can kill and restart them."""

    def __init__(self, work: Path, *, instances: Iterable[tuple[str, str, float, str]] = INSTANCES):
        self.work = work
        self.paths = stack.StackPaths(root=work)
        self.specs = list(instances)
        self.local: LocalStack | None = None
        self.az: azurite.Azurite | None = None
        self.em: EmulatorHandle | None = None
        self.instances: list[Instance] = []
        self.crashes: list[str] = []
        self._lock = threading.Lock()

    # -- lifecycle
    def start(self) -> MemberStack:
        # the chaos timers, kept by member_settings.write under what makes the member
        self.local = LocalStack.start(self.work, MEMBERS, values=CHAOS_VALUES, hosts=False,
                                      emulator_config=FAST_EMULATOR)  # fmt: skip
        self.az, self.em = self.local.az, self.local.emulator
        try:
            host_json = json.loads((ROOT / "host.json").read_text())
            host_json["singleton"] = {"listenerLockPeriod": "00:00:15",
                                      "listenerLockRecoveryPollingInterval": "00:00:05"}  # fmt: skip
            (self.work / "host.json").write_text(json.dumps(host_json))
            ports = self._instance_ports()
            self.instances = [Instance(m, d, skew, twice, port) for (m, d, skew, twice), port in
                              zip(self.specs, ports, strict=True)]  # fmt: skip
            for n in range(len(self.instances)):
                self.spawn(n)
            for n in range(len(self.instances)):
                self.await_ready(n)
        except BaseException:
            self.stop()
            raise
        return self

    def _instance_ports(self) -> list[int]:
        """Each member's first deployment on the port its settings name; any other on a free port of its own."""
        named = {m: member_settings.read(member_settings.settings_path(m, self.work))[1] for m in MEMBERS}
        spare = [p for p in azurite.free_ports(len(self.specs) + len(named)) if p not in named.values()]
        return [named[m] if d == f"{m}-local" else spare.pop() for m, d, _, _ in self.specs]

    def stop(self) -> None:
        for inst in self.instances:
            if inst.proc is not None and inst.proc.poll() is None:
                inst.proc.send_signal(signal.SIGTERM)
        for inst in self.instances:
            if inst.proc is not None:
                try:
                    inst.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    inst.proc.kill()
                    inst.proc.wait()
        if self.az is not None and self.az.pid is not None:  # the Azurite of a restart is not in the record
            azurite.stop_pid(self.az.pid)
        stack.down(self.paths, quiet=True)

    def _started(self) -> LocalStack:
        if self.local is None:
            raise RuntimeError("the stack is not started")
        return self.local

    def values(self, member: str) -> dict[str, str]:
        """The settings ``member``'s deployment runs with (its ``.local/members/{id}/local.settings.json``)."""
        return self._started().values(member)

    def platform(self, member: str) -> Platform:
        """``member``'s own storage, queues, vault and subscription, as its deployment sees them."""
        return self._started().platform(member)

    def log_path(self, n: int) -> Path:
        return self.work / f"{self.instances[n].deployment}.log"

    def ports(self, member: str) -> list[int]:
        return [i.port for i in self.instances if i.member == member]

    def spawn(self, n: int) -> None:
        inst = self.instances[n]
        ready = self.work / f"{inst.deployment}.ready"
        ready.unlink(missing_ok=True)
        settings_file = member_settings.settings_path(inst.member, self.work)
        env = {
            **os.environ, **self.values(inst.member), "CONSORTIUM_DEPLOYMENT": inst.deployment,
            member_settings.HOST_ID_SETTING: f"consortium-{inst.deployment}",
            SKEW_VARIABLE: str(inst.skew), "FUNCHOST_DELIVER_TWICE": inst.deliver_twice,
            "FUNCHOST_RECEIVE_VISIBILITY_SECONDS": "20",
        }  # fmt: skip
        cmd = hosts.funchost(ready=ready, settings=settings_file, port=inst.port, app_dir=ROOT,
                             host_json=self.work / "host.json")  # fmt: skip
        inst.proc = hosts.spawn(cmd, self.log_path(n), env=env)
        inst.killed = False

    def await_ready(self, n: int, timeout: float = 90) -> None:
        inst = self.instances[n]
        if inst.proc is None:
            raise RuntimeError(f"host {inst.name} was never started")
        hosts.await_ready(
            inst.proc, self.work / f"{inst.deployment}.ready", f"host {inst.name}", self.log_path(n), timeout
        )

    def start_instance(self, n: int) -> None:
        self.spawn(n)
        self.await_ready(n)

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

    def log_lines(self, pattern: str) -> list[str]:
        found = []
        for n in range(len(self.instances)):
            path = self.log_path(n)
            if path.exists():
                found += [f"{self.instances[n].name}: {line[:240]}" for line in
                          path.read_text(errors="replace").splitlines() if re.search(pattern, line)]  # fmt: skip
        return found

    def host_crashes(self) -> list[str]:
        """Hosts that exited by themselves, and lines in which a host says one of its listeners died."""
        self.check_crashes()
        return [*self.crashes, *self.log_lines(r"listener \S+ crashed")]

    def restart_azurite(self, down_seconds: float) -> None:
        if self.az is None:
            raise RuntimeError("the stack is not started")
        self.az, _ = azurite.restart(
            self.az, self.paths.local / "azurite", log_file=self.paths.logs / "azurite.log", down_seconds=down_seconds
        )

    def admin(self, method: str, path: str, body: object = None) -> Any:
        if self.em is None:
            raise RuntimeError("the stack is not started")
        return harness_stack.admin(self.em, method, path, body)

    def status(self, member: str) -> dict[str, Any]:
        """``GET /api/status`` of the member's own deployment (any of its instances that answers)."""
        errors = []
        for port in self.ports(member):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as r:  # a local http URL  # nosec B310
                    return dict(json.loads(r.read()))
            except (OSError, ValueError) as e:
                errors.append(f"port {port}: {e}")
        raise RuntimeError(f"{member}'s deployment does not answer ({'; '.join(errors)})")

    def second_deliveries(self) -> int:
        """Invocations of a message's second delivery (dequeue count 2), as the hosts' invocation logs record them."""
        return len(self.log_lines(r"Executed '.*\"dequeue_count\": 2"))


# ------------------------------------------------------------------------- reading a member's own


def own_chain(p: Platform) -> list[dict[str, Any]]:
    """The documents of the member's stored chain (its private ``chain/``), in version order."""
    documents = []
    for path in p.state.list_paths("chain/"):
        doc = p.state.read(path)
        if doc is not None:
            documents.append(doc.body)
    return documents


def own_record(p: Platform, member: str) -> dict[str, Any] | None:
    doc = p.state.read(member_path(member))
    return doc.body if doc else None


def describe_record(body: Mapping[str, Any] | None) -> str:
    """One line of a member record: what a violation's history needs from each version."""
    if body is None:
        return "no record"
    steps = ",".join(s for s in ob.STEPS if s in (body.get("steps") or {}))
    text = f"{body.get('status')} (request {body.get('request_id')}, steps [{steps}])"
    if body.get("retiring"):
        text += f" retiring {body['retiring'].get('status')} in v{body['retiring'].get('version')}"
    if body.get("last_error"):
        text += f"; last error {body['last_error'].get('kind')}: {str(body['last_error'].get('message'))[:120]}"
    return text


# ----------------------------------------------------------------------------------- observing


class Observer(threading.Thread):
    """Samples each member's chain, record, own consortium state and coordinator lease while a trial runs."""

    def __init__(self, stack: MemberStack, started: float, every: float = 0.5):
        super().__init__(daemon=True, name="observer")
        self.stack, self.started, self.every = stack, started, every
        #: version -> document hash -> the members that held it (from their own storage)
        self.documents: dict[int, dict[str, set[str]]] = {}
        self.forks: dict[str, str] = {}
        self.record_versions: dict[str, list[str]] = {m: [] for m in MEMBERS}
        self.lease_holders: dict[str, list[str]] = {m: [] for m in MEMBERS}
        self.chain_versions: dict[str, list[str]] = {m: [] for m in MEMBERS}
        self._seen: dict[str, int] = {}
        self._last: dict[str, object] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            self.sample()

    def _note(self, into: list[str], key: str, value: object, text: str) -> None:
        if self._last.get(key) != value:
            self._last[key] = value
            into.append(f"{time.monotonic() - self.started:6.1f}s {text}")

    def sample(self) -> None:
        for member in MEMBERS:
            p = self.stack.platform(member)
            with contextlib.suppress(Exception):
                paths = p.state.list_paths("chain/")
                for path in paths[self._seen.get(member, 0) :]:
                    doc = p.state.read(path)
                    if doc is None:
                        break
                    version = int(doc.body.get("version", -1))
                    digest = chain.document_hash(doc.body)
                    self.documents.setdefault(version, {}).setdefault(digest, set()).add(member)
                    self._seen[member] = self._seen.get(member, 0) + 1
                    change = doc.body.get("change") or {}
                    self._note(self.chain_versions[member], f"chain {member}", version,
                               f"v{version} {digest[:12]} {change.get('kind')} {change.get('member_id')}")  # fmt: skip
            with contextlib.suppress(Exception):
                body = own_record(p, member)
                self._note(self.record_versions[member], f"record {member}", json.dumps(body, sort_keys=True),
                           describe_record(body))  # fmt: skip
            with contextlib.suppress(Exception):
                lease = p.leases.read(COORDINATOR)
                held = (lease.holder, lease.fencing_token) if lease.leased else None
                text = f"held by {lease.holder} (token {lease.fencing_token})" if held else "free"
                self._note(self.lease_holders[member], f"lease {member}", held, text)
            with contextlib.suppress(Exception):
                own = p.state.read(SELF)
                if own is not None and own.body.get("fork"):
                    self.forks.setdefault(member, json.dumps(
                        {k: v for k, v in own.body["fork"].items() if k != "documents"})[:300])  # fmt: skip

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
        self.sample()

    def violations(self) -> list[str]:
        found = []
        for version, documents in sorted(self.documents.items()):
            if len(documents) > 1:
                held = "; ".join(f"{d[:12]} at {', '.join(sorted(ms))}" for d, ms in documents.items())
                found.append(f"fork: version {version} exists as {len(documents)} different documents ({held})")
        found += [f"fork: {member}'s deployment reports a fork: {fork}" for member, fork in self.forks.items()]
        return found


# --------------------------------------------------------------------------------------- chaos


class Monkey(threading.Thread):
    """Random faults while a trial runs: kill -9 of deployments, storms from the emulator, one Azurite restart."""

    def __init__(self, stack: MemberStack, rng: random.Random, started: float, *, azurite_restart_after: float | None):
        super().__init__(daemon=True, name="monkey")
        self.stack, self.rng, self.started = stack, rng, started
        self.azurite_restart_after = azurite_restart_after
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
            if len(alive) > len(self.stack.instances) - 2:  # at most two deployments down at once
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
    member: str  # whose queue it went to
    queue: str
    body: str
    key: str  # request id, or proposal id for a decision

    @property
    def document(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class TrialResult:
    number: int
    seed: int
    violations: list[str]
    harness_errors: list[str]
    actions: Counter[str]
    log: list[str]
    posted: int
    steps: list[str]
    seconds: float
    chain_version: int
    coordinator_tokens: dict[str, int]
    #: Seconds after the faults stopped until every message was accounted for, and until the work queues were empty.
    settled: tuple[float, float]
    #: For each violation, what it needs to name its cause (``violation_history``).
    histories: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        acts = ", ".join(f"{n} {a}" for a, n in sorted(self.actions.items()))
        tokens = ", ".join(f"{m} {t}" for m, t in self.coordinator_tokens.items())
        return (
            f"trial {self.number} (seed {self.seed}): {len(self.violations)} violation(s) in {self.seconds:.0f} s; "
            f"{self.posted} messages posted; steps {', '.join(self.steps)}; {acts}; chain at v{self.chain_version}; "
            f"coordinator tokens {tokens}; accounted for {self.settled[0]:.0f} s and drained {self.settled[1]:.0f} s "
            "after the faults stopped"
        )


#: Seconds of faults a trial goes on with after the story's last step was posted.
FAULTS_AFTER_LAST_STEP = 10.0
#: The story's steps, in the order their preconditions come true.
STEPS = ("vote-c", "load-a", "rotate-a", "vote-d", "leave-c", "remove-d", "approve-remove")


class Trial:
    def __init__(self, stack: MemberStack, number: int, rng: random.Random):
        self.stack, self.number, self.rng = stack, number, rng
        self.posted: list[Posted] = []
        self.done: list[str] = []
        self.last_step = 0.0  # when the latest step was posted (monotonic)
        self.swings = 0
        self.next_swing = time.monotonic() + 6

    def post(self, member: str, queue: str, body: Mapping[str, Any] | str, key: str | None = None) -> None:
        raw = body if isinstance(body, str) else json.dumps(body)
        retrying(lambda: self.stack.platform(member).queues.send(queue, raw))
        self.posted.append(Posted(member, queue, raw, key or str(json.loads(raw)["request_id"])))

    def decide(self, member: str, proposal_id: str, decision: str) -> None:
        body = {"proposal_id": proposal_id, "decision": decision}
        self.post(member, ob.APPROVALS, body, key=proposal_id)

    def status(self, member: str) -> str:
        record = own_record(self.stack.platform(member), member)
        return str(record.get("status")) if record else "outside"

    def proposal(self, voter: str, kind: str, member: str) -> str | None:
        """The open ``kind`` proposal about ``member`` as ``voter``'s own deployment lists it."""
        for p in self.stack.status(voter)["proposals"]:
            if p["status"] == "open" and p["change"] == {"kind": kind, "member_id": member}:
                return str(p["proposal_id"])
        return None

    def seen_by(self, voters: Iterable[str], kind: str, member: str) -> str | None:
        ids = {self.proposal(v, kind, member) for v in voters}
        return ids.pop() if len(ids) == 1 and None not in ids else None

    def start(self) -> None:
        for n, member in enumerate(MEMBERS):
            self.post(member, ob.REQUESTS, request_body(member, f"req-{member}-{self.number}", node_count=1 + n % 2,
                                                        max_nodes=3 + n % 2))  # fmt: skip

    def drive_once(self, *, keep_busy: bool) -> None:
        """Post each step of the story whose precondition holds (once), and with ``keep_busy`` swing the load."""
        with contextlib.suppress(Exception):  # a deployment or storage may be down: look again next time
            self._drive(keep_busy)

    def _drive(self, keep_busy: bool) -> None:
        s = {m: self.status(m) for m in MEMBERS}
        n = self.number
        ready: dict[str, Callable[[], Any]] = {
            "vote-c": lambda: (
                s["bank-a"] == s["bank-b"] == "active" and self.seen_by(("bank-a", "bank-b"), "admit", "bank-c")
            ),
            "load-a": lambda: s["bank-a"] == "active",
            "rotate-a": lambda: s["bank-a"] == "active",
            "vote-d": lambda: (
                s["bank-c"] == "active" and self.seen_by(("bank-a", "bank-b", "bank-c"), "admit", "bank-d")
            ),
            "leave-c": lambda: s["bank-c"] == "active" and s["bank-d"] in FINAL,
            "remove-d": lambda: s["bank-c"] == "left" and s["bank-d"] == "active",
            "approve-remove": lambda: "remove-d" in self.done and self.seen_by(("bank-b",), "remove", "bank-d"),
        }
        for step in STEPS:
            if step in self.done:
                continue
            found = ready[step]()
            if not found:
                continue
            self.done.append(step)
            self.last_step = time.monotonic()
            if step == "vote-c":
                for voter in ("bank-a", "bank-b"):
                    self.decide(voter, found, "approve")
            elif step == "load-a":
                retrying(lambda: self.stack.admin("PUT", f"/_admin/load/{scale_set_name('bank-a')}", {"tpm": 6000}))
            elif step == "rotate-a":
                self.post("bank-a", rotation.REQUESTS, {"request_id": f"rot-a-{n}", "force": True})
            elif step == "vote-d":  # a split decision: two of the three approve, one refuses
                self.decide("bank-b", found, "approve")
                self.decide("bank-c", found, "approve")
                self.decide("bank-a", found, "reject")
            elif step == "leave-c":
                self.post("bank-c", ob.OFFBOARDING, {"request_id": f"off-c-{n}", "reason": "chaos: bank-c leaves"})
            elif step == "remove-d":
                body = {"request_id": f"rm-d-{n}", "reason": "chaos: bank-d removed", "member_id": "bank-d"}
                self.post("bank-a", ob.OFFBOARDING, body)
            elif step == "approve-remove":
                self.decide("bank-b", found, "approve")
        if keep_busy and s["bank-a"] == "active" and time.monotonic() >= self.next_swing:
            self.swings += 1
            self.next_swing = time.monotonic() + self.rng.uniform(4, 8)
            load = {"tpm": 6000 if self.swings % 2 == 0 else 300}
            retrying(lambda: self.stack.admin("PUT", f"/_admin/load/{scale_set_name('bank-a')}", load))
            if self.swings in (2, 5) and s["bank-b"] == "active":
                self.post("bank-b", rotation.REQUESTS, {"request_id": f"rot-b-{n}-{self.swings}", "force": True})

    # -- accounting: what became of every message posted (read from the member's own storage)
    def poison_seen(self, member: str) -> set[str]:
        """Bodies (first 512 characters) visible as poison in the member's own storage and -poison queues."""
        p = self.stack.platform(member)
        bodies: set[str] = set()
        for doc in p.state.read_all("poison/"):
            bodies.add(str(doc.body.get("excerpt")))
        for queue in QUEUE_MODELS:
            with contextlib.suppress(Exception):  # a poison queue that does not exist holds nothing
                for message in p.queues.service.get_queue_client(f"{queue}-poison").peek_messages(max_messages=32):
                    bodies.add(str(message.content)[:512])
        return bodies

    def ended(self, posted: Posted, poisoned: set[str]) -> bool:
        p = self.stack.platform(posted.member)
        if posted.body[:512] in poisoned or p.state.read(rejection_path(posted.queue, posted.body)) is not None:
            return True
        document = posted.document
        if posted.queue == ob.REQUESTS:
            record = own_record(p, posted.member) or {}
            return record.get("request_id") == posted.key and record.get("status") in FINAL
        own = (p.state.read(SELF) or _EMPTY).body
        if posted.queue == ob.APPROVALS:
            return bool((own.get("approvals") or {}).get(posted.key) == document["decision"])
        if posted.queue == ob.OFFBOARDING:
            target = document.get("member_id") or posted.member
            kind = "leave" if target == posted.member else "remove"
            proposed = any(x.get("proposal_id") == f"prop-{kind}-{target}-{posted.key}"[:100]
                           for x in own.get("proposals") or [])  # fmt: skip
            gone = (own_record(self.stack.platform(target), target) or {}).get("status") in ("left", "removed")
            return proposed and gone
        report = p.state.read(request_report_path(posted.key))
        return report is not None and int(report.body.get("runs", 0)) >= 1

    def unaccounted(self) -> list[Posted]:
        """Messages posted in this trial that ended nowhere visible: no final status, rejection or poison record."""
        poisoned = {m: self.poison_seen(m) for m in MEMBERS}
        return [x for x in self.posted if not self.ended(x, poisoned[x.member])]


@dataclass
class _Empty:
    body: dict[str, Any] = field(default_factory=dict)


_EMPTY = _Empty()


def unaccounted_violation(p: Posted) -> str:
    return f"{p.member} {p.queue} {p.key}: no final status, rejection or poison record"


def verified_chains(stack: MemberStack) -> tuple[dict[str, list[str]], list[str]]:
    """Each member's chain as hashes, verified from the genesis hash it was given; and what did not verify."""
    chains: dict[str, list[str]] = {}
    found = []
    for member in MEMBERS:
        genesis = stack.values(member)[ceremony.GENESIS_SETTING]
        documents = retrying(functools.partial(own_chain, stack.platform(member)))
        hashes: list[str] = []
        trusted: chain.Trusted | None = None
        for n, document in enumerate(documents):
            try:
                if int(document.get("version", -1)) != n:
                    raise chain.ChainError(f"stored as the {n}th document but says version {document.get('version')}")
                trusted = chain.verify_genesis(genesis, document) if trusted is None else chain.verify_next(
                    trusted, document)  # fmt: skip
            except (chain.ChainError, ValueError) as e:
                found.append(f"{member}'s stored chain does not verify at version {n}: {e}")
                break
            hashes.append(trusted.hash)
        chains[member] = hashes
    return chains, found


def behind(stack: MemberStack) -> list[str]:
    """The members the longest stored chain's head lists that have not stored that head yet (the wait
    after the faults includes their catching up: a deployment killed while it held its coordinator
    lease follows again once the lease expired)."""
    lengths = {m: len(stack.platform(m).state.list_paths("chain/")) for m in MEMBERS}
    longest = max(lengths, key=lambda m: lengths[m])
    head = own_chain(stack.platform(longest))[-1]
    listed = {x["member_id"] for x in head.get("members", [])}
    return [f"({m} at v{lengths[m] - 1} of v{lengths[longest] - 1})" for m in MEMBERS
            if m in listed and lengths[m] < lengths[longest]]  # fmt: skip


def invariants(stack: MemberStack) -> list[str]:
    """What each member's own storage, vault and subscription must show once the trial settled."""
    chains, found = verified_chains(stack)
    longest = max(chains.values(), key=len)
    for member, hashes in chains.items():
        if hashes != longest[: len(hashes)]:
            at = next(i for i, (a, b) in enumerate(zip(hashes, longest, strict=False)) if a != b)
            found.append(f"fork: {member}'s chain differs from the longest at version {at}")
    head_doc = retrying(lambda: own_chain(stack.platform(max(chains, key=lambda m: len(chains[m])))))[-1]
    in_head = {m["member_id"] for m in head_doc.get("members", [])}
    for member in MEMBERS:
        p = stack.platform(member)
        record = retrying(functools.partial(own_record, p, member)) or {}
        status = record.get("status", "outside")
        if member in in_head and len(chains[member]) < len(longest):
            found.append(f"{member} is in version {len(longest) - 1} but its deployment stopped at "
                         f"v{len(chains[member]) - 1}")  # fmt: skip
        if (status == "active") != (member in in_head):
            found.append(f"{member} is {status} in its own record but {'' if member in in_head else 'not '}"
                         f"in the chain's head v{len(longest) - 1}")  # fmt: skip
        scale_sets = retrying(p.scalesets.list_all)
        strangers = [s.name for s in scale_sets if s.name != scale_set_name(member)
                     or s.tags.get("member_id", member) != member]  # fmt: skip
        if strangers:
            found.append(f"{member}'s subscription holds scale sets not its own: {strangers}")
        if len(scale_sets) > 1:
            found.append(f"{member}'s subscription holds {len(scale_sets)} scale sets")
        for other in MEMBERS:
            for kind in KEY_KINDS if other != member else ():
                if retrying(functools.partial(p.keys.list_versions, key_name(other, kind))):
                    found.append(f"{member}'s vault holds a key named {key_name(other, kind)}")
        own_set = next((s for s in scale_sets if s.name == scale_set_name(member)), None)
        scale = record.get("scale") or {}
        if status == "active" and own_set is not None:
            low, high = int(scale.get("min_nodes", 1)), int(scale.get("max_nodes", 1))
            if not low <= own_set.capacity <= high:
                found.append(f"{own_set.name} has {own_set.capacity} node(s), outside {low}..{high}")
        if status in ("left", "removed"):
            if own_set is not None and own_set.capacity != 0:
                found.append(f"{member} is {status} but its scale set has {own_set.capacity} node(s)")
            for kind in KEY_KINDS:
                enabled = [v.version for v in retrying(functools.partial(p.keys.list_versions, key_name(member, kind)))
                           if v.enabled]  # fmt: skip
                if enabled:
                    found.append(f"{member} is {status} but {key_name(member, kind)} has enabled versions {enabled}")
        for kind in KEY_KINDS:
            versions = retrying(functools.partial(p.keys.list_versions, key_name(member, kind)))
            per_rotation = Counter(v.tags.get("rotation_id") for v in versions if v.tags.get("rotation_id"))
            found += [f"{key_name(member, kind)}: rotation {r} made {n} versions" for r, n in per_rotation.items()
                      if n > 1]  # fmt: skip
    found += [  # Azure's 403: another member's vault or subscription, or a key this member disabled
        f"a host was refused by Azure (403): {line}"
        for line in stack.log_lines(r"AuthorizationFailed|ForbiddenByRbac|ForbiddenError")
    ][:5]
    return found


def host_log_lines(stack: MemberStack, member: str) -> list[tuple[str, dict[str, Any]]]:
    """(instance, entry) of every JSON line the member's host instances logged, in file order."""
    lines = []
    for n, inst in enumerate(stack.instances):
        path = stack.log_path(n)
        if inst.member != member or not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    lines.append((inst.name, json.loads(line)))
    return lines


def deliveries(stack: MemberStack, member: str, key: str | None, started: float) -> list[str]:
    """Each delivery, as the member's hosts logged it, of the messages about ``key`` (a request or proposal
    id; None: every message of the onboarding queues): its start, its end with the dequeue count and
    outcome, and its failures. Times are seconds since ``started`` (epoch seconds)."""
    lines = []
    for instance, entry in host_log_lines(stack, member):
        with contextlib.suppress(KeyError, ValueError, TypeError):
            lines.append((datetime.fromisoformat(entry["at"]).timestamp(), instance, entry))
    ids = {str(e.get("message_id")) for _, _, e in lines if key and e.get("message_id") and key in json.dumps(e)}
    if not ids:  # no line names it: every delivery on the onboarding queues (the member's own, so few)
        ids = {str(e.get("message_id")) for _, _, e in lines if e.get("queue") in ob.QUEUES and e.get("message_id")}
    found = []
    for at, instance, entry in sorted(lines, key=lambda x: x[0]):
        if str(entry.get("message_id")) not in ids or at < started - 5:
            continue
        detail = [f"{k} {entry[k]}" for k in ("dequeue_count", "action", "error") if entry.get(k) is not None]
        where = entry.get("queue") or entry.get("function")
        note = f" ({'; '.join(str(d)[:160] for d in detail)})" if detail else ""
        found.append(f"{at - started:6.1f}s {instance} {where} message {str(entry.get('message_id'))[:8]}: "
                     f"{entry.get('message', '')}{note}")  # fmt: skip
    return found[-60:]


def queued(p: Platform) -> list[str]:
    """What the member's work queues and their poison twins hold now."""
    found = []
    for queue in QUEUE_MODELS:
        for name in (queue, f"{queue}-poison"):
            with contextlib.suppress(Exception):
                count = p.queues.count(name)
                if count:
                    found.append(f"{name}: {count} message(s)")
    return found


def violation_history(
    stack: MemberStack, observer: Observer, monkey: Monkey, member: str, key: str | None, started: float
) -> list[str]:
    """What a violation about ``member`` needs to name its cause: deliveries, records, leases, chain, kills."""
    return [
        f"deliveries at {member}'s deployments (host logs):",
        *(f"  {line}" for line in deliveries(stack, member, key, started)),
        f"versions of {member}'s own record (sampled every {observer.every} s):",
        *(f"  {line}" for line in observer.record_versions.get(member, [])),
        f"holders of {member}'s coordinator lease (sampled):",
        *(f"  {line}" for line in observer.lease_holders.get(member, [])),
        f"versions {member} stored (sampled):", *(f"  {line}" for line in observer.chain_versions.get(member, [])),
        "kills, restarts and storms:", *(f"  {line}" for line in monkey.log),
        f"{member}'s queues after the wait:", *(f"  {line}" for line in queued(stack.platform(member))),
    ]  # fmt: skip


def proposals_seen(stack: MemberStack, member: str) -> str:
    """The proposals ``member``'s deployment lists, with their status, for a history."""
    listed = retrying(lambda: stack.status(member))["proposals"]
    return ", ".join(f"{p['proposal_id']} ({p['status']})" for p in listed) or "none"


def run_trial(
    stack: MemberStack,
    number: int,
    *,
    seed: int,
    chaos_seconds: float,
    story_seconds: float = 150,
    settle_seconds: float = 150,
) -> TrialResult:
    """One trial on a fresh ``stack``: the story under chaos, then the faults stop and the invariants are checked."""
    started, started_wall = time.monotonic(), time.time()
    rng = rng_for(seed)
    trial = Trial(stack, number, rng)
    observer = Observer(stack, started)
    monkey = Monkey(stack, rng, started, azurite_restart_after=rng.uniform(0.3, 0.8) * chaos_seconds)
    observer.sample()
    observer.start()
    trial.start()
    monkey.start()
    # The faults last ``chaos_seconds`` and, beyond, until the story's last step was posted and had
    # ``FAULTS_AFTER_LAST_STEP`` seconds of faults to go through (``story_seconds`` at most).
    while (now := time.monotonic()) < started + chaos_seconds + story_seconds and (
        now < started + chaos_seconds or len(trial.done) < len(STEPS) or now < trial.last_step + FAULTS_AFTER_LAST_STEP
    ):
        trial.drive_once(keep_busy=True)
        time.sleep(0.5)
    monkey.stop()
    calm = time.monotonic()
    retrying(lambda: stack.admin("PUT", f"/_admin/load/{scale_set_name('bank-a')}", {"tpm": 300}))
    waiting: list[str] = []
    last: list[list[str]] = [[]]

    def settled() -> bool:
        trial.drive_once(keep_busy=False)  # what could not be posted under chaos
        try:
            missing = [unaccounted_violation(x) for x in trial.unaccounted()] + behind(stack)
            if len(trial.done) < len(STEPS):
                missing.append(f"(story at {', '.join(trial.done) or 'its start'})")
        except Exception as e:
            missing = [f"(could not tell: {type(e).__name__}: {e})"]
        if missing != last[0]:
            last[0] = missing
            waiting.append(f"{time.monotonic() - calm:6.1f}s after the faults: waiting for {missing}")
        return not missing

    violations: list[str] = []
    histories: dict[str, list[str]] = {}
    with contextlib.suppress(TimeoutError):
        wait_until(
            "every message accounted for and the story told", settled, settle_seconds, every=1.0, ignoring=UNDER_CHAOS
        )
    for lost in retrying(trial.unaccounted):
        violation = unaccounted_violation(lost)
        violations.append(violation)
        histories[violation] = [
            f"posted to {lost.member}'s {lost.queue}: {lost.body[:200]}",
            *waiting,
            *violation_history(stack, observer, monkey, lost.member, lost.key, started_wall),
        ]
    accounted = time.monotonic() - calm

    def drained() -> bool:
        return not any(stack.platform(m).queues.count(q) for m in MEMBERS for q in QUEUE_MODELS)

    with contextlib.suppress(TimeoutError):  # late redeliveries land before the checks, not after them
        wait_until("work queues drained", drained, 60, ignoring=UNDER_CHAOS)
    drained_after = time.monotonic() - calm
    observer.stop()
    if len(trial.done) < len(STEPS):  # a story that stalls after the faults stopped is a liveness failure
        stalled = next(step for step in STEPS if step not in trial.done)
        violation = f"the story stalled: {stalled} never became possible ({settle_seconds:.0f} s after the faults)"
        violations.append(violation)
        histories[violation] = [*waiting, *(line for m in MEMBERS for line in [
            f"member {m}: status {trial.status(m)}; proposals it lists: {proposals_seen(stack, m)}",
            *violation_history(stack, observer, monkey, m, None, started_wall),
        ])]  # fmt: skip
    violations += observer.violations()
    violations += retrying(lambda: invariants(stack), timeout=60)
    for violation in violations:
        if violation not in histories:  # an invariant: the history of each member it names (of all, if none)
            named = [m for m in MEMBERS if m in violation] or list(MEMBERS)
            histories[violation] = [*waiting, *(line for m in named for line in [f"member {m}:", *violation_history(
                stack, observer, monkey, m, None, started_wall)])]  # fmt: skip
    tokens = {}
    for member in MEMBERS:
        with contextlib.suppress(Exception):
            tokens[member] = stack.platform(member).leases.read(COORDINATOR).fencing_token
    return TrialResult(
        number, seed, violations, monkey.errors, monkey.actions, monkey.log + waiting, len(trial.posted), trial.done,
        time.monotonic() - started, max(observer.documents, default=-1), tokens,
        (accounted, drained_after), histories,
    )  # fmt: skip


# ------------------------------------------------------------------------------------ bad input

QUEUE_MODELS: dict[str, type[Any]] = {
    ob.REQUESTS: OnboardingRequest,
    ob.APPROVALS: Decision,
    ob.OFFBOARDING: OffboardingRequest,
    rotation.REQUESTS: KeyRotationRequest,
    **dict.fromkeys(ob.STEP_QUEUES.values(), StepMessage),
}
NOBODY = "nobody-here"


def good_message(queue: str) -> dict[str, Any]:
    """A well-formed message for ``queue`` that every member's deployment refuses for what it says (the
    base of the mutations): about a member that is not this one and not in the chain, or a proposal
    nobody made."""
    rid = f"req-{NOBODY}"
    if queue == ob.REQUESTS:
        return {"request_id": rid, "member_id": NOBODY, "legal_name": "O=Nobody, L=Paris, C=FR",
                "region": "westeurope", "node_count": 2, "contact_email": "ops@nobody.example",
                "scale": {"min_nodes": 1, "max_nodes": 4}}  # fmt: skip
    if queue == ob.APPROVALS:
        return {"proposal_id": f"prop-admit-{NOBODY}", "decision": "approve"}
    if queue == ob.OFFBOARDING:
        return {"request_id": rid, "member_id": NOBODY, "reason": "leaving"}
    if queue == rotation.REQUESTS:
        return {"request_id": rid, "member_id": NOBODY, "force": True}
    step = next(s for s, q in ob.STEP_QUEUES.items() if q == queue)
    return {"request_id": rid, "member_id": NOBODY, "step": step}


def _handwritten() -> list[tuple[str, str]]:
    cases: list[tuple[str, str]] = []
    for queue in QUEUE_MODELS:
        good = good_message(queue)
        cases += [
            (queue, ""), (queue, "not json"), (queue, "{"), (queue, "[]"), (queue, "null"), (queue, "42"),
            (queue, json.dumps(good)),
            (queue, json.dumps({**good, "member_id": "../../etc/passwd"})),
            (queue, json.dumps({**good, "request_id": "a b"})),
            (queue, json.dumps({**good, "admin": True})),
            (queue, json.dumps({k: v for k, v in good.items() if k != sorted(good)[0]})),
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
        (ob.REQUESTS, json.dumps({**good, "member_id": "bank-a"})),  # another member's id: not this member
        (ob.REQUESTS, json.dumps({**good, "member_id": "bank-d"})),
        (ob.APPROVALS, json.dumps({**good_message(ob.APPROVALS), "decision": "maybe"})),
        (ob.APPROVALS, json.dumps({**good_message(ob.APPROVALS), "proposal_id": "../x"})),
        (ob.APPROVALS, json.dumps({**good_message(ob.APPROVALS), "signature": "A" * 10})),  # version 1's vote
        (
            ob.APPROVALS,
            json.dumps(
                {
                    "request_id": "req-1",
                    "member_id": "bank-c",
                    "approver_id": "bank-a",
                    "decision": "approve",
                    "signature": "A" * 86,
                }
            ),
        ),
        (ob.OFFBOARDING, json.dumps({**good_message(ob.OFFBOARDING), "reason": ""})),
        (ob.OFFBOARDING, json.dumps({**good_message(ob.OFFBOARDING), "reason": "r" * 501})),
        (rotation.REQUESTS, json.dumps({**good_message(rotation.REQUESTS), "force": "yes"})),
        (rotation.REQUESTS, json.dumps({"request_id": "rot-x", "force": True})),  # a member not active: not_active
        (rotation.REQUESTS, json.dumps({**good_message(rotation.REQUESTS), "member_id": "bank-b"})),
        (ob.STEP_QUEUES["provision"], json.dumps({**good_message(ob.STEP_QUEUES["provision"]), "step": "keys"})),
        (ob.STEP_QUEUES["keys"], json.dumps({**good_message(ob.STEP_QUEUES["keys"]), "polls": -1})),
        (ob.STEP_QUEUES["propose"], json.dumps({**good_message(ob.STEP_QUEUES["propose"]), "step": "publish"})),
        (ob.STEP_QUEUES["activate"], json.dumps({**good_message(ob.STEP_QUEUES["activate"]), "member_id": "bank-a"})),
    ]
    return cases


def expected_reason(queue: str, raw: str, member: str) -> str | None:
    """The reason ``member``'s deployment must record for ``raw`` on its ``queue`` while only the founders
    are in the chain and no member has asked to join; None when the message is acceptable there."""
    parsed = parse(QUEUE_MODELS[queue], raw)
    if isinstance(parsed, Rejection):
        return parsed.reason
    founder = member in FOUNDERS
    if isinstance(parsed, StepMessage):
        wrong = ob.STEP_QUEUES[parsed.step] != queue or parsed.member_id != member
        return "wrong_queue" if wrong else None
    if isinstance(parsed, OnboardingRequest):
        return "not_this_member" if parsed.member_id != member else None
    if isinstance(parsed, Decision):
        return "unknown_proposal"
    if isinstance(parsed, OffboardingRequest):
        target = parsed.member_id or member
        return None if target in FOUNDERS else "not_a_member"
    if isinstance(parsed, KeyRotationRequest):
        if parsed.member_id not in (None, member):
            return "not_this_member"
        return None if founder else "not_active"
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
        if (queue, raw) in seen or not queue_can_carry(raw) or not any(expected_reason(queue, raw, m) for m in MEMBERS):
            continue
        seen.add((queue, raw))
        cases.append((queue, raw))
    return cases[:count]


def queue_corpus(generated: int = 160, seed: int = 20240) -> list[tuple[str, str, str, str]]:
    """(member, queue, message, expected reason): the hand-written cases and ``generated`` drawn by
    hypothesis, each sent to one member's own queue (in turn, so every member gets its share)."""
    cases = []
    for n, (queue, raw) in enumerate([*_handwritten(), *generated_cases(generated, seed)]):
        for shift in range(len(MEMBERS)):  # the first member in turn for which the message is bad
            member = MEMBERS[(n + shift) % len(MEMBERS)]
            reason = expected_reason(queue, raw, member)
            if reason is not None and queue_can_carry(raw):
                cases.append((member, queue, raw, reason))
                break
    unique = {(m, q, r): reason for m, q, r, reason in cases}
    return [(m, q, r, reason) for (m, q, r), reason in unique.items()]


@dataclass
class BadInputResult:
    tried: int = 0
    lost: list[str] = field(default_factory=list)
    wrong_reason: list[str] = field(default_factory=list)
    poisoned: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def poison_counts(stack: MemberStack) -> dict[tuple[str, str], int]:
    return {(m, q): stack.platform(m).queues.count(f"{q}-poison") for m in MEMBERS for q in QUEUE_MODELS}


def snapshot(stack: MemberStack) -> dict[str, Any]:
    """What bad input must not change: each member's chain, proposals and approvals, its record's
    request, the key versions in its vault and its scale set's capacity."""
    found: dict[str, Any] = {}
    for member in MEMBERS:
        p = stack.platform(member)
        own = (p.state.read(SELF) or _EMPTY).body
        record = own_record(p, member) or {}
        scale_set = p.scalesets.get(scale_set_name(member))
        found[member] = {
            "chain": [chain.document_hash(d) for d in own_chain(p)],
            "proposals": sorted(x.get("proposal_id") for x in own.get("proposals") or []),
            "approvals": own.get("approvals") or {},
            "request": record.get("request_id"),
            "keys": {k: [v.version for v in p.keys.list_versions(key_name(member, k))] for k in KEY_KINDS},
            "capacity": scale_set.capacity if scale_set else None,
        }
    return found


def changed_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return [f"{member}: {what} changed from {before[member][what]!r} to {after[member][what]!r}"
            for member in before for what in before[member] if before[member][what] != after[member][what]]  # fmt: skip


def _is_active(stack: MemberStack, member: str) -> bool:
    return (own_record(stack.platform(member), member) or {}).get("status") == "active"


def start_founders(stack: MemberStack, tag: str = "good") -> None:
    """The founders' own join requests (good input), and wait until both are active. Each founder's scale set
    is offered the load of its two nodes, so its autoscale keeps it where it is while bad input flows."""
    for founder in FOUNDERS:
        stack.admin("PUT", f"/_admin/load/{scale_set_name(founder)}", {"tpm": STEADY_TPM})
        stack.platform(founder).queues.send(ob.REQUESTS, request_body(founder, f"req-{founder}-{tag}"))
    for founder in FOUNDERS:
        wait_until(f"{founder} active", functools.partial(_is_active, stack, founder), 120, ignoring=UNDER_CHAOS)


def run_queue_corpus(stack: MemberStack, cases: list[tuple[str, str, str, str]]) -> BadInputResult:
    """Post every case to its member's own queue on a stack whose founders are active; each must end as
    one recorded rejection with its reason in that member's storage, and nothing may change."""
    before_poison, before = poison_counts(stack), snapshot(stack)
    result = BadInputResult(tried=len(cases))
    for member, queue, raw, _ in cases:
        stack.platform(member).queues.send(queue, raw)
    paths = {(m, rejection_path(q, r)): (m, q, r, reason) for m, q, r, reason in cases}

    def recorded() -> set[tuple[str, str]]:
        found = set()
        for member in MEMBERS:
            found |= {(member, path) for path in stack.platform(member).state.list_paths("rejections/")}
        return found & set(paths)

    with contextlib.suppress(TimeoutError):
        wait_until(
            "every bad message recorded", lambda: len(recorded()) == len(paths), 180, every=1.0, ignoring=UNDER_CHAOS
        )
    done = recorded()
    for (member, path), (_, queue, raw, reason) in paths.items():
        if (member, path) not in done:
            result.lost.append(f"{member} {queue}: {raw[:80]!r} left no rejection")
            continue
        doc = stack.platform(member).state.read(path)
        body = doc.body if doc else {}
        if body.get("reason") != reason or not body.get("message") or body.get("queue") != queue:
            result.wrong_reason.append(f"{member} {queue}: {raw[:60]!r} recorded as {body.get('reason')!r}, "
                                       f"expected {reason!r}")  # fmt: skip
    with contextlib.suppress(TimeoutError):  # the second deliveries land before the checks, not after them
        wait_until("queues drained", lambda: not any(stack.platform(m).queues.count(q) for m in MEMBERS
                                                     for q in QUEUE_MODELS), 60, ignoring=UNDER_CHAOS)  # fmt: skip
    after_poison = poison_counts(stack)
    result.poisoned = [f"{m} {q}-poison grew by {after_poison[(m, q)] - n}" for (m, q), n in before_poison.items()
                       if after_poison[(m, q)] > n]  # fmt: skip
    result.changed = changed_between(before, snapshot(stack))
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


def run_http_cases(stack: MemberStack, *, every_deployment: bool = True) -> BadInputResult:
    """Every case against every deployment's HTTP port (or one deployment of each member); each must be
    answered as listed, the host must keep serving."""
    result = BadInputResult()
    firsts = {inst.member: n for n, inst in reversed(list(enumerate(stack.instances)))}
    for n, inst in enumerate(stack.instances):
        if not every_deployment and firsts[inst.member] != n:
            continue
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


#: (argv after ``--member bank-c``, or a whole argv when it starts with ``--member``; words the one-line
#: reason must contain): each must exit 2.
CLI_CASES: list[tuple[list[str], list[str]]] = [
    (["--member", "Bank_C", "status"], ["--member", "must match"]),
    (["--member", "bank-z", "status"], ["bank-z"]),
    (["join", "--legal-name", "Bank C"], ["legal_name"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=XX"], ["legal_name"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--node-count", "0"], ["node_count"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--node-count", "two"], ["--node-count", "int"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--contact-email", "nobody"], ["contact_email"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--region", "West Europe"], ["region"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--min-nodes", "4", "--max-nodes", "2"],
     ["min_nodes"]),
    (["join", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--request-id", "../x"], ["request_id"]),
    (["join"], ["--legal-name"]),
    (["approve", "../x"], ["proposal_id"]),
    (["approve", "prop-never-made"], ["prop-never-made"]),
    (["reject"], ["PROPOSAL_ID"]),
    (["leave", "--reason", ""], ["reason"]),
    (["leave", "--request-id", "bad id!"], ["request_id"]),
    (["remove"], ["MEMBER"]),
    (["remove", "../etc"], ["member"]),
    (["rotate-keys", "--wait", "-1"], ["--wait"]),
    (["rotate-keys", "--request-id", "bad id!", "--wait", "0"], ["request_id"]),
    (["load", "--tpm", "-5"], ["--tpm"]),
    (["load"], ["--tpm"]),
    (["fault", "service", "compute", "--status", "404"], ["--status"]),
    (["fault", "service", "storage"], ["invalid choice"]),
    (["fault", "node", "0", "--kind", "melted"], ["--kind"]),
    (["rejections", "--limit", "0"], ["--limit"]),
    (["replay-poison", "--queue", "nope"], ["--queue"]),
    (["frobnicate"], ["invalid choice"]),
    (["status", "--jsn"], ["unrecognized arguments"]),
    (["status", "--json", "--watch", "1"], ["--watch"]),
]  # fmt: skip


def run_cli_cases(
    stack: MemberStack, cases: list[tuple[list[str], list[str]]], member: str = "bank-c"
) -> BadInputResult:
    """Each command, as ``member``'s operator in the stack's folder, must exit 2 with its reason on the last
    line of stderr, naming the field or the rule; none may change anything."""
    consortium = Path(sys.executable).parent / "consortium"
    env = {k: v for k, v in os.environ.items() if k not in ("CONSORTIUM_MEMBER", "CONSORTIUM_MEMBER_ID")}

    def one(case: tuple[list[str], list[str]]) -> str | None:
        argv, words = case
        full = argv if argv[0] == "--member" else ["--member", member, *argv]
        done = subprocess.run(  # our own entry point with fixed arguments  # nosec B603
            [str(consortium), *full], cwd=stack.work, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        if done.returncode != 2:
            return f"consortium {' '.join(full)}: exit {done.returncode}, expected 2 ({last!r})"
        missing = [w for w in words if w.lower() not in last.lower()]
        if missing or "Traceback" in done.stderr:
            return f"consortium {' '.join(full)}: reason {last!r} does not name {missing}"
        return None

    before = snapshot(stack)
    result = BadInputResult(tried=len(cases))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for problem in pool.map(one, cases):
            if problem:
                result.wrong_reason.append(problem)
    with contextlib.suppress(TimeoutError):
        wait_until("queues drained", lambda: not any(stack.platform(m).queues.count(q) for m in MEMBERS
                                                     for q in QUEUE_MODELS), 30, ignoring=UNDER_CHAOS)  # fmt: skip
    result.changed = changed_between(before, snapshot(stack))
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
            "bad_inputs_lost": sum(
                len(r.lost) + len(r.wrong_reason) + len(r.poisoned) + len(r.changed) for r in self.bad.values()
            ),
            "host_crashes": len(self.host_crashes),
        }


def run_bad_input(work: Path, *, generated: int = 160, seed: int = 20240, cli_cases: int | None = None) -> Figures:
    """The bad-input corpus on a fresh stack whose founders joined: queues, HTTP, the command line."""
    figures = Figures()
    bad_stack = MemberStack(work).start()
    try:
        start_founders(bad_stack)
        figures.bad["queues"] = run_queue_corpus(bad_stack, queue_corpus(generated, seed))
        figures.bad["http"] = run_http_cases(bad_stack)
        figures.bad["cli"] = run_cli_cases(bad_stack, CLI_CASES[:cli_cases])
        figures.host_crashes += bad_stack.host_crashes()
    finally:
        bad_stack.stop()
    return figures


def run_trials(
    work: Path, *, seeds: Iterable[int], chaos_seconds: float, say: Callable[[str], None] = print
) -> Figures:
    """One trial per seed, each on a fresh stack under ``work``."""
    figures = Figures()
    for number, seed in enumerate(seeds):
        trial_stack = MemberStack(work / f"trial-{number}").start()
        try:
            result = run_trial(trial_stack, number, seed=seed, chaos_seconds=chaos_seconds)
            figures.host_crashes += trial_stack.host_crashes()
        finally:
            trial_stack.stop()
        figures.trials.append(result)
        say("  " + result.summary())
        for violation in result.violations:
            say(f"    violation: {violation}")
            for line in result.histories.get(violation, []):
                say(f"      {line}")
        for error in result.harness_errors:
            say(f"    harness error (not counted as a violation): {error}")
    return figures


def run_all(work: Path, *, seeds: Iterable[int], chaos_seconds: float, generated: int = 160) -> Figures:
    """Bad input on one fresh stack, then one chaos trial per seed on a fresh stack each: what the bench reports."""
    figures = run_bad_input(work / "bad-input", generated=generated)
    trials = run_trials(work, seeds=seeds, chaos_seconds=chaos_seconds)
    figures.trials = trials.trials
    figures.host_crashes += trials.host_crashes
    return figures


def trial_seeds(first: int, count: int) -> list[int]:
    return [first * 1000 + n for n in range(count)]
