"""Key rotation of this member's own keys, in its own vault: new version, published, old disabled.

A deployment serves one member (CONTRACT.md) and rotates only that member's identity, TLS and
governance keys, in its own Key Vault. One run, on the member's coordinator (the caller passes its
fencing token), under the member's lease (so it never interleaves with an onboarding step):
1. plan each key with the pure plan (``shared.decisions.rotation``) from its entry on the member's
   record (``keys.{kind}``), knowing what is published: the member's signed keys document for TLS
   and identity, the verified chain for the governance key;
2. announce ``key.expiring`` once per version; start what is due: record the intent, create the new
   version (non-exportable, tagged with the rotation id, so a stopped rotation finds it instead of
   creating another), make it current with the old kept as ``previous``; take ``previous`` off the
   record for what has served its overlap;
3. publish: the keys document (``keys.json`` in the member's ``consortium-public``, signed with the
   governance key the chain lists; rewritten only when it changes), and for a new governance key a
   ``rotate`` proposal through ``Consortium.propose``: the consortium tick pre-signs it with the old
   key and the new, the other members sign it by themselves (a rotate needs no approval), and it
   becomes a version like any other;
4. what is now published moves on: a TLS or identity rotation whose document shows old and new, or a
   governance rotation once a verified version lists the new kid, is ``published`` (``key.rotated``)
   and its overlap starts; a retiring one whose old version is no longer published has the old
   version disabled (never deleted) and is done (``key.retired``).

Until a verified version lists the new governance kid, the member keeps signing with the kid the
chain lists (``Consortium.signing_key``), so that old version is never disabled before: the plan does
not retire what is not published, and the retire step checks the chain again before disabling.

Every stage is stored before the next begins and every effect is "make it so", so a run stopped
anywhere resumes where it stopped, and a repeated tick or request rotates once. Writes of rotation
state are refused once a newer coordinator's token exists (the lease is checked before each write).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.decisions import chain, published_keys
from shared.decisions import consortium as rules
from shared.decisions.onboarding import Change, change_about
from shared.decisions.rotation import Action, KeyPolicy, KeyView, Plan, Rotation, Stage, plan, rotation_id
from shared.errors import BusyError, FencedError, TransientError
from shared.messages import KeyRotationRequest, Rejection, parse
from shared.naming import KEY_KINDS, key_name
from shared.ports.clock import Clock
from shared.ports.keys import KeyStore, KeyVersion
from shared.ports.leases import LeaseStore
from shared.ports.queues import MessageSender
from shared.ports.state import StateStore
from shared.reasons import Reason
from shared.services.consortium import Consortium, VersionAdopted
from shared.services.leadership import COORDINATOR, FencedWriter, member_lock
from shared.services.records import Events, Rejections, iso_time, key_entry, member_path, parse_time, update_record

log = logging.getLogger(__name__)

STATE_PATH = "rotation/state.json"
#: What the keys document last published said (its seq and fingerprint), in the member's own state.
PUBLISHED_PATH = "rotation/keys-document.json"
#: Where `consortium rotate-keys` posts, in this member's own storage: {"request_id", "force"?}.
REQUESTS = "key-rotation-requests"
HISTORY_KEPT = 5
RECENT_LIMIT = 100


@dataclass(frozen=True)
class KeyResult:
    """What a run did with one key: the plan's action and reason, and a sentence for people."""

    member_id: str
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
    #: The seq of the keys document after the run (None before the first is published).
    keys_document_seq: int | None = None
    #: Each key's age in days (since it became current) as the run found it, for the key-age gauge.
    key_ages: dict[str, float] = field(default_factory=dict)

    def count_action(self, action: str) -> int:
        return sum(1 for r in self.results if r.action == action)

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.action] = counts.get(r.action, 0) + 1
        return counts


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


def rotate_proposal_id(member_id: str, to_version: str) -> str:
    """The rotate proposal of one new governance version: the same id however often it is proposed."""
    return f"prop-rotate-{member_id}-{to_version[:24]}"


def _key_ref(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"kid": entry["kid"], "jwk": dict(entry["public_jwk"])}


