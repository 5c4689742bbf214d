"""The health check: every active member's nodes, ARM's verdict and a TCP probe of their Corda ports,
heartbeats kept in storage, and repairs within a budget.

One tick, on the coordinator only:
1. one paged listing of every scale set; the active members' sets whose instances are read this tick
   (at most ``MAX_INSTANCE_READS`` ARM reads, two a member: the instances with their health, then
   their NICs for the addresses; members take turns when there are more);
2. every node's Corda ports (``HEALTH_CORDA_PORTS``) probed over TCP in parallel, each with a short
   timeout, so one hung node costs one timeout, not one per node;
3. the pure policy (``shared.decisions.health``) decides per node from ARM, the probe and the stored
   heartbeats: healthy, suspect, restart, reimage, or held by the budget;
4. repairs go through the ScaleSets port (restart, reimage), each announced as ``node.repair`` and
   recorded with its reason; heartbeats, last decisions and recent repairs are written in one
   document, ``health/state.json``, with the coordinator's fencing token.

A failed repair call (throttled, the instance gone) is not recorded as a repair: the next tick
re-reads and re-decides. The probe is a plain TCP connect, as Azure Load Balancer's TCP probe is: a
node whose Corda process is hung with a full backlog, stopped or firewalled fails it; one that
accepts but cannot serve does not (the health extension's verdict covers that).
"""

from __future__ import annotations

import logging
import socket
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.decisions.health import (
    Action,
    Decision,
    HealthPolicy,
    Heartbeat,
    Observation,
    Reason,
    Repair,
    State,
    decide,
)
from shared.errors import ControlPlaneError, FencedError
from shared.naming import scale_set_name
from shared.ports.clock import Clock
from shared.ports.leases import LeaseStore
from shared.ports.queues import MessageSender
from shared.ports.scalesets import Instance, ScaleSets
from shared.ports.state import StateStore
from shared.services.leadership import COORDINATOR, FencedWriter
from shared.services.records import Events, active_members, iso_time, parse_time

log = logging.getLogger(__name__)

STATE_PATH = "health/state.json"
#: ARM reads a tick may spend on instances (two per member: the VMs, then their NICs). ARM refills
#: 25 reads a second per region; this leaves autoscale and onboarding most of each minute's bucket.
MAX_INSTANCE_READS = 100
RECENT_LIMIT = 100
#: Scale sets in these states have no instances worth judging yet (or any longer).
SKIPPED_STATES = ("Creating", "Deleting")

#: A TCP probe: (address, port, timeout seconds) → None when the port accepted, else what happened.
Probe = Callable[[str, int, float], str | None]


def tcp_probe(address: str, port: int, timeout: float) -> str | None:
    """Connect and close: None when ``address:port`` accepts, else ``refused``, ``timed out``, or why not."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"timed out after {timeout:g}s"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return f"unreachable ({e.strerror or e})"


def parse_ports(text: str) -> tuple[int, ...]:
    """``10002,10003`` as ports; an empty list, a non-number or a port outside 1..65535 is refused by name."""
    ports = []
    for part in (p.strip() for p in text.split(",")):
        if not part.isdigit() or not 1 <= int(part) <= 65535:
            raise ValueError(f"{text!r} must be comma-separated TCP ports (1 to 65535), e.g. 10002,10003")
        ports.append(int(part))
    if len(set(ports)) != len(ports):
        raise ValueError(f"{text!r} names a port twice")
    return tuple(ports)


def heartbeat_to_json(hb: Heartbeat) -> dict[str, Any]:
    repair = None
    if hb.repair is not None:
        r = hb.repair
        repair = {"action": r.action.value, "at": iso_time(r.at), "reason": r.reason.value, "checks": r.checks}
    return {
        "failures": hb.failures,
        "last_checked": iso_time(hb.last_checked) if hb.last_checked else None,
        "last_healthy": iso_time(hb.last_healthy) if hb.last_healthy else None,
        "repair": repair,
        "exhausted": hb.exhausted,
    }


def heartbeat_from_json(body: dict[str, Any] | None) -> Heartbeat:
    if not body:
        return Heartbeat()
    repair = body.get("repair")
    at = parse_time(repair["at"]) if repair else None
    return Heartbeat(
        failures=int(body.get("failures", 0)),
        last_checked=parse_time(body.get("last_checked")),
        last_healthy=parse_time(body.get("last_healthy")),
        repair=Repair(Action(repair["action"]), at, Reason(repair["reason"]), int(repair.get("checks", 0)))
        if repair and at
        else None,
        exhausted=bool(body.get("exhausted", False)),
    )


@dataclass(frozen=True)
class Check:
    """What one tick did: every node's decision (keyed ``scale_set/instance``), the repairs made."""

    decisions: dict[str, Decision]
    repairs: list[dict[str, Any]]
    members: list[str]
    arm_reads: int
    probes: int
    unread: list[str] = field(default_factory=list)


