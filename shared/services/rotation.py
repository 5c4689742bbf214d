"""Key rotation: what is due rotates in Key Vault, the map carries old and new, the old retires.

One run, on the coordinator only (the caller passes its fencing token), for every active member or
one named member, and for the network-map signer:
1. plan each key with the pure plan (``shared.decisions.rotation``) from its entry on the member
   record (``keys.{kind}``) or on the signer's record (``network-map/signer.json``);
2. per member, under its lease (so a rotation never interleaves with an onboarding step or another
   rotation of that member): announce ``key.expiring`` once per version; start what is due: record
   the intent, create the new version (non-exportable, tagged with the rotation id, so a stopped
   rotation finds it instead of creating another), make it current with the old kept as
   ``previous``; retire what has served its overlap: ``previous`` off the record;
3. publish the network map once for the whole run (rebuilt from the records; a no-op when right);
4. per member again: a rotation whose map now carries old and new is ``published`` (``key.rotated``);
   one whose map has dropped the old version disables it (never deletes) and is done (``key.retired``).

Every stage is stored before the next begins and every effect is "make it so", so a run stopped
anywhere resumes where it stopped, and a repeated tick or request rotates once. Writes of rotation
state are refused once a newer coordinator's token exists (the lease is checked before each write).

The signer's record has the same entry shape; while its rotation is announced or published, the
outgoing version still signs the map and the map announces the incoming one (``next_signing_key``),
so a node that trusts the current signer learns the next one from a map it can verify.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.decisions.rotation import Action, KeyPolicy, KeyView, Plan, Rotation, Stage, plan, rotation_id
from shared.errors import BusyError, FencedError
from shared.messages import KeyRotationRequest, Rejection, parse
from shared.naming import KEY_KINDS, NETWORK_MAP_SIGNER, key_name
from shared.ports.clock import Clock
from shared.ports.keys import KeyStore, KeyVersion
from shared.ports.leases import LeaseStore
from shared.ports.queues import MessageSender
from shared.ports.state import StateStore
from shared.services.leadership import COORDINATOR, FencedWriter, member_lock
from shared.services.network_map import (
    MAP_PATH,
    SIGNER_KIND,
    SIGNER_PATH,
    NetworkMapPublisher,
)
from shared.services.records import (
    Events,
    Rejections,
    active_members,
    iso_time,
    key_entry,
    member_path,
    parse_time,
    update_record,
)

log = logging.getLogger(__name__)

STATE_PATH = "rotation/state.json"
#: Where `consortium rotate-keys` posts: {"request_id", "member_id"?, "force"?}.
REQUESTS = "key-rotation-requests"
#: Every kind a policy exists for: the members' three and the consortium's map signer.
ALL_KINDS = (*KEY_KINDS, SIGNER_KIND)
HISTORY_KEPT = 5
RECENT_LIMIT = 100
#: Actions that change a record before the map is published.
_BEFORE_PUBLISH = (Action.WARN, Action.START, Action.RETIRE)
#: Actions that need the map published and a second look afterwards.
_AFTER_PUBLISH = (Action.START, Action.PUBLISH, Action.RETIRE, Action.FINISH)


@dataclass(frozen=True)
class KeyResult:
    """What a run did with one key: the plan's action and reason, and a sentence for people."""

    member_id: str | None
    key: str
    kind: str
    action: str
    reason: str
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
    map_version: int | None = None
    #: Each key's age in days (since it became current) as the run found it, for the key-age gauge.
    key_ages: dict[str, float] = field(default_factory=dict)

    def count_action(self, action: str) -> int:
        return sum(1 for r in self.results if r.action == action)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.action] = counts.get(r.action, 0) + 1
        return counts


@dataclass(frozen=True)
class _Holder:
    """Where keys' entries live: a member's record, or the signer's record (member_id None)."""

    path: str
    member_id: str | None
    kinds: tuple[str, ...]

    def key_name(self, kind: str) -> str:
        return NETWORK_MAP_SIGNER if self.member_id is None else key_name(self.member_id, kind)


def _map_keys(network_map: dict[str, Any] | None, holder: _Holder) -> dict[str, Any]:
    """What the map says of the holder's keys, in the entry shape (``kid``, ``previous``)."""
    if network_map is None:
        return {}
    if holder.member_id is None:
        signer = {"kid": network_map.get("signing_key_id")}
        announced = network_map.get("next_signing_key")
        if announced:  # overlap: the outgoing version signs, the incoming is announced
            signer = {"kid": announced.get("kid"), "previous": {"kid": network_map.get("signing_key_id")}}
        return {SIGNER_KIND: signer}
    for entry in network_map.get("members") or []:
        if entry.get("member_id") == holder.member_id:
            return dict(entry.get("keys") or {})
    return {}


