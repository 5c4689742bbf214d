"""What the dashboard charts beyond the status model: each scale set's last decision with its inputs.

The status model (``shared.services.status``) keeps only each scale set's last reason and message
and the ten newest changes. The dashboard draws capacity and load over time, so it needs the
figures the autoscaler decided on (capacity, CPU, transactions per minute) at every tick, and as
many recorded changes as there are to seed its chart when the page opens. They are already stored
by the autoscale tick in ``autoscale/state.json``; this module only reads and flattens them, so the
page never depends on the shape of that document. Nothing here writes.
"""

from __future__ import annotations

from typing import Any

from shared.naming import scale_set_name, valid_member_id
from shared.ports.state import StateStore
from shared.services.autoscale import autoscale_view, forecast_error

#: Inputs of a decision that the dashboard shows, as stored by ``shared.decisions.autoscale.decide``.
INPUTS = ("cpu_percent", "tpm", "partial", "protected", "warming")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _whole(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _set_of(decision: dict[str, Any]) -> str:
    """A recorded change names its member; its scale set is named after it."""
    member_id = str(decision.get("member_id"))
    return scale_set_name(member_id) if valid_member_id(member_id) else member_id


def decision_point(name: str, decision: dict[str, Any]) -> dict[str, Any]:
    """One stored decision as a flat point: when, which set, capacity before and after, load, why."""
    inputs = decision.get("inputs") or {}
    before = _whole(inputs.get("capacity"))
    after = _whole(decision.get("capacity"))
    return {
        "at": decision.get("at"),
        "scale_set": name,
        "member_id": decision.get("member_id"),
        "action": decision.get("action"),
        "before": before if before is not None else after,
        "capacity": after,
        "target": _whole(decision.get("target")),
        "desired": _whole(decision.get("desired")),
        "applied": bool(decision.get("applied", False)),
        "reason": decision.get("reason"),
        "message": decision.get("message"),
        "forecast_error": forecast_error(decision),
        "cpu_percent": _number(inputs.get("cpu_percent")),
        "tpm": _number(inputs.get("tpm")),
        **{key: inputs.get(key) for key in INPUTS if key not in ("cpu_percent", "tpm")},
    }


def scaling_view(state: StateStore) -> dict[str, Any]:
    """The autoscaler's last decision per scale set and every recorded change (newest first), flattened."""
    view = autoscale_view(state)
    last = {name: decision_point(name, d) for name, d in sorted(view["last"].items()) if isinstance(d, dict)}
    recent = [decision_point(_set_of(d), d) for d in reversed(view["recent"]) if isinstance(d, dict)]
    return {"updated_at": view["updated_at"], "sets": last, "recent": recent}
