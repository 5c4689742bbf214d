"""The node health policy, pure: what one check saw of every node, their stored heartbeats and ``now``
in; per node a decision (healthy, suspect, repair by restart or reimage, or hold) with its reason and a
one-line message, and the heartbeats to store, out.

How a node is judged:
- **Two signals.** ARM's health (the Application Health extension's verdict: healthy, unhealthy, or
  none yet) and a TCP probe of the node's Corda ports. A node passes when no signal says it fails:
  ARM does not call it unhealthy and every Corda port accepts a connection (a node with no ARM verdict
  is judged by its probe alone). A VM that is (re)starting, or whose health extension is still in its
  grace period (``initializing``: a node booting after a reimage), is not judged at all.
- **N checks in a row.** One failed check makes a node suspect; ``unhealthy_checks`` failed checks in
  a row make it unhealthy, and it is repaired by a restart. A passing check clears the count.
- **Restart, then reimage.** A restart that has not brought the node back within
  ``reimage_after_checks`` further checks is followed by a reimage (a fresh OS disk); a reimage that
  has not either leaves the node to an operator (``repairs_exhausted``) instead of repairing in a loop.
- **The budget.** At most one node per member under repair at a time (a repair lasts until the node
  passes, or its repairs run out); at most ``fleet_ratio`` of the fleet checked this tick (at least
  one node) newly repaired per tick; and never a member's last node still answering on a Corda port:
  a node that answers on some port still carries part of the member's traffic, and taking it down
  leaves the member with nothing. A node that answers on no port is down already: repairing it costs
  nothing, even when it is the member's only node.

Nothing here reads a clock, a socket or ARM: observations and heartbeats go in, decisions and
heartbeats come out, so a cold start loses nothing and every rule is a table row.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum


class Action(StrEnum):
    NONE = "none"  # the node passes, or is left as it is
    RESTART = "restart"
    REIMAGE = "reimage"


class State(StrEnum):
    HEALTHY = "healthy"
    SUSPECT = "suspect"  # failing, but not yet for N checks in a row
    REPAIR = "repair"  # a repair is ordered this tick
    REPAIRING = "repairing"  # a repair is under way: waiting for it to take effect
    HOLD = "hold"  # unhealthy and due a repair, but the budget (or the member's last serving node) holds it
    STARTING = "starting"  # the VM is (re)starting: not judged
    FAILED = "failed"  # restarted and reimaged, still failing: left to an operator


class Reason(StrEnum):
    PASSING = "passing"  # ARM and the probe agree the node is fine
    RECOVERED = "recovered"  # passing again after a repair
    STARTING = "starting"  # the VM is (re)starting: not counted
    ARM_UNHEALTHY = "arm_unhealthy"  # failing: ARM's health extension says unhealthy (the probe may still pass)
    PROBE_FAILED = "probe_failed"  # failing: a Corda port refused or timed out (ARM may still say healthy)
    UNHEALTHY = "unhealthy"  # N failed checks in a row: restart
    RESTART_DID_NOT_HELP = "restart_did_not_help"  # still failing K checks after a restart: reimage
    WAITING_FOR_REPAIR = "waiting_for_repair"  # repaired recently: giving it K checks
    REPAIRS_EXHAUSTED = "repairs_exhausted"  # still failing K checks after a reimage: an operator must look
    MEMBER_BUSY = "member_busy"  # another node of the member is under repair
    FLEET_BUDGET = "fleet_budget"  # this tick's share of the fleet is used up
    LAST_SERVING = "last_serving"  # the member's last node answering on a Corda port is never taken down


@dataclass(frozen=True)
class HealthPolicy:
    #: Failed checks in a row that make a node unhealthy and start a repair (N).
    unhealthy_checks: int = 3
    #: Further failed checks after a restart before a reimage, and after a reimage before giving up (K).
    reimage_after_checks: int = 3
    #: Share of the fleet checked this tick that may newly be repaired in one tick (at least one node).
    fleet_ratio: float = 0.2
    #: Nodes of one member under repair at once.
    per_member: int = 1

    def __post_init__(self) -> None:
        if self.unhealthy_checks < 1:
            raise ValueError(f"unhealthy_checks={self.unhealthy_checks} must be at least 1")
        if self.reimage_after_checks < 1:
            raise ValueError(f"reimage_after_checks={self.reimage_after_checks} must be at least 1")
        if not 0 < self.fleet_ratio <= 1:
            raise ValueError(f"fleet_ratio={self.fleet_ratio} must be in (0, 1]")
        if self.per_member < 1:
            raise ValueError(f"per_member={self.per_member} must be at least 1")

    def fleet_budget(self, fleet: int) -> int:
        """Repairs one tick may start over a fleet of ``fleet`` nodes: ``fleet_ratio`` of it, at least one."""
        return max(1, math.floor(fleet * self.fleet_ratio + 1e-9))


@dataclass(frozen=True)
class Observation:
    """What one check saw of one node."""

    member_id: str
    scale_set: str
    instance_id: str
    #: ARM's verdict: True healthy, False unhealthy, None none (no health extension, or still initializing).
    arm_healthy: bool | None
    #: Corda ports that accepted a connection, and those that did not (with what happened).
    ports_open: tuple[int, ...] = ()
    ports_failed: tuple[tuple[int, str], ...] = ()
    #: The VM is (re)starting, or ARM's health extension is still in its grace period: not judged.
    starting: bool = False

    @property
    def key(self) -> str:
        return f"{self.scale_set}/{self.instance_id}"

    @property
    def probe_ok(self) -> bool:
        return not self.ports_failed

    @property
    def answering(self) -> bool:
        """Still answers on at least one Corda port: it carries some of the member's traffic."""
        return bool(self.ports_open)

    @property
    def passing(self) -> bool:
        return self.arm_healthy is not False and self.probe_ok