def _in_map(entry: dict[str, Any], shown: dict[str, Any] | None) -> bool:
    """Does the map show this entry as its stage needs: the current kid, and ``previous`` iff the entry has one."""
    if not shown or shown.get("kid") != entry.get("kid"):
        return False
    previous, shown_previous = entry.get("previous") or {}, shown.get("previous") or {}
    return bool(shown_previous.get("kid") == previous.get("kid"))


def key_view(name: str, kind: str, entry: dict[str, Any], shown: dict[str, Any] | None) -> KeyView:
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
        in_map=_in_map(entry, shown),
        warned_version=entry.get("warned_version"),
        last_request_id=last.get("request_id"),
    )


@dataclass
class KeyRotator:
    state: StateStore
    keys: KeyStore
    leases: LeaseStore
    queues: MessageSender
    clock: Clock
    policies: Mapping[str, KeyPolicy]
    holder: str
    lease_seconds: int = 15
    workers: int = 8
    events: Events = field(init=False)
    rejections: Rejections = field(init=False)
    publisher: NetworkMapPublisher = field(init=False)
    fenced: FencedWriter = field(init=False)
    #: One run at a time on this instance: the timer and a request never do the same step twice over.
    _running: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.events = Events(self.queues, self.clock)
        self.rejections = Rejections(self.state, self.events, self.clock)
        self.publisher = NetworkMapPublisher(self.state, self.keys, self.clock)
        self.fenced = FencedWriter(self.state, self.leases)

    # ------------------------------------------------------------------------------- requests

    def take_request(
        self, raw: str | bytes, token: int, check: Callable[[], None] = lambda: None
    ) -> RotationRun | Rejection:
        """A ``key-rotation-requests`` message, on the coordinator: the run it asks for, or why it was refused.

        Bad input and a member that is not active are recorded as rejections (the message completes);
        a member busy with another step raises ``BusyError``, so the host delivers the request again.
        """
        request = parse(KeyRotationRequest, raw)
        if isinstance(request, Rejection):
            self.rejections.record(REQUESTS, raw, request)
            return request
        if request.member_id is not None:
            record = self._read(member_path(request.member_id))
            status = (record or {}).get("status")
            if status != "active" or (record or {}).get("offboarding"):
                why = f"{request.member_id} is {status or 'not a member'}; only active members' keys rotate"
                refused = Rejection("not_active", why, "member_id", request.member_id, request.request_id)
                self.rejections.record(REQUESTS, raw, refused)
                return refused
        run = self.run(
            token, check, member_id=request.member_id, force=request.force, request_id=request.request_id,
            trigger="request",
        )  # fmt: skip
        if run.busy:
            raise BusyError(f"rotation request {request.request_id}: {', '.join(run.busy)} busy; retrying later")
        return run

    # ----------------------------------------------------------------------------------- the run

    def run(
        self,
        token: int,
        check: Callable[[], None] = lambda: None,
        *,
        member_id: str | None = None,
        force: bool = False,
        request_id: str | None = None,
        trigger: str = "schedule",
    ) -> RotationRun:
        """Rotate what is due (or, with ``force``, everything named), resuming what was under way."""
        with self._running:
            return self._run(token, check, member_id, force, request_id, trigger)

    def _run(
        self,
        token: int,
        check: Callable[[], None],
        member_id: str | None,
        force: bool,
        request_id: str | None,
        trigger: str,
    ) -> RotationRun:
        self._fence(token)
        network_map = self._read(MAP_PATH)
        holders = self._holders(member_id, network_map, token)
        run = RotationRun()
        first: dict[str, list[tuple[str, Plan]]] = {}
        now = self.clock.now()
        for h, body in holders:
            first[h.path] = self._plans(h, body, network_map, force, request_id)
            for kind in h.kinds:
                entry = (body.get("keys") or {}).get(kind) or {}
                became = parse_time(entry.get("rotated_at") or entry.get("created_at"))
                if became is not None:
                    run.key_ages[h.key_name(kind)] = round((now - became) / timedelta(days=1), 3)
        busy: list[str] = []

        def phase(h: _Holder, work: Callable[[_Holder], list[KeyResult]]) -> list[KeyResult]:
            check()
            try:
                if h.member_id is None:
                    return work(h)
                with member_lock(self.leases, h.member_id, self.holder, self.lease_seconds) as term:
                    results = work(h)
                    term.check()
                    return results
            except BusyError:
                busy.append(h.member_id or SIGNER_KIND)
                return []

        def before(h: _Holder) -> list[KeyResult]:
            return self._before_publish(h, token, network_map, force, request_id)

        acting = [h for h, _ in holders if any(p.action in _BEFORE_PUBLISH for _, p in first[h.path])]
        done_before = {r.key: r for r in self._each(acting, lambda h: phase(h, before))}
        needs_map = [h for h, _ in holders if any(p.action in _AFTER_PUBLISH for _, p in first[h.path])]
        if needs_map:
            check()
            self._fence(token)
            published = self.publisher.publish()
            if published.changed:
                self.events.emit(
                    "network_map.published", None, ("version", published.version), version=published.version
                )
            run.map_version = published.version
            network_map = published.document

        def after(h: _Holder) -> list[KeyResult]:
            return self._after_publish(h, token, network_map)

        done_after = {r.key: r for r in self._each(needs_map, lambda h: phase(h, after))}
        run.busy = sorted(set(busy))
        for h, _ in holders:
            for kind, p in first[h.path]:
                name = h.key_name(kind)
                result = done_after.get(name) or done_before.get(name)
                if result is None and (h.member_id or SIGNER_KIND) in run.busy and p.action is not Action.NONE:
                    why = f"{name}: {h.member_id} is busy with another step; the next run retries"
                    result = KeyResult(h.member_id, name, kind, "busy", "member_busy", why)
                run.results.append(result or KeyResult(h.member_id, name, kind, p.action.value, p.reason, p.message))
        self._record_run(token, run, trigger=trigger, request_id=request_id, force=force, member_id=member_id)
        return run

    def _each(self, holders: list[_Holder], work: Callable[[_Holder], list[KeyResult]]) -> list[KeyResult]:
        if not holders:
            return []
        if len(holders) == 1 or self.workers <= 1:
            return [r for h in holders for r in work(h)]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(holders))) as pool:
            return [r for results in pool.map(work, holders) for r in results]

    def _read(self, path: str) -> dict[str, Any] | None:
        doc = self.state.read(path)
        return doc.body if doc else None

    def _fence(self, token: int) -> None:
        current = self.leases.read(COORDINATOR).fencing_token
        if current > token:
            raise FencedError(f"key rotation with fencing token {token} refused: token {current} is newer")

    def _holders(
        self, member_id: str | None, network_map: dict[str, Any] | None, token: int
    ) -> list[tuple[_Holder, dict[str, Any]]]:
        kinds = tuple(k for k in KEY_KINDS if k in self.policies)
        holders: list[tuple[_Holder, dict[str, Any]]] = []
        if member_id is not None:
            record = self._read(member_path(member_id))
            members = [record] if record and record.get("status") == "active" and not record.get("offboarding") else []
        else:
            members = active_members(self.state)
        for record in sorted(members, key=lambda r: str(r["member_id"])):
            holders.append((_Holder(member_path(record["member_id"]), record["member_id"], kinds), record))
        if member_id is None and SIGNER_KIND in self.policies:
            signer = self._signer_record(network_map, token)
            if signer is not None:
                holders.append((_Holder(SIGNER_PATH, None, (SIGNER_KIND,)), signer))
        return holders

    def _signer_record(self, network_map: dict[str, Any] | None, token: int) -> dict[str, Any] | None:
        """The signer's record; adopted from the key the map is signed with on the first run."""
        record = self._read(SIGNER_PATH)
        if record is not None or network_map is None:
            return record  # no map yet: nothing has been signed, nothing to rotate
        kid = str(network_map.get("signing_key_id") or "")
        key = self.keys.get_key(NETWORK_MAP_SIGNER, kid.rstrip("/").rsplit("/", 1)[-1]) if kid else None
        if key is None:
            return None
        entry = key_entry(key, iso_time(key.created_on))
        doc = self.fenced.update(SIGNER_PATH, token, lambda body: body or {"keys": {SIGNER_KIND: entry}})
        return doc.body

    def _plans(
        self, h: _Holder, body: dict[str, Any], network_map: dict[str, Any] | None, force: bool, request_id: str | None
    ) -> list[tuple[str, Plan]]:
        shown = _map_keys(network_map, h)
        plans = []
        now = self.clock.now()
        for kind in h.kinds:
            entry = (body.get("keys") or {}).get(kind)
            if not entry or not entry.get("kid"):
                continue
            view = key_view(h.key_name(kind), kind, entry, shown.get(kind))
            plans.append((kind, plan(view, self.policies[kind], now, force=force, request_id=request_id)))
        return plans

    # ----------------------------------------------------------------------------------- writes

    def _write(
        self, h: _Holder, token: int, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> dict[str, Any]:
        """Change the holder's record, refused once a newer coordinator exists."""
        self._fence(token)
        if h.member_id is None:

            def fenced(body: dict[str, Any] | None) -> dict[str, Any]:
                return change(body or {}) or (body or {})

            return self.fenced.update(h.path, token, fenced).body
        doc = update_record(self.state, h.path, change)
        if doc is None:
            raise FencedError(f"{h.path} vanished during a key rotation")
        return doc.body

    @staticmethod
    def _with_entries(body: dict[str, Any], entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {**body, "keys": {**(body.get("keys") or {}), **entries}}

    def _before_publish(
        self, h: _Holder, token: int, network_map: dict[str, Any] | None, force: bool, request_id: str | None
    ) -> list[KeyResult]:
        body = self._read(h.path) or {}
        plans = dict(self._plans(h, body, network_map, force, request_id))  # re-planned under the lease
        now, at = self.clock.now(), iso_time(self.clock.now())
        entries: dict[str, dict[str, Any]] = dict(body.get("keys") or {})
        results: list[KeyResult] = []

        warn = [k for k, p in plans.items() if p.action is Action.WARN]
        for kind in warn:
            entry, p = entries[kind], plans[kind]
            self.events.emit(
                "key.expiring", h.member_id, (entry["kid"],), key_name=h.key_name(kind), kind=kind,
                version=entry["version"], due_at=iso_time(p.due_at) if p.due_at else None,
            )  # fmt: skip
            results.append(KeyResult(h.member_id, h.key_name(kind), kind, "warn", p.reason, p.message))
        if warn:
            marked = {k: {**entries[k], "warned_version": entries[k]["version"]} for k in warn}
            body = self._write(h, token, lambda b: self._with_entries(b, marked))

        start = [k for k, p in plans.items() if p.action is Action.START]
        if start:
            intents = {}
            for kind in start:
                entry, p = entries[kind], plans[kind]
                intents[kind] = entry.get("rotation") or {
                    "id": rotation_id(h.key_name(kind), str(entry["version"])),
                    "stage": Stage.STARTED.value,
                    "from_version": entry["version"],
                    "reason": p.reason,
                    "request_id": request_id if force else None,
                    "started_at": at,
                }
            started = {k: {**entries[k], "rotation": intents[k]} for k in start}
            body = self._write(h, token, lambda b: self._with_entries(b, started))
            announced = {}
            for kind in start:
                entry, intent = started[kind], intents[kind]
                key = self._new_version(h, kind, intent)
                retire_after = now + self.policies[kind].overlap
                previous = {k: entry.get(k) for k in ("kid", "version", "public_jwk", "created_at")}
                announced[kind] = {
                    **{k: v for k, v in entry.items() if k not in ("warned_version",)},
                    **key_entry(key, at),
                    "previous": previous,
                    "rotation": {
                        **intent, "stage": Stage.ANNOUNCED.value, "to_version": key.version,
                        "retire_after": iso_time(retire_after),
                    },
                }  # fmt: skip
                results.append(
                    KeyResult(h.member_id, h.key_name(kind), kind, "start", plans[kind].reason,
                              f"{h.key_name(kind)}: v{key.version[:8]} created, v{str(intent['from_version'])[:8]} "
                              f"stays published until {iso_time(retire_after)}")
                )  # fmt: skip
            body = self._write(h, token, lambda b: self._with_entries(b, announced))

        retire = [k for k, p in plans.items() if p.action is Action.RETIRE]
        if retire:
            retiring = {}
            for kind in retire:
                entry = entries[kind]
                rotation = {**entry["rotation"], "stage": Stage.RETIRING.value, "retiring": entry.get("previous")}
                retiring[kind] = {**{k: v for k, v in entry.items() if k != "previous"}, "rotation": rotation}
                p = plans[kind]
                results.append(KeyResult(h.member_id, h.key_name(kind), kind, "retire", p.reason, p.message))
            self._write(h, token, lambda b: self._with_entries(b, retiring))
        return results

    def _new_version(self, h: _Holder, kind: str, intent: dict[str, Any]) -> KeyVersion:
        """The rotation's new version: the one a stopped run created (found by its tag), else a new one."""
        name = h.key_name(kind)
        for version in reversed(self.keys.list_versions(name)):
            if version.tags.get("rotation_id") == intent["id"] and version.enabled:
                return version
        tags = {"rotation_id": str(intent["id"]), "kind": kind}
        if h.member_id is not None:
            tags["member_id"] = h.member_id
        else:
            tags["purpose"] = "network-map"
        return self.keys.create_key(name, "EC", tags=tags)

    def _after_publish(self, h: _Holder, token: int, network_map: dict[str, Any] | None) -> list[KeyResult]:
        body = self._read(h.path) or {}
        shown = _map_keys(network_map, h)
        at = iso_time(self.clock.now())
        results: list[KeyResult] = []
        published, finished = {}, {}
        for kind in h.kinds:
            entry = (body.get("keys") or {}).get(kind) or {}
            rotation = entry.get("rotation") or {}
            name = h.key_name(kind)
            if not _in_map(entry, shown.get(kind)):
                continue
            if rotation.get("stage") == Stage.ANNOUNCED.value:
                stage = {"stage": Stage.PUBLISHED.value, "published_at": at}
                published[kind] = {**entry, "rotation": {**rotation, **stage}}
                self.events.emit(
                    "key.rotated", h.member_id, (rotation["id"],), key_name=name, kind=kind,
                    from_version=rotation["from_version"], to_version=rotation.get("to_version"),
                    retire_after=rotation.get("retire_after"), reason=rotation.get("reason"),
                    request_id=rotation.get("request_id"),
                )  # fmt: skip
                new_v, old_v = str(rotation.get("to_version"))[:8], str(rotation["from_version"])[:8]
                if h.member_id is None:
                    said = f"v{new_v} announced as the next signer; v{old_v} signs until {rotation.get('retire_after')}"
                else:
                    said = f"v{new_v} in the map beside v{old_v} until {rotation.get('retire_after')}"
                results.append(KeyResult(h.member_id, name, kind, "rotated", "published", f"{name}: {said}"))
            elif rotation.get("stage") == Stage.RETIRING.value:
                old = rotation.get("retiring") or {}
                version = str(old.get("version") or rotation["from_version"])
                current = self.keys.get_key(name, version)
                if current is not None and current.enabled:
                    self.keys.set_enabled(name, version, enabled=False)
                done = {k: v for k, v in rotation.items() if k not in ("stage", "retiring")}
                history = [*(entry.get("rotations") or []), {**done, "retired_at": at}][-HISTORY_KEPT:]
                finished[kind] = {**{k: v for k, v in entry.items() if k != "rotation"}, "rotations": history}
                self.events.emit(
                    "key.retired", h.member_id, (rotation["id"], "retired"), key_name=name, kind=kind, version=version
                )
                results.append(
                    KeyResult(h.member_id, name, kind, "retired", "overlap_over",
                              f"{name}: v{version[:8]} disabled (kept, never deleted), out of the map")
                )  # fmt: skip
        if published or finished:
            self._write(h, token, lambda b: self._with_entries(b, {**published, **finished}))
        return results

    def _record_run(
        self, token: int, run: RotationRun, *, trigger: str, request_id: str | None, force: bool, member_id: str | None
    ) -> None:
        at = iso_time(self.clock.now())
        acted = [
            {"at": at, **r.as_json()} for r in run.results if r.action not in (Action.NONE.value, Action.WAIT.value)
        ]
        summary = {
            "at": at, "trigger": trigger, "request_id": request_id, "force": force, "member_id": member_id,
            "counts": run.summary(), "busy": run.busy, "map_version": run.map_version,
        }  # fmt: skip

        def change(body: dict[str, Any] | None) -> dict[str, Any]:
            body = body or {}
            recent = [*(body.get("recent") or []), *acted][-RECENT_LIMIT:]
            return {**body, "updated_at": at, "last_run": summary, "recent": recent}

        self.fenced.update(STATE_PATH, token, change)
        if request_id is not None:
            report = {**summary, "results": [r.as_json() for r in run.results]}
            self.fenced.update(
                request_report_path(request_id),
                token,
                lambda body: {**report, "runs": int((body or {}).get("runs", 0)) + 1},
            )


def request_report_path(request_id: str) -> str:
    """What the coordinator did for a rotation request; ``runs`` counts the deliveries it took."""
    return f"rotation/requests/{request_id}.json"


def rotation_view(state: StateStore, now: datetime) -> dict[str, Any]:
    """The status model's ``rotation`` part: the last run, recent key actions, the signer's key."""
    doc = state.read(STATE_PATH)
    body = doc.body if doc else {}
    signer_doc = state.read(SIGNER_PATH)
    signer = ((signer_doc.body.get("keys") or {}).get(SIGNER_KIND) if signer_doc else None) or {}
    return {
        "updated_at": body.get("updated_at"),
        "last_run": body.get("last_run"),
        "recent": list(reversed((body.get("recent") or [])[-10:])),
        "network_map_signer": key_status(signer, now) if signer else None,
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
    return view
