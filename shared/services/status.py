"""The status model: one JSON object that `consortium status --json`, the status HTTP function and
the dashboard all serve, read from the consortium state, the coordinator lease and the poison queues.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared.ports.leases import LeaseStore
from shared.ports.state import StateStore
from shared.services import onboarding, rotation
from shared.services.autoscale import autoscale_view, forecast_error
from shared.services.health import health_view
from shared.services.leadership import coordinator_status
from shared.services.rotation import key_status, rotation_view

#: Queues whose poison counts the status shows (and the sweep records, and replay-poison puts back):
#: the contract's queues, the onboarding steps' and the key rotation requests'.
WATCHED_QUEUES: tuple[str, ...] = (*onboarding.QUEUES, rotation.REQUESTS)
#: Scale changes (and node repairs) shown, newest first.
RECENT_SHOWN = 10
#: How a member's nodes are counted by the last health check.
HEALTH_BUCKETS = ("healthy", "starting", "suspect", "unhealthy", "repairing")


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


def build_status(
    state: StateStore,
    leases: LeaseStore,
    count: Callable[[str], int],
    queues: tuple[str, ...] = WATCHED_QUEUES,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    scaling = autoscale_view(state)
    health = health_view(state)
    members = []
    for doc in state.read_all("members/"):
        scaled = scaling["last"].get(f"vmss-{doc.body.get('member_id')}")
        active = doc.body.get("status") == "active"
        checked = health["members"].get(str(doc.body.get("member_id"))) if active else None
        members.append(member_view(doc.body, scaled if active else None, now, checked))
    network_map = state.read("network-map/current.json")
    return {
        "coordinator": coordinator_status(leases),
        "network_map_version": int(network_map.body.get("version", 0)) if network_map else 0,
        "members": sorted(members, key=lambda m: str(m["member_id"])),
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