@dataclass(frozen=True)
class Repair:
    """A repair under way: what was done, when, and the failed checks since."""

    action: Action
    at: datetime
    reason: Reason
    checks: int = 0


@dataclass(frozen=True)
class Heartbeat:
    """Per node, persisted between checks."""

    #: Failed checks in a row.
    failures: int = 0
    last_checked: datetime | None = None
    last_healthy: datetime | None = None
    repair: Repair | None = None
    #: Restarted and reimaged and still failing: no more repairs until it passes.
    exhausted: bool = False

    @property
    def under_repair(self) -> bool:
        return self.repair is not None


@dataclass(frozen=True)
class Decision:
    state: State
    action: Action
    reason: Reason
    message: str

    @property
    def repairs(self) -> bool:
        return self.action is not Action.NONE


def _failure(obs: Observation) -> tuple[Reason, str]:
    """Why a failing node fails, in one line."""
    ports = ", ".join(f"{port} {what}" for port, what in obs.ports_failed)
    if obs.arm_healthy is False and obs.ports_failed:
        return Reason.ARM_UNHEALTHY, f"ARM reports unhealthy; Corda port(s) {ports}"
    if obs.arm_healthy is False:
        return Reason.ARM_UNHEALTHY, "ARM reports unhealthy (its Corda ports still answer)"
    return Reason.PROBE_FAILED, f"Corda port(s) {ports}" + (" (ARM says healthy)" if obs.arm_healthy else "")