@dataclass
class KeyRotator:
    member_id: str
    state: StateStore
    keys: KeyStore
    leases: LeaseStore
    queues: MessageSender
    clock: Clock
    policies: Mapping[str, KeyPolicy]
    holder: str
    #: This member's part in the consortium: its verified chain, its proposals, its published container.
    consortium: Consortium
    lease_seconds: int = 15
    events: Events = field(init=False)
    rejections: Rejections = field(init=False)
    fenced: FencedWriter = field(init=False)
    #: One run at a time on this instance: the timer and a request never do the same step twice over.
    _running: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.events = Events(self.queues, self.clock)
        self.rejections = Rejections(self.state, self.events, self.clock)
        self.fenced = FencedWriter(self.state, self.leases)

    # ------------------------------------------------------------------------------- requests

    def take_request(
        self, raw: str | bytes, token: int, check: Callable[[], None] = lambda: None
    ) -> RotationRun | Rejection:
        """A ``key-rotation-requests`` message, on the coordinator: the run it asks for, or why it was refused.

        Bad input, another member's id and a member that is not active are recorded as rejections (the
        message completes); the member busy with another step raises ``BusyError``, so the host
        delivers the request again.
        """
        request = parse(KeyRotationRequest, raw)
        if isinstance(request, Rejection):
            self.rejections.record(REQUESTS, raw, request)
            return request
        refused = None
        if request.member_id is not None and request.member_id != self.member_id:
            why = f"this deployment rotates only {self.member_id}'s keys, not {request.member_id}'s"
            refused = Rejection(Reason.NOT_THIS_MEMBER, why, "member_id", request.member_id, request.request_id)
        elif not self._active(self._read(member_path(self.member_id))):
            status = (self._read(member_path(self.member_id)) or {}).get("status")
            why = f"{self.member_id} is {status or 'not a member'}; only an active member's keys rotate"
            refused = Rejection(Reason.NOT_ACTIVE, why, "member_id", self.member_id, request.request_id)
        if refused is not None:
            self.rejections.record(REQUESTS, raw, refused)
            return refused
        run = self.run(token, check, force=request.force, request_id=request.request_id, trigger="request")
        if run.busy:
            raise BusyError(f"rotation request {request.request_id}: {self.member_id} busy; retrying later")
        return run

    def version_adopted(self, event: VersionAdopted) -> None:
        """A version was adopted (the consortium's announcement): if it rotated this member's entry, move
        the rotation on now (a request to its own queue) rather than at the next scheduled check."""
        if change_about(self.member_id, event.version) != Change.ROTATED:
            return
        body = {"request_id": f"rot-adopted-v{event.version.version}", "force": False}
        self.queues.send(REQUESTS, json.dumps(body, separators=(",", ":")))

    # ----------------------------------------------------------------------------------- the run

    def run(
        self,
        token: int,
        check: Callable[[], None] = lambda: None,
        *,
        force: bool = False,
        request_id: str | None = None,
        trigger: str = "schedule",
    ) -> RotationRun:
        """Rotate what is due (or, with ``force``, every key whose policy is on), resuming what was under way."""
        with self._running:
            self._fence(token)
            run = RotationRun()
            record = self._read(member_path(self.member_id))
            if record is not None and self._active(record):
                now = self.clock.now()
                for kind, entry in (record.get("keys") or {}).items():
                    became = parse_time(entry.get("rotated_at") or entry.get("created_at"))
                    if became is not None:
                        run.key_ages[key_name(self.member_id, kind)] = round((now - became) / timedelta(days=1), 3)
                check()
                try:
                    with member_lock(self.leases, self.member_id, self.holder, self.lease_seconds) as term:
                        run.results = self._rotate(token, force, request_id)
                        term.check()
                except BusyError:
                    run.busy = [self.member_id]
                    run.results = [
                        KeyResult(self.member_id, key_name(self.member_id, kind), kind, "busy", "member_busy",
                                  f"{self.member_id} is busy with another step; the next run retries")
                        for kind, p in self._plans(record, force, request_id) if p.action is not Action.NONE
                    ]  # fmt: skip
            published = self._read(PUBLISHED_PATH)
            run.keys_document_seq = int(published["seq"]) if published else None
            self._record_run(token, run, trigger=trigger, request_id=request_id, force=force)
            return run

    @staticmethod
    def _active(record: dict[str, Any] | None) -> bool:
        return bool(record) and record.get("status") == "active" and not record.get("offboarding")  # type: ignore[union-attr]

    def _read(self, path: str) -> dict[str, Any] | None:
        doc = self.state.read(path)
        return doc.body if doc else None

    def _fence(self, token: int) -> None:
        current = self.leases.read(COORDINATOR).fencing_token
        if current > token:
            raise FencedError(f"key rotation with fencing token {token} refused: token {current} is newer")

    def _chain_kid(self) -> str | None:
        """The governance kid this member's verified chain lists for it (None when it is not in it)."""
        head = self.consortium.head()
        entry = head.document.member(self.member_id) if head else None
        return entry.governance_key.kid if entry else None

    def _shown(self, kind: str, entry: dict[str, Any]) -> bool:
        """Is what the entry's stage needs published? (see ``KeyView.published``)"""
        if kind == "governance":
            return self._chain_kid() == entry.get("kid")
        published = self._read(PUBLISHED_PATH) or {}
        shown = [ref["kid"] for ref in (published.get("keys") or {}).get(kind, [])]
        return shown == [entry.get("kid"), *([entry["previous"]["kid"]] if entry.get("previous") else [])]

    def _plans(self, record: dict[str, Any], force: bool, request_id: str | None) -> list[tuple[str, Plan]]:
        plans = []
        now = self.clock.now()
        for kind in KEY_KINDS:
            entry = (record.get("keys") or {}).get(kind)
            if kind not in self.policies or not entry or not entry.get("kid"):
                continue
            name = key_name(self.member_id, kind)
            decided = plan(key_view(name, kind, entry, self._shown(kind, entry)), self.policies[kind], now,
                           force=force, request_id=request_id)  # fmt: skip
            if kind == "governance" and decided.action is Action.START and self._chain_kid() is None:
                # A new governance key goes through a rotate version: not possible outside the chain.
                decided = Plan(Action.NONE, "not_in_chain", f"{name}: {self.member_id} is not in the verified chain")
            plans.append((kind, decided))
        return plans

    # ----------------------------------------------------------------------------------- writes

    def _write(self, token: int, entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Put ``entries`` on the member's record, refused once a newer coordinator exists."""
        self._fence(token)
        doc = update_record(
            self.state, member_path(self.member_id),
            lambda body: {**body, "keys": {**(body.get("keys") or {}), **entries}},
        )  # fmt: skip
        if doc is None:
            raise FencedError(f"{member_path(self.member_id)} vanished during a key rotation")
        return doc.body

    def _rotate(self, token: int, force: bool, request_id: str | None) -> list[KeyResult]:
        body = self._read(member_path(self.member_id)) or {}
        plans = dict(self._plans(body, force, request_id))  # planned again under the lease
        me = self.member_id
        now, at = self.clock.now(), iso_time(self.clock.now())
        entries: dict[str, dict[str, Any]] = dict(body.get("keys") or {})
        results: dict[str, KeyResult] = {}

        def result(kind: str, action: str, reason: str, message: str) -> None:
            results[kind] = KeyResult(me, key_name(me, kind), kind, action, reason, message)

        warn = [k for k, p in plans.items() if p.action is Action.WARN]
        for kind in warn:
            entry, p = entries[kind], plans[kind]
            self.events.emit(
                "key.expiring", me, (entry["kid"],), key_name=key_name(me, kind), kind=kind,
                version=entry["version"], due_at=iso_time(p.due_at) if p.due_at else None,
            )  # fmt: skip
            result(kind, "warn", p.reason, p.message)
        if warn:
            entries = self._write(token, {k: {**entries[k], "warned_version": entries[k]["version"]} for k in warn})[
                "keys"
            ]

        start = [k for k, p in plans.items() if p.action is Action.START]
        if start:
            intents = {
                kind: entries[kind].get("rotation") or {
                    "id": rotation_id(key_name(me, kind), str(entries[kind]["version"])),
                    "stage": Stage.STARTED.value, "from_version": entries[kind]["version"],
                    "reason": plans[kind].reason, "request_id": request_id if force else None, "started_at": at,
                }
                for kind in start
            }  # fmt: skip
            entries = self._write(token, {k: {**entries[k], "rotation": intents[k]} for k in start})["keys"]
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
                result(kind, "start", plans[kind].reason, f"{key_name(me, kind)}: {said}")
            entries = self._write(token, announced)["keys"]

        retire = [k for k, p in plans.items() if p.action is Action.RETIRE]
        if retire:
            retiring = {}
            for kind in retire:
                entry = entries[kind]
                rotation = {**entry["rotation"], "stage": Stage.RETIRING.value, "retiring": entry.get("previous")}
                retiring[kind] = {**{k: v for k, v in entry.items() if k != "previous"}, "rotation": rotation}
                result(kind, "retire", plans[kind].reason, plans[kind].message)
            entries = self._write(token, retiring)["keys"]

        # Publish what the others need: the keys document, and a new governance key's rotate proposal.
        self._publish_keys(token, entries)
        governance = entries.get("governance") or {}
        if (governance.get("rotation") or {}).get("stage") == Stage.ANNOUNCED.value:
            self._propose_rotation(governance)

        # What is now published moves on.
        moved: dict[str, dict[str, Any]] = {}
        for kind in KEY_KINDS:
            entry = entries.get(kind) or {}
            rotation = entry.get("rotation") or {}
            name = key_name(me, kind)
            stage = rotation.get("stage")
            if stage not in (Stage.ANNOUNCED.value, Stage.RETIRING.value):
                continue
            if not self._shown(kind, entry):
                if stage == Stage.ANNOUNCED.value and kind == "governance":
                    result(kind, "awaiting", "awaiting_version",
                           f"{name}: {rotation.get('proposal_id')} is proposed; v{str(rotation['from_version'])[:8]} "
                           "signs until a verified version lists the new kid")  # fmt: skip
                continue
            if stage == Stage.ANNOUNCED.value:
                retire_after = iso_time(now + self.policies[kind].overlap)
                moved[kind] = {**entry, "rotation": {**rotation, "stage": Stage.PUBLISHED.value, "published_at": at,
                                                     "retire_after": retire_after}}  # fmt: skip
                where = "listed by the chain" if kind == "governance" else "published"
                self.events.emit(
                    "key.rotated", me, (rotation["id"],), key_name=name, kind=kind,
                    from_version=rotation["from_version"], to_version=rotation.get("to_version"),
                    retire_after=retire_after, reason=rotation.get("reason"), request_id=rotation.get("request_id"),
                    chain_version=self._chain_version() if kind == "governance" else None,
                )  # fmt: skip
                result(kind, "rotated", "published",
                       f"{name}: v{str(rotation.get('to_version'))[:8]} {where} beside "
                       f"v{str(rotation['from_version'])[:8]} until {retire_after}")  # fmt: skip
            else:
                old = rotation.get("retiring") or {}
                version = str(old.get("version") or rotation["from_version"])
                if kind == "governance" and self._chain_kid() == old.get("kid"):
                    continue  # never: the chain still lists the old kid, and the member signs with it
                current = self.keys.get_key(name, version)
                if current is not None and current.enabled:
                    self.keys.set_enabled(name, version, enabled=False)
                done = {k: v for k, v in rotation.items() if k not in ("stage", "retiring")}
                history = [*(entry.get("rotations") or []), {**done, "retired_at": at}][-HISTORY_KEPT:]
                moved[kind] = {**{k: v for k, v in entry.items() if k != "rotation"}, "rotations": history}
                self.events.emit("key.retired", me, (rotation["id"], "retired"), key_name=name, kind=kind,
                                 version=version)  # fmt: skip
                result(kind, "retired", "overlap_over", f"{name}: v{version[:8]} disabled (kept, never deleted)")
        if moved:
            self._write(token, moved)
        return [results.get(kind) or KeyResult(me, key_name(me, kind), kind, p.action.value, p.reason, p.message)
                for kind, p in plans.items()]  # fmt: skip

    def _chain_version(self) -> int | None:
        head = self.consortium.head()
        return head.version if head else None

    def _new_version(self, kind: str, intent: dict[str, Any]) -> KeyVersion:
        """The rotation's new version: the one a stopped run created (found by its tag), else a new one."""
        name = key_name(self.member_id, kind)
        for version in reversed(self.keys.list_versions(name)):
            if version.tags.get("rotation_id") == intent["id"] and version.enabled:
                return version
        tags = {"rotation_id": str(intent["id"]), "kind": kind, "member_id": self.member_id}
        return self.keys.create_key(name, "EC", tags=tags)

    def _propose_rotation(self, entry: dict[str, Any]) -> None:
        """The rotate proposal of the new governance key: this member's chain entry with the new key."""
        rotation = entry["rotation"]
        proposal_id = str(rotation["proposal_id"])
        if any(p.get("proposal_id") == proposal_id for p in self.consortium.own().get("proposals", [])):
            return
        head = self.consortium.head()
        listed = head.document.member(self.member_id) if head else None
        if listed is None:
            return  # left the chain meanwhile: nothing to propose; retire disables everything
        new_key = chain.KeyRef.model_validate(_key_ref(entry))
        self.consortium.propose(rules.Proposal(
            proposal_id=proposal_id, kind=chain.Kind.ROTATE, member_id=self.member_id,
            entry=listed.model_copy(update={"governance_key": new_key}), proposer=self.member_id,
            proposed_at=iso_time(self.clock.now()), reason=f"governance key rotation {rotation['id']}",
        ))  # fmt: skip

    def _publish_keys(self, token: int, entries: Mapping[str, Any]) -> None:
        """``keys.json``: the TLS and identity keys (current, then previous in an overlap), signed with
        the governance key the chain lists; written again only when what it says changes."""
        listed: dict[str, list[dict[str, Any]]] = {}
        for kind in published_keys.KINDS:
            entry = entries.get(kind)
            if entry and entry.get("kid"):
                listed[kind] = [_key_ref(entry), *([_key_ref(entry["previous"])] if entry.get("previous") else [])]
        try:
            kid = self.consortium.signing_key()
        except TransientError as error:  # no governance key yet: nothing can be signed; the next run tries
            log.info("keys document not published: %s", error)
            return
        fingerprint = hashlib.sha256(chain.canonical({"kid": kid, "keys": listed})).hexdigest()
        stored = self._read(PUBLISHED_PATH) or {}
        if stored.get("fingerprint") == fingerprint:
            return
        seq = int(stored.get("seq", 0)) + 1
        document: dict[str, Any] = {
            "member_id": self.member_id, "kid": kid, "seq": seq, "updated_at": iso_time(self.clock.now()),
            "keys": listed,
        }  # fmt: skip
        document["sig"] = chain.b64u(self.keys.sign(kid, published_keys.digest(document)))
        # The state first: a document is never published with a seq that a restart could hand out again.
        self.fenced.update(PUBLISHED_PATH, token, lambda _body: {"seq": seq, "fingerprint": fingerprint,
                                                                  "keys": listed, "kid": kid})  # fmt: skip
        self.consortium.public.put(published_keys.PATH, chain.canonical(document))

    def _record_run(self, token: int, run: RotationRun, *, trigger: str, request_id: str | None, force: bool) -> None:
        at = iso_time(self.clock.now())
        acted = [
            {"at": at, **r.as_json()} for r in run.results if r.action not in (Action.NONE.value, Action.WAIT.value)
        ]
        summary = {
            "at": at, "trigger": trigger, "request_id": request_id, "force": force, "member_id": self.member_id,
            "counts": run.summary(), "busy": run.busy, "keys_document_seq": run.keys_document_seq,
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
