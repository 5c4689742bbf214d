"""The run over this member's own keys: plan each, then warn, start, retire, publish and move on.

Each key is planned with the pure plan (``shared.decisions.rotation``) from its entry on the member's
record (``keys.{kind}``), knowing what is published. Every stage is written to the record (fenced,
If-Match) before the next begins, and every effect is "make it so": a new version is tagged with its
rotation id, so a stopped run finds it instead of creating another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.decisions.rotation import (
    Action,
    KeyPolicy,
    KeyView,
    Move,
    Plan,
    Rotation,
    Stage,
    Why,
    is_published,
    move_on,
    outside_chain,
    plan,
    rotation_id,
)
from shared.errors import FencedError
from shared.naming import KEY_KINDS, key_name
from shared.ports.keys import KeyVersion
from shared.services.records import iso_time, key_entry, member_path, parse_time, update_record
from shared.services.rotation.governance import GovernanceSide, rotate_proposal_id
from shared.services.rotation.publication import KeysPublisher
from shared.services.rotation.report import KeyResult, Result
from shared.services.rotation.wiring import Wiring

HISTORY_KEPT = 5


def key_view(name: str, kind: str, entry: dict[str, Any], published: bool) -> KeyView:
    rotation = entry.get("rotation")
    history = entry.get("rotations") or []
    last = rotation or (history[-1] if history else {})
    return KeyView(
        name=name,
        kind=kind,
        version=str(entry.get("version")),
        # A key's age runs from when it became current (rotated_at, on the control plane's clock).
        created_at=parse_time(entry.get("rotated_at") or entry.get("created_at")) or datetime.min.replace(tzinfo=UTC),
        rotation=Rotation(
            id=str(rotation["id"]),
            stage=Stage(rotation["stage"]),
            from_version=str(rotation["from_version"]),
            request_id=rotation.get("request_id"),
            retire_after=parse_time(rotation.get("retire_after")),
        )
        if rotation
        else None,
        published=published,
        warned_version=entry.get("warned_version"),
        last_request_id=last.get("request_id"),
    )


@dataclass
class _Pass:
    """One pass over the keys: its plans, the record's key entries as last written, and what it did."""

    member_id: str
    token: int
    plans: dict[str, Plan]
    entries: dict[str, dict[str, Any]]
    now: datetime
    at: str
    results: dict[str, KeyResult] = field(default_factory=dict)

    def due(self, action: Action) -> list[str]:
        return [kind for kind, p in self.plans.items() if p.action is action]

    def result(self, kind: str, action: Result, reason: Why, message: str) -> None:
        self.results[kind] = KeyResult(self.member_id, key_name(self.member_id, kind), kind, action, reason, message)