@dataclass
class HealthMonitor:
    state: StateStore
    scalesets: ScaleSets
    queues: MessageSender
    leases: LeaseStore
    clock: Clock
    policy: HealthPolicy
    corda_ports: tuple[int, ...]
    probe_timeout: float
    probe: Probe = tcp_probe
    workers: int = 16

    def __post_init__(self) -> None:
        if not self.corda_ports:
            raise ValueError("no Corda ports to probe")
        if self.probe_timeout <= 0:
            raise ValueError(f"probe_timeout={self.probe_timeout} must be positive")
        self.events = Events(self.queues, self.clock)
        self.fenced = FencedWriter(self.state, self.leases)

    # -- reading -------------------------------------------------------------------------------------
    def _instances(self, names: list[str]) -> dict[str, list[Instance] | None]:
        """Each set's instances with their addresses; None for a set whose listing failed this tick."""

        def one(name: str) -> list[Instance] | None:
            try:
                return self.scalesets.list_instances(name, addresses=True)
            except ControlPlaneError as e:
                log.warning("listing instances of %s failed: %s; not judging its nodes this tick", name, e)
                return None

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return dict(zip(names, pool.map(one, names), strict=True))

    def _probe(self, targets: list[tuple[str, int, Instance]]) -> dict[tuple[str, str, int], str | None]:
        """Every (set, instance, Corda port) probed at once; an unknown address or port fails by name."""

        def one(target: tuple[str, int, Instance]) -> str | None:
            _, port, instance = target
            endpoint = instance.endpoint(port)
            if endpoint is None:
                return "no address known" if instance.private_ip is None else "not served by this node"
            return self.probe(endpoint[0], endpoint[1], self.probe_timeout)

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            results = list(pool.map(one, targets))
        return {(name, t.instance_id, port): r for (name, port, t), r in zip(targets, results, strict=True)}

    def _observe(self, member_of: dict[str, str], listed: dict[str, list[Instance] | None]) -> list[Observation]:
        targets = [
            (name, port, instance)
            for name, instances in listed.items()
            for instance in instances or []
            if not _starting(instance)
            for port in self.corda_ports
        ]
        results = self._probe(targets)
        observations = []
        for name, instances in listed.items():
            for i in instances or []:
                outcome = [(port, results.get((name, i.instance_id, port))) for port in self.corda_ports]
                observations.append(
                    Observation(
                        member_id=member_of[name], scale_set=name, instance_id=i.instance_id, arm_healthy=i.healthy,
                        ports_open=tuple(p for p, r in outcome if r is None) if not _starting(i) else (),
                        ports_failed=tuple((p, r) for p, r in outcome if r is not None),
                        starting=_starting(i),
                    )
                )  # fmt: skip
        return observations

    # -- the tick ------------------------------------------------------------------------------------
    def tick(self, fencing_token: int, check: Callable[[], None] = lambda: None) -> Check:
        """One check with the coordinator's token; ``check`` raises once the term is over (before each write)."""
        now = self.clock.now()
        newest = self.leases.read(COORDINATOR).fencing_token
        if newest > fencing_token:
            raise FencedError(f"health check with fencing token {fencing_token} refused: token {newest} is newer")
        members = sorted(r["member_id"] for r in active_members(self.state))
        listed = {s.name: s for s in self.scalesets.list_all()}
        arm_reads = 1
        member_of = {
            scale_set_name(mid): mid
            for mid in members
            if scale_set_name(mid) in listed and listed[scale_set_name(mid)].provisioning_state not in SKIPPED_STATES
        }
        stored = self.state.read(STATE_PATH)
        body = stored.body if stored else {}
        ticks = int(body.get("ticks", 0))
        names = sorted(member_of)
        per_tick = max(1, MAX_INSTANCE_READS // 2)
        start = (ticks * per_tick) % len(names) if names else 0
        turn = (names[start:] + names[:start])[:per_tick]
        instances = self._instances(turn)
        arm_reads += 2 * len(turn)
        unread = [name for name, found in instances.items() if found is None]
        observations = self._observe(member_of, {n: found for n, found in instances.items() if found is not None})

        nodes: dict[str, Any] = dict(body.get("nodes", {}))
        before = {o.key: heartbeat_from_json(nodes.get(o.key)) for o in observations}
        decisions, heartbeats = decide(observations, before, self.policy, now)

        repairs: list[dict[str, Any]] = []
        by_key = {o.key: o for o in observations}
        for key in sorted(k for k, d in decisions.items() if d.repairs):
            obs, decision = by_key[key], decisions[key]
            check()
            try:
                if decision.action is Action.RESTART:
                    self.scalesets.restart(obs.scale_set, obs.instance_id)
                else:
                    self.scalesets.reimage(obs.scale_set, obs.instance_id)
            except ControlPlaneError as e:
                # Throttled, or the instance went away: not a repair. The next tick re-reads and re-decides.
                log.warning("%s of %s not done: %s", decision.action.value, key, e)
                heartbeats[key] = replace(heartbeats[key], repair=before[key].repair)
                message = f"{decision.message}; the {decision.action.value} failed: {e}"
                decisions[key] = replace(decision, state=State.HOLD, action=Action.NONE, message=message)
                continue
            repair = {
                "at": iso_time(now), "member_id": obs.member_id, "scale_set": obs.scale_set,
                "instance": obs.instance_id, "action": decision.action.value, "reason": decision.reason.value,
                "message": decision.message,
                "failures": heartbeats[key].failures,
            }  # fmt: skip
            repairs.append(repair)
            self.events.emit("node.repair", obs.member_id, (key, repair["at"], decision.action.value),
                             **{k: v for k, v in repair.items() if k not in ("at", "member_id")})  # fmt: skip
            log.info(
                "%s %s: %s", decision.action.value, key, decision.message,
                extra={"fields": {"member_id": obs.member_id, "reason": decision.reason.value}},
            )  # fmt: skip
        for key, decision in decisions.items():
            if decision.reason is Reason.REPAIRS_EXHAUSTED and not before[key].exhausted:
                obs = by_key[key]
                self.events.emit(
                    "node.unrepaired", obs.member_id, (key, iso_time(now)), scale_set=obs.scale_set,
                    instance=obs.instance_id, reason=decision.reason.value, message=decision.message,
                )  # fmt: skip
                log.warning("%s: %s", key, decision.message, extra={"fields": {"member_id": obs.member_id}})

        check()
        self._record(fencing_token, now, member_of, instances, observations, decisions, heartbeats, repairs)
        return Check(decisions, repairs, [member_of[n] for n in turn], arm_reads, len(self.corda_ports) * sum(
            1 for o in observations if not o.starting), unread)  # fmt: skip

    def _record(
        self,
        token: int,
        now: datetime,
        member_of: dict[str, str],
        instances: dict[str, list[Instance] | None],
        observations: list[Observation],
        decisions: dict[str, Decision],
        heartbeats: dict[str, Heartbeat],
        repairs: list[dict[str, Any]],
    ) -> None:
        at = iso_time(now)
        read = {name for name, found in instances.items() if found is not None}
        by_member: dict[str, list[Observation]] = {}
        for obs in observations:
            by_member.setdefault(obs.member_id, []).append(obs)

        def change(body: dict[str, Any] | None) -> dict[str, Any]:
            body = dict(body or {})
            nodes = {
                key: node
                for key, node in dict(body.get("nodes", {})).items()
                # A node of a set read this tick that was not listed is gone; so is any node of a set
                # that is no longer an active member's.
                if key.rsplit("/", 1)[0] in member_of and key.rsplit("/", 1)[0] not in read
            }
            for obs in observations:
                d = decisions[obs.key]
                nodes[obs.key] = {
                    **heartbeat_to_json(heartbeats[obs.key]), "member_id": obs.member_id,
                    "state": d.state.value, "reason": d.reason.value, "message": d.message, "at": at,
                    "arm_healthy": obs.arm_healthy, "ports_failed": [[p, why] for p, why in obs.ports_failed],
                }  # fmt: skip
            members = {mid: m for mid, m in dict(body.get("members", {})).items() if mid in member_of.values()}
            for mid, seen in by_member.items():
                counts = Counter(_bucket(decisions[o.key], heartbeats[o.key]) for o in seen)
                members[mid] = {"at": at, "nodes": len(seen), **{b: counts.get(b, 0) for b in BUCKETS}}
            recent = [*body.get("recent", []), *repairs][-RECENT_LIMIT:]
            return {**body, "updated_at": at, "ticks": int(body.get("ticks", 0)) + 1, "nodes": nodes,
                    "members": members, "recent": recent}  # fmt: skip

        self.fenced.update(STATE_PATH, token, change)


#: How status counts a member's nodes.
BUCKETS = ("healthy", "starting", "suspect", "unhealthy", "repairing")


def _bucket(decision: Decision, heartbeat: Heartbeat) -> str:
    if decision.state is State.HEALTHY:
        return "healthy"
    if decision.state is State.STARTING:
        return "repairing" if heartbeat.under_repair else "starting"
    if decision.state is State.SUSPECT:
        return "suspect"
    if decision.state in (State.REPAIR, State.REPAIRING):
        return "repairing"
    return "unhealthy"  # held by the budget, or left to an operator


def _starting(instance: Instance) -> bool:
    return instance.power_state == "starting" or instance.initializing


def health_view(state: StateStore) -> dict[str, Any]:
    """The last check's node counts per member and the recent repairs, for status and the dashboard."""
    doc = state.read(STATE_PATH)
    body = doc.body if doc else {}
    return {"updated_at": body.get("updated_at"), "members": body.get("members", {}), "recent": body.get("recent", [])}
