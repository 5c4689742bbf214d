"""The chaos stack: the local stack (``tools.harness.stack``) with every member's deployment, the host
instances this harness runs itself (each with its clock skew, its double delivery and short receive
invisibility) so the monkey can kill and restart them, and reading what a member holds in its OWN
storage (its chain, its record).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.bootstrap import Platform
from shared.messages import (
    Decision,
    KeyRotationRequest,
    OffboardingRequest,
    OnboardingRequest,
    StepMessage,
)
from shared.ports.clock import SKEW_VARIABLE
from shared.services import onboarding as ob
from shared.services import rotation
from shared.services.records import member_path
from tools import azurite, ceremony, member_settings, stack
from tools.emulator import EmulatorHandle
from tools.harness import hosts
from tools.harness import stack as harness_stack
from tools.harness.stack import FAST_EMULATOR, LocalStack

ROOT = Path(__file__).resolve().parents[2]
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
        return hosts.api_status(member, self.ports(member))

    def second_deliveries(self) -> int:
        """Invocations of a message's second delivery (dequeue count 2), as the hosts' invocation logs record them."""
        return len(self.log_lines(r"Executed '.*\"dequeue_count\": 2"))


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


@dataclass
class _Empty:
    body: dict[str, Any] = field(default_factory=dict)


_EMPTY = _Empty()
#: The work queues of a member's deployment, each with the model of its messages.
QUEUE_MODELS: dict[str, type[Any]] = {
    ob.REQUESTS: OnboardingRequest,
    ob.APPROVALS: Decision,
    ob.OFFBOARDING: OffboardingRequest,
    rotation.REQUESTS: KeyRotationRequest,
    **dict.fromkeys(ob.STEP_QUEUES.values(), StepMessage),
}
