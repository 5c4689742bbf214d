"""What a rotation run did, kept for people: per-key results, the run's record, and the status view.

A run's summary and its key actions go to ``rotation/state.json`` (the last run and the most recent
actions); a run asked for by a request also leaves a report under the request's id, which the
``consortium rotate-keys`` command reads back. ``rotation_view`` and ``key_status`` are the status
model's view of the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.decisions.rotation import Action, Why
from shared.ports.state import StateStore
from shared.services.records import iso_time, parse_time
from shared.services.rotation.paths import PUBLISHED_PATH, STATE_PATH, request_report_path
from shared.services.rotation.wiring import Wiring

RECENT_LIMIT = 100


class Result(StrEnum):
    """What a run did with one key: a plan's own action where it stopped there, or what it carried out."""

    NONE = Action.NONE.value  # nothing to do
    WARN = Action.WARN.value  # key.expiring announced
    START = Action.START.value  # a new version created and announced
    PUBLISH = Action.PUBLISH.value
    WAIT = Action.WAIT.value  # in the overlap, or not published yet
    RETIRE = Action.RETIRE.value  # the old version taken off the record
    FINISH = Action.FINISH.value
    AWAITING = "awaiting"  # a new governance key waits for a version of the chain that lists it
    ROTATED = "rotated"  # old and new are published: the overlap started (key.rotated)
    RETIRED = "retired"  # the old version disabled, kept, never deleted
    BUSY = "busy"  # the member's lease was held by another step: nothing done this run

    @classmethod
    def of(cls, action: Action) -> Result:
        return cls(action.value)


@dataclass(frozen=True)
class KeyResult:
    """What a run did with one key: the plan's action and reason, and a sentence for people."""

    member_id: str
    key: str
    kind: str
    action: Result
    reason: Why
    message: str

    def as_json(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id, "key": self.key, "kind": self.kind,
            "action": self.action, "reason": self.reason, "message": self.message,
        }  # fmt: skip


@dataclass
class RotationRun:
    results: list[KeyResult] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    #: The seq of the keys document after the run (None before the first is published).
    keys_document_seq: int | None = None
    #: Each key's age in days (since it became current) as the run found it, for the key-age gauge.
    key_ages: dict[str, float] = field(default_factory=dict)

    def count_action(self, action: Result) -> int:
        return sum(1 for r in self.results if r.action == action)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.action] = counts.get(r.action, 0) + 1
        return counts


@dataclass
class RunRecords:
    """The run's record in the member's state and, for a request, the request's report (both fenced)."""

    wiring: Wiring

    def record(self, token: int, run: RotationRun, *, trigger: str, request_id: str | None, force: bool) -> None:
        w = self.wiring
        at = iso_time(w.clock.now())
        acted = [
            {"at": at, **r.as_json()} for r in run.results if r.action not in (Action.NONE.value, Action.WAIT.value)
        ]
        summary = {
            "at": at, "trigger": trigger, "request_id": request_id, "force": force, "member_id": w.member_id,
            "counts": run.summary(), "busy": run.busy, "keys_document_seq": run.keys_document_seq,
        }  # fmt: skip

        def change(body: dict[str, Any] | None) -> dict[str, Any]:
            body = body or {}
            recent = [*(body.get("recent") or []), *acted][-RECENT_LIMIT:]
            return {**body, "updated_at": at, "last_run": summary, "recent": recent}

        w.fenced.update(STATE_PATH, token, change)
        if request_id is not None:
            report = {**summary, "results": [r.as_json() for r in run.results]}
            w.fenced.update(
                request_report_path(request_id),
                token,
                lambda body: {**report, "runs": int((body or {}).get("runs", 0)) + 1},
            )


def rotation_view(state: StateStore, now: datetime) -> dict[str, Any]:
    """The status model's ``rotation`` part: the last run, recent key actions, the keys document's seq."""
    doc = state.read(STATE_PATH)
    body = doc.body if doc else {}
    published = state.read(PUBLISHED_PATH)
    return {
        "updated_at": body.get("updated_at"),
        "last_run": body.get("last_run"),
        "recent": list(reversed((body.get("recent") or [])[-10:])),
        "keys_document_seq": published.body.get("seq") if published else None,
    }


def key_status(entry: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One key for people: version, when it was made and rotated, its age, and any rotation under way."""
    created = parse_time(entry.get("rotated_at") or entry.get("created_at"))
    rotation = entry.get("rotation") or {}
    view: dict[str, Any] = {
        "version": entry.get("version"),
        "rotated_at": entry.get("rotated_at"),
        "created_at": entry.get("created_at"),
        "age_days": round((now - created) / timedelta(days=1), 2) if created else None,
        "stage": rotation.get("stage", "current"),
    }
    if entry.get("previous"):
        view["previous_version"] = entry["previous"].get("version")
    if rotation.get("retire_after"):
        view["retire_after"] = rotation["retire_after"]
    if rotation.get("proposal_id"):
        view["proposal_id"] = rotation["proposal_id"]
    return view
