"""The status model of one member's deployment: one JSON object that `consortium status --json`, the
status HTTP function and the dashboard all serve (docs/contract.md, the ``status --json`` shape).

Everything in it is read from the member's own storage: its own record (``members/{me}.json``: its
status, scale set and keys), the consortium as its own deployment verified it (``consortium_view``:
the chain's head and genesis, the members, the proposals with who signed them, a fork, the others'
heads), the coordinator lease of its own deployments, and the poison queues' counts. A member
without a record is ``outside`` (deployed, has not asked). Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared.decisions import consortium as rules
from shared.decisions.identities import parse_holder
from shared.decisions.onboarding import Status, status_of
from shared.errors import ControlPlaneError
from shared.ports.leases import LeaseStore
from shared.ports.state import StateStore
from shared.services import onboarding, rotation
from shared.services.autoscale import autoscale_view, forecast_error
from shared.services.consortium import Consortium
from shared.services.health import health_view
from shared.services.identities import STATE_PATH as PROTECTION_PATH
from shared.services.leadership import coordinator_status
from shared.services.records import member_path
from shared.services.rotation import key_status, rotation_view

#: Queues whose poison counts the status shows (and the sweep records, and replay-poison puts back):
#: the contract's queues, the onboarding steps' and the key rotation requests'.
WATCHED_QUEUES: tuple[str, ...] = (*onboarding.QUEUES, rotation.REQUESTS)
#: Scale changes (and node repairs) shown, newest first.
RECENT_SHOWN = 10
#: How a member's nodes are counted by the last health check.
HEALTH_BUCKETS = ("healthy", "starting", "suspect", "unhealthy", "repairing")


def consortium_view(consortium: Consortium) -> dict[str, Any]:
    """The member's view of the consortium for ``status``, the CLI and the dashboard."""
    trusted = consortium.verified()
    head = trusted[-1] if trusted else None
    heads = consortium.stored_heads()
    judged = consortium.judge(heads) if head else {}
    own = consortium.own()
    proposals = []
    for proposal_id, proposal in sorted(consortium.known_proposals(heads).items()):
        e = judged.get(proposal_id)
        proposals.append({
            "proposal_id": proposal_id, "change": {"kind": proposal.kind.value, "member_id": proposal.member_id},
            "base_version": head.version if head else None, "signed_by": sorted(e.approvals) if e else [],
            "status": rules.shown(e), "standing": e.standing.value if e else None, "message": e.message if e else "",
            "proposer": proposal.proposer, "proposed_at": proposal.proposed_at,
            "rejected_by": list(e.rejections) if e else [],
            "decision": own.get("approvals", {}).get(proposal_id),
        })  # fmt: skip
    return {
        "chain": {
            "version": head.version if head else None,
            "head": head.hash if head else None,
            "genesis": consortium.genesis,
            "fork": own.get("fork") and {k: v for k, v in own["fork"].items() if k != "documents"},
        },
        "members": [
            {"member_id": m.member_id, "status": "active", "endpoint": m.endpoint, "legal_name": m.legal_name}
            for m in (head.document.members if head else ())
        ],
        "proposals": proposals,
        "agreement": own.get("record"),
        "peers": {
            m: {"seq": h.seq, "updated_at": h.updated_at, "version": h.chain.version if h.chain else None}
            for m, h in heads.items()
        },
    }


