"""Key rotation of this member's own keys, in its own vault: new version, published, old disabled.

A deployment serves one member (docs/contract.md) and rotates only that member's identity, TLS and
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

``KeyRotator`` is a thin front over parts with one job each, sharing one ``Wiring`` (this member's
stores): ``member_keys`` (the run over this member's keys: plans, stages written to the record,
fencing), ``governance`` (the governance key's side in the chain: the kid and version it lists, the
rotate proposal, what an adopted version means for an overlap), ``publication`` (the keys document)
and ``report`` (run records, request reports and the status view).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from shared.decisions.rotation import Action, KeyPolicy, Why, rotates
from shared.errors import BusyError
from shared.messages import KeyRotationRequest, Rejection, parse
from shared.naming import key_name
from shared.ports.clock import Clock
from shared.ports.keys import KeyStore
from shared.ports.leases import LeaseStore
from shared.ports.queues import MessageSender
from shared.ports.state import StateStore
from shared.reasons import Reason
from shared.services.consortium import Consortium, VersionAdopted
from shared.services.leadership import FencedWriter, member_lock
from shared.services.records import Events, Rejections, member_path, parse_time
from shared.services.rotation.governance import GovernanceSide, rotate_proposal_id
from shared.services.rotation.member_keys import HISTORY_KEPT, MemberKeys, key_view
from shared.services.rotation.paths import PUBLISHED_PATH, REQUESTS, STATE_PATH, request_report_path
from shared.services.rotation.publication import KeysPublisher
from shared.services.rotation.report import (
    RECENT_LIMIT,
    KeyResult,
    Result,
    RotationRun,
    RunRecords,
    key_status,
    rotation_view,
)
from shared.services.rotation.wiring import Wiring

__all__ = [
    "HISTORY_KEPT", "PUBLISHED_PATH", "RECENT_LIMIT", "REQUESTS", "STATE_PATH", "KeyResult", "KeyRotator", "Result",
    "RotationRun", "key_status", "key_view", "request_report_path", "rotate_proposal_id", "rotation_view",
]  # fmt: skip


class KeyRotator:
    """This member's key rotation: requests taken, runs under the member's lease, and their records."""

    def __init__(
        self,
        member_id: str,
        state: StateStore,
        keys: KeyStore,
        leases: LeaseStore,
        queues: MessageSender,
        clock: Clock,
        policies: Mapping[str, KeyPolicy],
        holder: str,
        consortium: Consortium,
        lease_seconds: int = 15,
    ) -> None:
        self.member_id, self.leases, self.queues, self.clock = member_id, leases, queues, clock
        self.policies, self.holder, self.consortium, self.lease_seconds = policies, holder, consortium, lease_seconds
        self.events = Events(queues, clock)
        self.rejections = Rejections(state, self.events, clock)
        self.fenced = FencedWriter(state, leases)
        #: One run at a time on this instance: the timer and a request never do the same step twice over.
        self._running = threading.Lock()
        self.wiring = Wiring(member_id, state, keys, leases, clock, consortium, self.events, self.fenced)
        self.governance = GovernanceSide(self.wiring, queues)
        self.publisher = KeysPublisher(self.wiring)
        self.member_keys = MemberKeys(self.wiring, policies, self.governance, self.publisher)
        self.records = RunRecords(self.wiring)

    # The stores live on the wiring, so that one handed to the front is the one every part uses.
    @property
    def state(self) -> StateStore:
        return self.wiring.state

    @state.setter
    def state(self, state: StateStore) -> None:
        self.wiring.state = state

    @property
    def keys(self) -> KeyStore:
        return self.wiring.keys

    @keys.setter
    def keys(self, keys: KeyStore) -> None:
        self.wiring.keys = keys

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
        read = self.wiring.read
        if request.member_id is not None and request.member_id != self.member_id:
            why = f"this deployment rotates only {self.member_id}'s keys, not {request.member_id}'s"
            refused = Rejection(Reason.NOT_THIS_MEMBER, why, "member_id", request.member_id, request.request_id)
        elif not self._active(read(member_path(self.member_id))):
            status = (read(member_path(self.member_id)) or {}).get("status")
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
        self.governance.version_adopted(event)

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
            self.wiring.fence(token)
            run = RotationRun()
            record = self.wiring.read(member_path(self.member_id))
            if record is not None and self._active(record):
                now = self.clock.now()
                for kind, entry in (record.get("keys") or {}).items():
                    became = parse_time(entry.get("rotated_at") or entry.get("created_at"))
                    if became is not None:
                        run.key_ages[key_name(self.member_id, kind)] = round((now - became) / timedelta(days=1), 3)
                check()
                try:
                    with member_lock(self.leases, self.member_id, self.holder, self.lease_seconds) as term:
                        run.results = self.member_keys.rotate(token, force, request_id)
                        term.check()
                except BusyError:
                    run.busy = [self.member_id]
                    run.results = [
                        KeyResult(self.member_id, key_name(self.member_id, kind), kind, Result.BUSY, Why.MEMBER_BUSY,
                                  f"{self.member_id} is busy with another step; the next run retries")
                        for kind, p in self.member_keys.plans(record, force, request_id) if p.action is not Action.NONE
                    ]  # fmt: skip
            run.keys_document_seq = self.publisher.seq()
            self.records.record(token, run, trigger=trigger, request_id=request_id, force=force)
            return run

    @staticmethod
    def _active(record: dict[str, Any] | None) -> bool:
        return record is not None and rotates(record.get("status"), bool(record.get("offboarding")))
