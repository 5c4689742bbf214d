"""The node health policy, one row per rule, each with the sentence that explains it; then its invariants."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.decisions.health import (
    Action,
    HealthPolicy,
    Heartbeat,
    Observation,
    Reason,
    Repair,
    State,
    decide,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POLICY = HealthPolicy(unhealthy_checks=3, reimage_after_checks=2)
EARLIER = NOW - timedelta(minutes=5)


def node(
    member: str = "bank-a",
    instance: str = "0",
    arm: bool | None = True,
    *,
    up: tuple[int, ...] = (10002, 10003),
    down: tuple[int, ...] = (),
    starting: bool = False,
) -> Observation:
    return Observation(
        member, f"vmss-{member}", instance, arm, ports_open=up, ports_failed=tuple((p, "refused") for p in down),
        starting=starting,
    )  # fmt: skip


DEAD = {"up": (), "down": (10002, 10003)}
HALF = {"up": (10002,), "down": (10003,)}


@dataclass(frozen=True)
class Row:
    why: str
    nodes: list[Observation]
    before: dict[str, Heartbeat]
    state: State
    action: Action
    reason: Reason
    #: The node the row is about (the first one by default).
    subject: str = "vmss-bank-a/0"
    policy: HealthPolicy = field(default=POLICY)


def failing(n: int) -> Heartbeat:
    return Heartbeat(failures=n, last_checked=EARLIER)


def restarted(checks: int, failures: int = 5) -> Heartbeat:
    return Heartbeat(failures=failures, repair=Repair(Action.RESTART, EARLIER, Reason.UNHEALTHY, checks))


def reimaged(checks: int) -> Heartbeat:
    return Heartbeat(failures=8, repair=Repair(Action.REIMAGE, EARLIER, Reason.RESTART_DID_NOT_HELP, checks))


ROWS = [
    Row("ARM healthy and every Corda port open: healthy",
        [node()], {}, State.HEALTHY, Action.NONE, Reason.PASSING),
    Row("no ARM verdict (no health extension) but every port open: the probe alone says healthy",
        [node(arm=None)], {}, State.HEALTHY, Action.NONE, Reason.PASSING),
    Row("a node passing after a restart has recovered, and its repair is over",
        [node()], {"vmss-bank-a/0": restarted(1)}, State.HEALTHY, Action.NONE, Reason.RECOVERED),
    Row("a VM that is (re)starting is not judged",
        [node(arm=None, starting=True, **DEAD)], {"vmss-bank-a/0": failing(2)},
        State.STARTING, Action.NONE, Reason.STARTING),
    Row("one failed check makes a node suspect, not unhealthy",
        [node(**DEAD), node(instance="1")], {}, State.SUSPECT, Action.NONE, Reason.PROBE_FAILED),
    Row("ARM unhealthy while the ports still answer is a failure too",
        [node(arm=False), node(instance="1")], {}, State.SUSPECT, Action.NONE, Reason.ARM_UNHEALTHY),
    Row("N-1 failures before plus this one is N in a row: restart",
        [node(**DEAD), node(instance="1")], {"vmss-bank-a/0": failing(2)},
        State.REPAIR, Action.RESTART, Reason.UNHEALTHY),
    Row("N-2 failures before plus this one is one short of N: still suspect",
        [node(**DEAD), node(instance="1")], {"vmss-bank-a/0": failing(1)},
        State.SUSPECT, Action.NONE, Reason.PROBE_FAILED),
    Row("a node ARM calls healthy but whose ports are closed is restarted after N checks",
        [node(arm=True, **DEAD), node(instance="1")], {"vmss-bank-a/0": failing(2)},
        State.REPAIR, Action.RESTART, Reason.UNHEALTHY),
    Row("a restart gets K checks to take effect: one check after it, still waiting",
        [node(**DEAD), node(instance="1")], {"vmss-bank-a/0": restarted(0)},
        State.REPAIRING, Action.NONE, Reason.WAITING_FOR_REPAIR),
    Row("still failing K checks after the restart: reimage",
        [node(**DEAD), node(instance="1")], {"vmss-bank-a/0": restarted(1)},
        State.REPAIR, Action.REIMAGE, Reason.RESTART_DID_NOT_HELP),
    Row("still failing K checks after the reimage: left to an operator, no repair loop",
        [node(**DEAD), node(instance="1")], {"vmss-bank-a/0": reimaged(1)},
        State.FAILED, Action.NONE, Reason.REPAIRS_EXHAUSTED),
    Row("a node given up on stays given up while it fails",
        [node(**DEAD), node(instance="1")], {"vmss-bank-a/0": Heartbeat(failures=12, exhausted=True)},
        State.FAILED, Action.NONE, Reason.REPAIRS_EXHAUSTED),
    Row("a node given up on that passes again has recovered",
        [node()], {"vmss-bank-a/0": Heartbeat(failures=12, exhausted=True)},
        State.HEALTHY, Action.NONE, Reason.RECOVERED),
    Row("another node of the member is under repair: one at a time per member",
        [node(**DEAD), node(instance="1", **DEAD), node(instance="2")],
        {"vmss-bank-a/0": failing(2), "vmss-bank-a/1": restarted(0)},
        State.HOLD, Action.NONE, Reason.MEMBER_BUSY),
    Row("another node of the member restarting after our restart is still under repair",
        [node(**DEAD), node(instance="1", arm=None, starting=True, up=(), down=()), node(instance="2")],
        {"vmss-bank-a/0": failing(2), "vmss-bank-a/1": restarted(0)},
        State.HOLD, Action.NONE, Reason.MEMBER_BUSY),
    Row("a node that still answers on a port is not taken down when no other node of the member answers",
        [node(arm=False, **HALF), node(instance="1", **DEAD)],
        {"vmss-bank-a/0": failing(2), "vmss-bank-a/1": failing(1)},
        State.HOLD, Action.NONE, Reason.LAST_SERVING),
    Row("a half-answering node is repaired when another node of the member answers",
        [node(arm=False, **HALF), node(instance="1")], {"vmss-bank-a/0": failing(2)},
        State.REPAIR, Action.RESTART, Reason.UNHEALTHY),
    Row("a member's only node answering on no port is down already: repairing it costs nothing",
        [node(**DEAD)], {"vmss-bank-a/0": failing(2)}, State.REPAIR, Action.RESTART, Reason.UNHEALTHY),
    Row("the fleet budget is a fifth of the nodes, at least one: the longest-failing node goes first",
        [node(**DEAD), node("bank-b", **DEAD), node("bank-c"), node("bank-d"), node("bank-e")],
        {"vmss-bank-a/0": failing(2), "vmss-bank-b/0": failing(5)},
        State.HOLD, Action.NONE, Reason.FLEET_BUDGET),
    Row("... and the node that has failed longest takes the tick's one repair",
        [node(**DEAD), node("bank-b", **DEAD), node("bank-c"), node("bank-d"), node("bank-e")],
        {"vmss-bank-a/0": failing(2), "vmss-bank-b/0": failing(5)},
        State.REPAIR, Action.RESTART, Reason.UNHEALTHY, subject="vmss-bank-b/0"),
    Row("ten nodes allow two repairs a tick: the second unhealthy member's node is repaired too",
        [node(**DEAD), node("bank-b", **DEAD), *(node(f"bank-{c}") for c in "cdefghij")],
        {"vmss-bank-a/0": failing(2), "vmss-bank-b/0": failing(5)},
        State.REPAIR, Action.RESTART, Reason.UNHEALTHY),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.why for r in ROWS])
def test_rule(row: Row) -> None:
    decisions, _ = decide(row.nodes, row.before, row.policy, NOW)
    d = decisions[row.subject]
    assert (d.state, d.action, d.reason) == (row.state, row.action, row.reason), d.message
    assert d.message and "\n" not in d.message


def test_a_repair_is_stored_with_its_action_and_reason_and_a_pass_clears_the_heartbeat() -> None:
    _, stored = decide([node(**DEAD), node(instance="1")], {"vmss-bank-a/0": failing(2)}, POLICY, NOW)
    hb = stored["vmss-bank-a/0"]
    assert hb.failures == 3 and hb.repair == Repair(Action.RESTART, NOW, Reason.UNHEALTHY, 0)
    assert stored["vmss-bank-a/1"].last_healthy == NOW
    _, after = decide([node(), node(instance="1")], stored, POLICY, NOW + timedelta(minutes=1))
    assert after["vmss-bank-a/0"] == Heartbeat(0, NOW + timedelta(minutes=1), NOW + timedelta(minutes=1))


def test_a_held_repair_keeps_counting_and_is_made_once_the_budget_allows() -> None:
    nodes = [node(**DEAD), node(instance="1", **DEAD), node(instance="2")]
    before = {"vmss-bank-a/0": failing(2), "vmss-bank-a/1": restarted(0)}
    decisions, stored = decide(nodes, before, POLICY, NOW)
    assert decisions["vmss-bank-a/0"].reason is Reason.MEMBER_BUSY and stored["vmss-bank-a/0"].failures == 3
    nodes[1] = node(instance="1")  # the restarted node recovers
    decisions, _ = decide(nodes, stored, POLICY, NOW + timedelta(minutes=1))
    assert decisions["vmss-bank-a/0"].action is Action.RESTART


def test_the_policy_refuses_nonsense_by_name() -> None:
    with pytest.raises(ValueError, match="unhealthy_checks"):
        HealthPolicy(unhealthy_checks=0)
    with pytest.raises(ValueError, match="fleet_ratio"):
        HealthPolicy(fleet_ratio=0)
    assert [HealthPolicy().fleet_budget(n) for n in (1, 4, 5, 9, 10, 100)] == [1, 1, 1, 1, 2, 20]


# -- invariants -------------------------------------------------------------------------------------
PORTS = st.sampled_from([((10002, 10003), ()), ((10002,), (10003,)), ((), (10002, 10003))])


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[Observation], dict[str, Heartbeat]]:
    nodes, before = [], {}
    for m in range(draw(st.integers(1, 6))):
        for i in range(draw(st.integers(1, 5))):
            up, down = draw(PORTS)
            obs = node(f"bank-{m}", str(i), draw(st.sampled_from([True, False, None])), up=up, down=down,
                       starting=draw(st.booleans()) and draw(st.booleans()))  # fmt: skip
            nodes.append(obs)
            kind = draw(st.sampled_from(["fresh", "failing", "restarted", "reimaged", "exhausted"]))
            if kind == "failing":
                before[obs.key] = failing(draw(st.integers(0, 6)))
            elif kind == "restarted":
                before[obs.key] = restarted(draw(st.integers(0, 4)))
            elif kind == "reimaged":
                before[obs.key] = reimaged(draw(st.integers(0, 4)))
            elif kind == "exhausted":
                before[obs.key] = Heartbeat(failures=9, exhausted=True)
    return nodes, before


@settings(max_examples=400, deadline=None)
@given(fleets(), st.integers(1, 4), st.integers(1, 4))
def test_the_budget_is_never_exceeded_and_no_member_loses_its_last_answering_node(
    fleet: tuple[list[Observation], dict[str, Heartbeat]], n: int, k: int
) -> None:
    nodes, before = fleet
    policy = HealthPolicy(unhealthy_checks=n, reimage_after_checks=k)
    decisions, stored = decide(nodes, before, policy, NOW)
    repaired = [o for o in nodes if decisions[o.key].repairs]
    assert len(repaired) <= policy.fleet_budget(len(nodes))
    for member in {o.member_id for o in nodes}:
        mine = [o for o in nodes if o.member_id == member]
        # at most one node per member under repair after the tick
        assert sum(1 for o in mine if stored[o.key].under_repair) <= max(
            1, sum(1 for o in mine if before.get(o.key, Heartbeat()).under_repair)
        )
        assert sum(1 for o in mine if decisions[o.key].repairs) <= 1
        # a member that had a node answering still has one that is not being taken down
        answering = [o for o in mine if o.answering and not o.starting]
        if answering:
            assert any(not decisions[o.key].repairs for o in answering)
    # a passing node is never repaired, and only repairs carry an action
    for o in nodes:
        d = decisions[o.key]
        if o.passing and not o.starting:
            assert d.state is State.HEALTHY and not d.repairs
        assert d.repairs == (d.state is State.REPAIR)


@settings(max_examples=100, deadline=None)
@given(fleets())
def test_deciding_is_deterministic_and_judges_exactly_the_observed_nodes(
    fleet: tuple[list[Observation], dict[str, Heartbeat]],
) -> None:
    nodes, before = fleet
    first = decide(nodes, before, POLICY, NOW)
    assert first == decide(list(reversed(nodes)), before, POLICY, NOW)
    assert set(first[0]) == set(first[1]) == {o.key for o in nodes}