@dataclass
class MemberKeys:
    wiring: Wiring
    policies: Mapping[str, KeyPolicy]
    governance: GovernanceSide
    publisher: KeysPublisher

    def _shown(self, kind: str, entry: dict[str, Any], chain_kid: str | None) -> bool:
        """Is what the entry's stage needs published? (see ``KeyView.published``)"""
        previous = entry["previous"]["kid"] if entry.get("previous") else None
        document = self.publisher.shown_kids(kind) if kind != "governance" else []
        return is_published(kind, entry.get("kid"), previous, chain_kid=chain_kid, document_kids=document)

    def plans(self, record: dict[str, Any], force: bool, request_id: str | None) -> list[tuple[str, Plan]]:
        w = self.wiring
        plans = []
        now = w.clock.now()
        for kind in KEY_KINDS:
            entry = (record.get("keys") or {}).get(kind)
            if kind not in self.policies or not entry or not entry.get("kid"):
                continue
            chain_kid = self.governance.chain_kid() if kind == "governance" else None
            view = key_view(key_name(w.member_id, kind), kind, entry, self._shown(kind, entry, chain_kid))
            decided = plan(view, self.policies[kind], now, force=force, request_id=request_id)
            plans.append((kind, outside_chain(decided, view, w.member_id, in_chain=chain_kid is not None)))
        return plans

    def _write(self, token: int, entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Put ``entries`` on the member's record, refused once a newer coordinator exists."""
        w = self.wiring
        w.fence(token)
        doc = update_record(
            w.state, member_path(w.member_id),
            lambda body: {**body, "keys": {**(body.get("keys") or {}), **entries}},
        )  # fmt: skip
        if doc is None:
            raise FencedError(f"{member_path(w.member_id)} vanished during a key rotation")
        return doc.body

    def rotate(self, token: int, force: bool, request_id: str | None) -> list[KeyResult]:
        """One pass over this member's keys, each stage written before the next: warn, start, retire,
        publish what the others need, then move on what is now published."""
        w = self.wiring
        body = w.read(member_path(w.member_id)) or {}
        plans = dict(self.plans(body, force, request_id))  # planned again under the lease
        run = _Pass(w.member_id, token, plans, dict(body.get("keys") or {}), w.clock.now(), iso_time(w.clock.now()))
        self._warn(run)
        self._start(run, force, request_id)
        self._retire(run)
        # Publish what the others need: the keys document, and a new governance key's rotate proposal.
        self.publisher.publish(token, run.entries)
        governance = run.entries.get("governance") or {}
        if (governance.get("rotation") or {}).get("stage") == Stage.ANNOUNCED.value:
            self.governance.propose(governance)
        self._move_on(run)
        me = w.member_id
        return [
            run.results.get(kind) or KeyResult(me, key_name(me, kind), kind, Result.of(p.action), p.reason, p.message)
            for kind, p in plans.items()
        ]

    def _warn(self, run: _Pass) -> None:
        """``key.expiring``, once per version: the version warned about is recorded."""
        me = run.member_id
        warn = run.due(Action.WARN)
        for kind in warn:
            entry, p = run.entries[kind], run.plans[kind]
            self.wiring.events.emit(
                "key.expiring", me, (entry["kid"],), key_name=key_name(me, kind), kind=kind,
                version=entry["version"], due_at=iso_time(p.due_at) if p.due_at else None,
            )  # fmt: skip
            run.result(kind, Result.WARN, p.reason, p.message)
        if warn:
            entries = run.entries
            run.entries = self._write(run.token, {k: {**entries[k], "warned_version": entries[k]["version"]}
                                                  for k in warn})["keys"]  # fmt: skip

    def _start(self, run: _Pass, force: bool, request_id: str | None) -> None:
        """The intent recorded first, then the new version (found again if a stopped run made it) made
        current with the old kept as ``previous``."""
        me, at = run.member_id, run.at
        start = run.due(Action.START)
        if not start:
            return
        entries = run.entries
        intents = {
            kind: entries[kind].get("rotation") or {
                "id": rotation_id(key_name(me, kind), str(entries[kind]["version"])),
                "stage": Stage.STARTED.value, "from_version": entries[kind]["version"],
                "reason": run.plans[kind].reason, "request_id": request_id if force else None, "started_at": at,
            }
            for kind in start
        }  # fmt: skip
        entries = self._write(run.token, {k: {**entries[k], "rotation": intents[k]} for k in start})["keys"]
        run.entries = entries
        announced = {}
        for kind in start:
            entry, intent = entries[kind], intents[kind]
            key = self._new_version(kind, intent)
            previous = {k: entry.get(k) for k in ("kid", "version", "public_jwk", "created_at")}
            rotation = {**intent, "stage": Stage.ANNOUNCED.value, "to_version": key.version}
            if kind == "governance":
                rotation["proposal_id"] = rotate_proposal_id(me, key.version)
            announced[kind] = {
                **{k: v for k, v in entry.items() if k != "warned_version"}, **key_entry(key, at),
                "previous": previous, "rotation": rotation,
            }  # fmt: skip
            said = f"v{key.version[:8]} created beside v{str(intent['from_version'])[:8]}"
            run.result(kind, Result.START, run.plans[kind].reason, f"{key_name(me, kind)}: {said}")
        run.entries = self._write(run.token, announced)["keys"]

    def _retire(self, run: _Pass) -> None:
        """The overlap is over: ``previous`` leaves the record (and so the keys document) before it is disabled."""
        retire = run.due(Action.RETIRE)
        if not retire:
            return
        retiring = {}
        for kind in retire:
            entry = run.entries[kind]
            rotation = {**entry["rotation"], "stage": Stage.RETIRING.value, "retiring": entry.get("previous")}
            retiring[kind] = {**{k: v for k, v in entry.items() if k != "previous"}, "rotation": rotation}
            run.result(kind, Result.RETIRE, run.plans[kind].reason, run.plans[kind].message)
        run.entries = self._write(run.token, retiring)["keys"]

    def _move_on(self, run: _Pass) -> None:
        """What is now published moves on: its overlap starts (``key.rotated``), or its old version is
        disabled, never deleted (``key.retired``)."""
        w, me, at = self.wiring, run.member_id, run.at
        moved: dict[str, dict[str, Any]] = {}
        for kind in KEY_KINDS:
            entry = run.entries.get(kind) or {}
            rotation = entry.get("rotation") or {}
            name = key_name(me, kind)
            stage = Stage(rotation["stage"]) if rotation.get("stage") else None
            under_way = stage in (Stage.ANNOUNCED, Stage.RETIRING)
            chain_kid = self.governance.chain_kid() if kind == "governance" and under_way else None
            old = rotation.get("retiring") or {}
            step = move_on(kind, stage, shown=under_way and self._shown(kind, entry, chain_kid),
                           old_listed=chain_kid == old.get("kid"))  # fmt: skip
            if step.move is Move.AWAIT:
                run.result(kind, Result.AWAITING, step.reason,
                           f"{name}: {rotation.get('proposal_id')} is proposed; v{str(rotation['from_version'])[:8]} "
                           "signs until a verified version lists the new kid")  # fmt: skip
            elif step.move is Move.PUBLISH:
                retire_after = iso_time(run.now + self.policies[kind].overlap)
                moved[kind] = {**entry, "rotation": {**rotation, "stage": Stage.PUBLISHED.value, "published_at": at,
                                                     "retire_after": retire_after}}  # fmt: skip
                where = "listed by the chain" if kind == "governance" else "published"
                w.events.emit(
                    "key.rotated", me, (rotation["id"],), key_name=name, kind=kind,
                    from_version=rotation["from_version"], to_version=rotation.get("to_version"),
                    retire_after=retire_after, reason=rotation.get("reason"), request_id=rotation.get("request_id"),
                    chain_version=self.governance.chain_version() if kind == "governance" else None,
                )  # fmt: skip
                run.result(kind, Result.ROTATED, step.reason,
                           f"{name}: v{str(rotation.get('to_version'))[:8]} {where} beside "
                           f"v{str(rotation['from_version'])[:8]} until {retire_after}")  # fmt: skip
            elif step.move is Move.DISABLE:  # never while the chain lists the old kid: the member signs with it
                version = str(old.get("version") or rotation["from_version"])
                current = w.keys.get_key(name, version)
                if current is not None and current.enabled:
                    w.keys.set_enabled(name, version, enabled=False)
                done = {k: v for k, v in rotation.items() if k not in ("stage", "retiring")}
                history = [*(entry.get("rotations") or []), {**done, "retired_at": at}][-HISTORY_KEPT:]
                moved[kind] = {**{k: v for k, v in entry.items() if k != "rotation"}, "rotations": history}
                w.events.emit("key.retired", me, (rotation["id"], "retired"), key_name=name, kind=kind,
                              version=version)  # fmt: skip
                run.result(kind, Result.RETIRED, step.reason, f"{name}: v{version[:8]} disabled (kept, never deleted)")
        if moved:
            self._write(run.token, moved)

    def _new_version(self, kind: str, intent: dict[str, Any]) -> KeyVersion:
        """The rotation's new version: the one a stopped run created (found by its tag), else a new one."""
        w = self.wiring
        name = key_name(w.member_id, kind)
        for version in reversed(w.keys.list_versions(name)):
            if version.tags.get("rotation_id") == intent["id"] and version.enabled:
                return version
        tags = {"rotation_id": str(intent["id"]), "kind": kind, "member_id": w.member_id}
        return w.keys.create_key(name, "EC", tags=tags)
