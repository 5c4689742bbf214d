"""Which instance runs which Corda identity: the rules of the identity keeper and of scale-in protection.

A Corda node is one legal identity in one process (docs/stateful-nodes.md). An instance may run an
identity only during a tenure: while it holds the identity's blob lease, whose fencing token the identity's
ledger checks on every write (``nodeagent/identity``). These rules say when the keeper on an instance
starts, keeps or stops its node, and which instances the control plane protects from scale-in so that
no scale-in removes an instance while it runs an identity.

Times are the keeper's own monotonic seconds. A tenure is valid until ``valid_until``: the moment before
the last successful acquire or renew was sent, plus the lease's duration. The storage service's lease
cannot end before that, so a node stopped by ``valid_until`` is stopped before any other instance can
take the identity: the keeper begins stopping ``stop_budget`` (the node's grace plus a margin) earlier.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

#: The container of the member's storage account that holds the identities' leases: the nodes' identity
#: may write (lease) there and nowhere else of the account; the control plane reads it.
LEASE_CONTAINER = "identity-leases"
_HOLDER = re.compile(r"^(?P<scale_set>[A-Za-z0-9][A-Za-z0-9_.-]{0,79})/(?P<instance>[0-9]{1,9})$")


def holder_name(scale_set: str, instance_id: str) -> str:
    """What a keeper writes as the lease's holder: ``{scale set}/{instance id}`` (as ARM names an instance)."""
    name = f"{scale_set}/{instance_id}"
    if not _HOLDER.match(name):
        raise ValueError(f"holder {name!r}: a scale set name, '/', and the instance's numeric id")
    return name


def parse_holder(holder: str | None) -> tuple[str, str] | None:
    """``(scale set, instance id)`` of a holder written by a keeper; None for anything else."""
    found = _HOLDER.match(holder or "")
    return (found["scale_set"], found["instance"]) if found else None


class Move(StrEnum):
    """What the keeper does next."""

    ACQUIRE = "acquire"  # no tenure: try to take the lease (a standby keeps trying)
    KEEP = "keep"  # the node runs and the tenure is valid: nothing to do
    RENEW = "renew"  # time to renew the lease
    STOP = "stop"  # the tenure could end before the node is down: stop the node now
    RELEASE = "release"  # the node exited on its own: give the identity up so another instance takes it


class Why(StrEnum):
    """Why the keeper makes its move (logged with the move when it changes something)."""

    NO_TENURE = "no_tenure"  # this instance holds no tenure
    VALID = "valid"  # the tenure is valid and its renewal not yet due
    RENEW_DUE = "renew_due"  # the renewal is due, with room for it before the stop
    ENDING = "ending"  # within the stop budget of the tenure's end
    OVER = "over"  # past the tenure's end: this keeper did not run for a while (its VM frozen?)
    NODE_EXITED = "node_exited"  # the node is down during a valid tenure


@dataclass(frozen=True)
class Tenure:
    token: int
    valid_until: float
    renew_at: float


@dataclass(frozen=True)
class Next:
    """The keeper's next move, why, and a line saying so."""

    move: Move
    reason: Why
    message: str


def next_move(now: float, tenure: Tenure | None, *, node_running: bool, stop_budget: float) -> Next:
    """The keeper's next move. Stopping wins over renewing: a renewal answered late cannot be trusted to
    have extended anything, so once ``now`` is within ``stop_budget`` of the tenure's end the node goes."""
    if tenure is None:
        return Next(Move.ACQUIRE, Why.NO_TENURE, "no tenure: ask for the lease")
    left = tenure.valid_until - now
    if left < 0:
        return Next(Move.STOP, Why.OVER, f"node stopped {-left:.1f} s after the tenure could have ended "
                    "(this keeper was not running; the ledger's fence refused the node meanwhile)")  # fmt: skip
    if left <= stop_budget:
        return Next(Move.STOP, Why.ENDING, f"node stopped {left:.1f} s before the tenure could end")
    if not node_running:
        return Next(Move.RELEASE, Why.NODE_EXITED, "the node exited by itself; identity released for another instance")
    if now >= tenure.renew_at:
        return Next(Move.RENEW, Why.RENEW_DUE, f"renewal due, tenure valid {left:.1f} s more")
    return Next(Move.KEEP, Why.VALID, f"tenure valid {left:.1f} s more")


def check_times(lease_seconds: int, renew_every: float, stop_budget: float) -> None:
    """The keeper's times must leave a renewal or two before the stop deadline: refuse them otherwise."""
    if not 15 <= lease_seconds <= 60:
        raise ValueError(f"lease_seconds {lease_seconds}: blob leases last 15 to 60 s")
    if stop_budget <= 0 or renew_every <= 0:
        raise ValueError("renew_every and stop_budget must be positive")
    if renew_every * 2 + stop_budget > lease_seconds:
        raise ValueError(
            f"lease_seconds {lease_seconds} leaves no room for two renewals every {renew_every:g} s "
            f"before stopping the node {stop_budget:g} s ahead of the lease's end"
        )


@dataclass(frozen=True)
class Held:
    """One identity's lease as the control plane reads it."""

    identity: str
    holder: str | None
    leased: bool


def running_instances(leases: Iterable[Held], scale_set: str) -> dict[str, str]:
    """Instance id -> identity, for the instances of ``scale_set`` that hold an identity's lease now."""
    running: dict[str, str] = {}
    for lease in leases:
        where = parse_holder(lease.holder) if lease.leased else None
        if where is not None and where[0] == scale_set:
            running[where[1]] = lease.identity
    return running


def protection_changes(
    protected: Mapping[str, bool], running: Mapping[str, str], ours: Iterable[str]
) -> tuple[dict[str, bool], frozenset[str]]:
    """The protection to set per instance id, and the instances protected by the control plane after it.

    An instance that runs an identity is protected from scale-in; one the control plane protected (``ours``)
    that no longer runs one is released. Protection an operator set by hand is never lifted, and an
    instance that is gone is left alone (it drops out of ``ours``)."""
    mine = {i for i in ours if i in protected}
    changes: dict[str, bool] = {}
    for instance, is_protected in sorted(protected.items()):
        if instance in running:
            if not is_protected:  # protected already (by hand, or by us): nothing to set, nothing to claim
                changes[instance] = True
                mine.add(instance)
        elif instance in mine:
            mine.discard(instance)
            if is_protected:
                changes[instance] = False
    return changes, frozenset(mine)