def _judge(obs: Observation, before: Heartbeat, policy: HealthPolicy, now: datetime) -> tuple[Decision, Heartbeat]:
    """One node on its own, before the budget: what it needs, and its heartbeat after this check."""
    if obs.starting:
        message = "the VM is starting: not judged this check"
        return Decision(State.STARTING, Action.NONE, Reason.STARTING, message), replace(before, last_checked=now)
    if obs.passing:
        after = Heartbeat(failures=0, last_checked=now, last_healthy=now)
        if before.repair is not None or before.exhausted:
            done = before.repair.action.value if before.repair else "repair"
            return Decision(State.HEALTHY, Action.NONE, Reason.RECOVERED, f"passing again after the {done}"), after
        return Decision(State.HEALTHY, Action.NONE, Reason.PASSING, "ARM and the Corda ports agree"), after

    failures = before.failures + 1
    why, detail = _failure(obs)
    hb = replace(before, failures=failures, last_checked=now)
    if before.exhausted:
        message = f"restarted and reimaged, still failing ({detail}): an operator must look"
        return Decision(State.FAILED, Action.NONE, Reason.REPAIRS_EXHAUSTED, message), hb
    repair = before.repair
    if repair is not None:
        repair = replace(repair, checks=repair.checks + 1)
        hb = replace(hb, repair=repair)
        if repair.checks < policy.reimage_after_checks:
            message = f"{repair.action.value}ed, {repair.checks} of {policy.reimage_after_checks} checks: {detail}"
            return Decision(State.REPAIRING, Action.NONE, Reason.WAITING_FOR_REPAIR, message), hb
        if repair.action is Action.RESTART:
            message = f"still failing {repair.checks} checks after a restart ({detail}): reimage"
            return Decision(State.REPAIR, Action.REIMAGE, Reason.RESTART_DID_NOT_HELP, message), hb
        message = f"still failing {repair.checks} checks after a reimage ({detail}): an operator must look"
        return Decision(State.FAILED, Action.NONE, Reason.REPAIRS_EXHAUSTED, message), replace(
            hb, repair=None, exhausted=True
        )
    if failures < policy.unhealthy_checks:
        message = f"{failures} of {policy.unhealthy_checks} failed checks in a row: {detail}"
        return Decision(State.SUSPECT, Action.NONE, why, message), hb
    message = f"{failures} failed checks in a row ({detail}): restart"
    return Decision(State.REPAIR, Action.RESTART, Reason.UNHEALTHY, message), hb


def decide(
    observations: list[Observation], heartbeats: dict[str, Heartbeat], policy: HealthPolicy, now: datetime
) -> tuple[dict[str, Decision], dict[str, Heartbeat]]:
    """Every node's decision this check, keyed by ``scale_set/instance_id``, and the heartbeats to store.

    ``heartbeats`` holds what was stored before, keyed the same way; only observed nodes are judged
    and returned. The budget is applied over the whole fleet observed: repairs of nodes that have
    failed longest go first, so a node does not starve behind newer failures.
    """
    judged: dict[str, tuple[Observation, Decision, Heartbeat]] = {}
    for obs in observations:
        judged[obs.key] = (obs, *_judge(obs, heartbeats.get(obs.key, Heartbeat()), policy, now))

    # Per member: nodes under repair that stay so (not recovered, not given up), and nodes still answering.
    under_repair: dict[str, set[str]] = defaultdict(set)
    answering: dict[str, set[str]] = defaultdict(set)
    for key, (obs, decision, hb) in judged.items():
        if hb.repair is not None:  # not passed since, not given up: still under repair, even while restarting
            under_repair[obs.member_id].add(key)
        if obs.answering and decision.state is not State.STARTING:
            answering[obs.member_id].add(key)

    budget = policy.fleet_budget(len(observations))
    wanted = sorted(
        (key for key, (_, d, _) in judged.items() if d.repairs),
        key=lambda k: (-judged[k][2].failures, judged[k][0].member_id, k),
    )
    decisions = {key: decision for key, (_, decision, _) in judged.items()}
    stored = {key: hb for key, (_, _, hb) in judged.items()}
    for key in wanted:
        obs, decision, hb = judged[key]
        others = under_repair[obs.member_id] - {key}
        if len(others) >= policy.per_member:
            message = f"{decision.message}; held: {len(others)} other node(s) of {obs.member_id} under repair"
            decisions[key] = Decision(State.HOLD, Action.NONE, Reason.MEMBER_BUSY, message)
            continue
        if obs.answering and not (answering[obs.member_id] - {key}):
            message = f"{decision.message}; held: the last node of {obs.member_id} still answering on a Corda port"
            decisions[key] = Decision(State.HOLD, Action.NONE, Reason.LAST_SERVING, message)
            continue
        if budget <= 0:
            message = (
                f"{decision.message}; held: this tick's repairs ({policy.fleet_budget(len(observations))}) are used"
            )
            decisions[key] = Decision(State.HOLD, Action.NONE, Reason.FLEET_BUDGET, message)
            continue
        budget -= 1
        under_repair[obs.member_id].add(key)
        answering[obs.member_id].discard(key)
        stored[key] = replace(hb, repair=Repair(decision.action, now, decision.reason))
    return decisions, stored
