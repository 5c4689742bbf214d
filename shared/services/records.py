"""What every workflow needs around its state: events, rejections, poison records, record updates.

- ``Events`` posts to ``member-events``. Delivery is at least once (a step that crashed after
  emitting emits again when redelivered), so every event carries a stable ``event_id`` derived
  from what it announces: consumers drop an id they have seen.
- ``Rejections`` records a message that can never succeed, once (keyed by queue and body), where
  ``consortium rejections`` lists it, and announces ``member.rejected`` where a member id is readable.
- ``update_record`` is the read → decide → conditional write loop every state change goes through.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.errors import ConflictError, TransientError
from shared.messages import Rejection
from shared.ports.clock import Clock
from shared.ports.keys import KeyVersion
from shared.ports.queues import MessageSender
from shared.ports.state import Document, StateStore

EVENTS_QUEUE = "member-events"
HISTORY_LIMIT = 50
EXCERPT_CHARS = 512


def member_path(member_id: str) -> str:
    return f"members/{member_id}.json"


def request_path(request_id: str) -> str:
    return f"requests/{request_id}.json"


def stable_id(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]


def iso(clock: Clock) -> str:
    return iso_time(clock.now())


def iso_time(at: datetime) -> str:
    """A UTC time as state stores it: ISO 8601 to the second, ``Z`` for UTC."""
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(text: object) -> datetime | None:
    """A time stored by ``iso_time`` (or any ISO 8601 text) back; None when there is none."""
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None


def key_entry(key: KeyVersion, at: str) -> dict[str, Any]:
    """A Key Vault key version as member records keep it (public part only); ``at``: when it became current."""
    return {
        "name": key.name,
        "kid": key.kid,
        "version": key.version,
        "public_jwk": key.public_jwk,
        "created_at": iso_time(key.created_on),
        "rotated_at": at,
    }


@dataclass
class Events:
    queues: MessageSender
    clock: Clock

    def emit(self, type_: str, member_id: str | None, key: object, **fields: Any) -> dict[str, Any]:
        """Announce ``type_``; ``key`` makes the event id stable across redeliveries of one fact."""
        event = {
            "type": type_,
            "member_id": member_id,
            "at": iso(self.clock),
            "event_id": stable_id(type_, member_id, key),
            **fields,
        }
        self.queues.send(EVENTS_QUEUE, json.dumps(event, separators=(",", ":")))
        return event


@dataclass
class Rejections:
    state: StateStore
    events: Events
    clock: Clock

    def record(self, queue: str, raw: str | bytes, rejection: Rejection) -> dict[str, Any]:
        """Record the refusal once; a redelivered copy of the same message finds it and records nothing."""
        data = raw.encode(errors="replace") if isinstance(raw, str) else raw
        key = rejection_key(queue, data)
        body = {
            "at": iso(self.clock),
            "queue": queue,
            "reason": str(rejection.reason),  # a plain string when stored, whatever enum named it
            "field": rejection.field,
            "message": rejection.message,
            "member_id": rejection.member_id,
            "request_id": rejection.request_id,
            "excerpt": data[:EXCERPT_CHARS].decode(errors="replace"),
            "bytes": len(data),
        }
        try:
            self.state.create(f"rejections/{key}.json", body)
        except ConflictError:
            pass  # already recorded by an earlier delivery; announce again in case that one stopped here
        if rejection.member_id:
            self.events.emit(
                "member.rejected", rejection.member_id, ("message", key),
                scope="message", queue=queue, request_id=rejection.request_id,
                reason=str(rejection.reason), message=rejection.message,
            )  # fmt: skip
        return body

    def list(self, limit: int | None = None) -> list[dict[str, Any]]:
        return list_rejections(self.state, limit)


def rejection_key(queue: str, data: bytes) -> str:
    return stable_id(queue, hashlib.sha256(data).hexdigest())


def rejection_path(queue: str, raw: str | bytes) -> str:
    """Where the rejection of this exact message on ``queue`` is recorded (one per queue and body)."""
    data = raw.encode(errors="replace") if isinstance(raw, str) else raw
    return f"rejections/{rejection_key(queue, data)}.json"


def list_rejections(state: StateStore, limit: int | None = None) -> list[dict[str, Any]]:
    """Recorded rejections, newest first."""
    found = []
    for path in state.list_paths("rejections/"):
        doc = state.read(path)
        if doc is not None:
            found.append(doc.body)
    found.sort(key=lambda r: str(r.get("at")), reverse=True)
    return found[:limit] if limit else found


def with_history(record: dict[str, Any], clock: Clock, status: str, reason: str) -> dict[str, Any]:
    """``record`` moved to ``status``, the change appended to its (bounded) history."""
    history = [*record.get("history", []), {"at": iso(clock), "status": status, "reason": reason}]
    return {
        **record,
        "status": status,
        "status_reason": reason,
        "updated_at": iso(clock),
        "history": history[-HISTORY_LIMIT:],
    }


def update_record(
    state: StateStore,
    path: str,
    change: Callable[[dict[str, Any]], dict[str, Any] | None],
    *,
    attempts: int = 8,
) -> Document | None:
    """Apply ``change`` to the stored document with If-Match, re-reading on a lost race.

    ``change`` returns the new body, or None when nothing needs to change (then nothing is written).
    Returns the document as it stands afterwards, or None when there is no document.
    """
    for _ in range(attempts):
        doc = state.read(path)
        if doc is None:
            return None
        body = change(doc.body)
        if body is None or body == doc.body:
            return doc
        try:
            return state.replace(path, body, doc.etag)
        except ConflictError:
            continue
    raise TransientError(f"{path}: still contended after {attempts} attempts")


def active_members(state: StateStore) -> list[dict[str, Any]]:
    """This deployment's member when it is active and not on its way out (its own storage holds only it)."""
    return [
        doc.body
        for doc in state.read_all("members/")
        if doc.body.get("status") == "active" and not doc.body.get("retiring")
    ]