def member_view(
    record: dict[str, Any],
    scaled: dict[str, Any] | None = None,
    now: datetime | None = None,
    nodes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One member for the status model; ``scaled`` is the autoscaler's last word on its scale set,
    ``nodes`` the last health check's counts of its nodes."""
    now = now or datetime.now(UTC)
    scale = {**(record.get("scale_set") or {}), **({"capacity": scaled["capacity"]} if scaled else {})}
    bounds = record.get("scale") or {}
    return {
        "member_id": record.get("member_id"),
        "status": record.get("status"),
        "legal_name": record.get("legal_name"),
        "scale_set": {
            "id": record.get("scale_set_id") or scale.get("id"),
            "capacity": int(scale.get("capacity", 0)),
            "min_nodes": int(bounds.get("min_nodes", scale.get("min_nodes", 1))),
            "max_nodes": int(bounds.get("max_nodes", scale.get("max_nodes", 1))),
        },
        "keys": {key.get("name", kind): key_status(key, now) for kind, key in (record.get("keys") or {}).items()},
        "nodes": {bucket: int((nodes or {}).get(bucket, 0)) for bucket in HEALTH_BUCKETS}
        | {"checked_at": (nodes or {}).get("at")},
    }


def identities_view(leases: LeaseStore | None, state: StateStore) -> dict[str, Any]:
    """Which instance runs each of the member's Corda identities (their leases, docs/stateful-nodes.md) and
    which instances the control plane protects from scale-in for them. An identity whose lease is not held
    runs nowhere; leases that cannot be read now say so instead of failing the whole status."""
    doc = state.read(PROTECTION_PATH)
    protected = {name: list(v.get("ours") or []) for name, v in (doc.body if doc else {}).items()}
    if leases is None:
        return {"running": [], "protected": protected, "error": None}
    try:
        records = leases.records()
    except ControlPlaneError as e:
        return {"running": [], "protected": protected, "error": f"identity leases not read: {e}"}
    running = []
    for r in records:
        where = parse_holder(r.holder) if r.leased else None
        running.append({
            "identity": r.name, "holder": r.holder if r.leased else None, "fencing_token": r.fencing_token,
            "expires_at": r.expires_at.isoformat() if r.expires_at and r.leased else None,
            "protected": bool(where and where[1] in protected.get(where[0], [])),
        })  # fmt: skip
    return {"running": running, "protected": protected, "error": None}


def build_status(
    member_id: str,
    state: StateStore,
    leases: LeaseStore,
    count: Callable[[str], int],
    consortium: dict[str, Any],
    queues: tuple[str, ...] = WATCHED_QUEUES,
    now: datetime | None = None,
    identity_leases: LeaseStore | None = None,
) -> dict[str, Any]:
    """The status of ``member_id``'s own deployment; ``consortium`` is its ``consortium_view``."""
    now = now or datetime.now(UTC)
    scaling = autoscale_view(state)
    health = health_view(state)
    doc = state.read(member_path(member_id))
    record = doc.body if doc else {"member_id": member_id, "status": Status.OUTSIDE.value}
    active = status_of(record) is Status.ACTIVE
    scaled = scaling["last"].get(f"vmss-{member_id}") if active else None
    own = member_view(record, scaled, now, health["members"].get(member_id) if active else None)
    return {
        "member_id": member_id,
        "status": own["status"],
        "legal_name": own["legal_name"],
        "request_id": record.get("request_id"),
        "status_reason": record.get("status_reason"),
        "coordinator": coordinator_status(leases),
        "identities": identities_view(identity_leases, state),
        "chain": consortium["chain"],
        "members": consortium["members"],
        "proposals": consortium["proposals"],
        "agreement": consortium.get("agreement"),
        "peers": consortium.get("peers") or {},
        "scale_set": own["scale_set"],
        "keys": own["keys"],
        "nodes": own["nodes"],
        "poison": {f"{q}-poison": count(f"{q}-poison") for q in queues},
        "autoscale": {
            "updated_at": scaling["updated_at"],
            "recent": list(reversed(scaling["recent"][-RECENT_SHOWN:])),
            "last": {
                name: {"reason": d["reason"], "message": d["message"], "forecast_error": forecast_error(d)}
                for name, d in scaling["last"].items()
            },
        },
        "rotation": rotation_view(state, now),
        "health": {
            "updated_at": health["updated_at"],
            "members": health["members"],
            "recent": list(reversed(health["recent"][-RECENT_SHOWN:])),
        },
    }
