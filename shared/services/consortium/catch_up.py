"""Catching up with the others: versions another member adopted, each adopted once it verifies here.

One loop (``adopt_up_to``) fetches the next version from a member and adopts it if ``chain.verify_next``
passes against this member's head. A different valid document of a version this member already holds
is a fork: both documents and the members who signed both are recorded, ``consortium.fork`` is
announced, and the member applies no further change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.decisions import chain
from shared.decisions import consortium as rules
from shared.errors import PermanentError, TransientError
from shared.ports.clock import Clock
from shared.ports.published import PeerReader
from shared.services.consortium.own import OwnState
from shared.services.consortium.paths import chain_path
from shared.services.consortium.refusals import Refusals
from shared.services.consortium.store import ChainStore, Forked
from shared.services.records import Events, iso
from shared.verification.pools import check_on_cores

log = logging.getLogger(__name__)


@dataclass
class CatchUp:
    store: ChainStore
    peers: PeerReader
    refusals: Refusals
    own: OwnState
    events: Events
    clock: Clock

    def fetch_version(self, member_id: str, endpoint: str, version: int) -> dict[str, Any] | None:
        source = f"version {version} from {member_id}"
        try:
            fetched = self.peers.fetch(endpoint, chain_path(version), limit=chain.MAX_DOCUMENT_BYTES)
        except TransientError as error:
            log.info("%s: %s", source, error)
            return None
        except PermanentError as error:  # too large to read, or refused by the storage: never retried as is
            self.refusals.refuse(source, f"{source}: {error}".encode(), error, member_id)
            return None
        if fetched is None or fetched.data is None:
            return None
        try:
            return chain.parse_published(fetched.data)
        except chain.ChainError as error:
            self.refusals.refuse(source, fetched.data, error, member_id)
            return None

    def adopt_up_to(
        self, member_id: str, endpoint: str, version: int, listed: Callable[[], list[chain.Trusted]]
    ) -> bool:
        """Adopt the versions after ``listed()`` up to ``version``, read from ``member_id`` and each verified
        against the head before it; whether any was adopted. Stops at the first that is missing or does not
        verify (recorded). A fork found while storing one raises ``Forked``."""
        adopted = False
        while (trusted := listed()) and len(trusted) <= version:
            raw = self.fetch_version(member_id, endpoint, len(trusted))
            if raw is None:
                break
            try:
                self.store.adopt(chain.verify_next(trusted[-1], raw, check=check_on_cores))
            except chain.ChainError as error:
                self.refusals.refuse(f"version {len(trusted)} from {member_id}", chain.canonical(raw), error, member_id)
                break
            adopted = True
        return adopted

    def catch_up_from(self, member_id: str, endpoint: str, raw: Mapping[str, Any]) -> bool:
        """Adopt the versions up to the one ``raw`` (an unverified head) names, read from its member and
        each verified against our head; whether any was adopted. The head's claim is only a hint."""
        claimed = (raw.get("chain") or {}).get("version") if isinstance(raw.get("chain"), dict) else None
        if not isinstance(claimed, int):
            return False
        before = len(self.store.verified())
        try:
            return self.adopt_up_to(member_id, endpoint, claimed, self.store.verified)
        except Forked:  # recorded where the fork is checked; the tick stops there
            return len(self.store.known()) > before

    def catch_up(self, heads: Mapping[str, rules.Head], endpoints: Mapping[str, str]) -> None:
        """Adopt versions the others hold once each verifies; detect a different valid document."""
        trusted = self.store.verified()
        if not trusted:
            for member_id, endpoint in endpoints.items():
                raw = self.fetch_version(member_id, endpoint, 0)
                if raw is None:
                    continue
                try:
                    self.store.pin_genesis(raw)
                    break
                except chain.ChainError as error:
                    self.refusals.refuse(f"genesis from {member_id}", chain.canonical(raw), error, member_id)
            if not self.store.verified():
                return
        # the chain as just listed and verified, plus what ``adopt`` adds to it below: listing our own
        # chain again for every member would cost a request per member per tick.
        for member_id, peer in sorted(heads.items(), key=lambda kv: -(kv[1].chain.version if kv[1].chain else -1)):
            if peer.chain is None or member_id not in endpoints:
                continue
            ours = self.store.known()
            if peer.chain.version < len(ours) and ours[peer.chain.version].hash != peer.chain.hash:
                self.check_fork(member_id, endpoints[member_id], peer.chain.version)
                continue
            self.adopt_up_to(member_id, endpoints[member_id], peer.chain.version, self.store.known)

    def check_fork(self, member_id: str, endpoint: str, version: int) -> None:
        ours = self.store.verified()
        raw = self.fetch_version(member_id, endpoint, version)
        if raw is None:
            return
        try:
            # version 0 is the genesis this deployment was given, or nothing: never a fork, refused
            theirs = (
                chain.verify_next(ours[version - 1], raw, check=check_on_cores)
                if version
                else chain.verify_genesis(self.store.genesis, raw)
            )
        except chain.ChainError as error:
            self.refusals.refuse(f"version {version} from {member_id}", chain.canonical(raw), error, member_id)
            return
        if theirs.hash != ours[version].hash:
            self.report_fork(ours[version], theirs, seen_at=member_id)

    def report_fork(self, ours: chain.Trusted, theirs: chain.Trusted, *, seen_at: str) -> None:
        culprits = chain.equivocators(ours, theirs)
        hashes = sorted([ours.hash, theirs.hash])
        fork = {
            "version": ours.version, "hashes": hashes, "signed_both": culprits,
            "seen_at": seen_at, "at": iso(self.clock), "documents": [dict(ours.raw), dict(theirs.raw)],
        }  # fmt: skip

        def record(body: dict[str, Any]) -> dict[str, Any] | None:
            if body.get("fork"):
                return None
            return {**body, "fork": fork}

        self.own.update(record)
        self.events.emit(
            "consortium.fork", culprits[0] if culprits else None, ("fork", ours.version, *hashes),
            version=ours.version, hashes=hashes, signed_both=culprits, seen_at=seen_at,
        )  # fmt: skip
