"""This member's verified chain: what it holds in its own storage, its head, and adopting a version.

A version is stored only once it verified against the version before it (version 0 against the
genesis hash this deployment was given); the versions already stored are verified again from genesis
once per process. Adopting stores the version (create-only: a different document already stored is a
fork), publishes it in this member's container, hands the verified head's members to its own nodes
and announces ``consortium.version_adopted``; then it tells ``adopted`` (the in-process listeners).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.decisions import chain
from shared.errors import ConflictError, PermanentError
from shared.ports.published import PublicStore
from shared.ports.state import StateStore
from shared.reasons import Reason
from shared.services.consortium.memory import Follow
from shared.services.consortium.paths import MEMBERSHIP, chain_path
from shared.services.records import Events
from shared.verification.pools import check_on_cores


class Forked(PermanentError):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason=Reason.FORK)


@dataclass
class ChainStore:
    genesis: str  # the pinned genesis hash
    state: StateStore
    public: PublicStore
    events: Events
    memory: Follow
    #: Told of every version adopted after the genesis (``Consortium`` hands them on).
    adopted: Callable[[chain.Trusted], None] = lambda _version: None
    #: Whether this tick listed the stored chain already (None outside a tick).
    listed: bool | None = None

    def verified(self) -> list[chain.Trusted]:
        """This member's verified chain (empty before it has the genesis it was given)."""
        if self.listed and self.memory.trusted:
            return self.memory.trusted  # listed once this tick; adopt keeps memory current
        paths = self.state.list_paths("chain/")
        if self.listed is not None:
            self.listed = True
        known = self.memory.trusted
        if len(known) == len(paths) and known:
            return known
        trusted: list[chain.Trusted] = list(known[: len(paths)])
        for path in paths[len(trusted) :]:
            doc = self.state.read(path)
            if doc is None:
                break
            if trusted:
                trusted.append(chain.verify_next(trusted[-1], doc.body, check=check_on_cores))
            else:
                trusted.append(chain.verify_genesis(self.genesis, doc.body, check=check_on_cores))
        self.memory.trusted = trusted
        return trusted

    def known(self) -> list[chain.Trusted]:
        """The chain as last verified in this process, without listing the storage again."""
        return self.memory.trusted

    def head(self) -> chain.Trusted | None:
        trusted = self.verified()
        return trusted[-1] if trusted else None

    def adopt(self, trusted: chain.Trusted) -> None:
        """Store a version that verified against our head, publish it, announce it."""
        try:
            self.state.create(chain_path(trusted.version), dict(trusted.raw))
        except ConflictError:
            stored = self.state.read(chain_path(trusted.version))
            if stored is not None and chain.document_hash(stored.body) != trusted.hash:
                raise Forked(f"version {trusted.version}: another document is already stored") from None
        self.public.put(chain_path(trusted.version), trusted.published())
        self.memory.trusted = [*self.memory.trusted[: trusted.version], trusted]
        self.hand_to_nodes(trusted)
        change = trusted.document.change
        self.events.emit(
            "consortium.version_adopted", change.member_id, ("version", trusted.version, trusted.hash),
            version=trusted.version, hash=trusted.hash, change=change.model_dump(mode="json"),
        )  # fmt: skip
        self.adopted(trusted)

    def pin_genesis(self, raw: Mapping[str, Any]) -> chain.Trusted:
        """Store version 0 once it verifies against the pinned hash (the founders' ceremony, or a join)."""
        trusted = chain.verify_genesis(self.genesis, raw, check=check_on_cores)
        try:
            self.state.create(chain_path(0), dict(raw))
        except ConflictError:
            pass
        self.public.put(chain_path(0), trusted.published())
        self.memory.trusted = self.memory.trusted or [trusted]
        self.hand_to_nodes(trusted)
        return trusted

    def hand_to_nodes(self, trusted: chain.Trusted) -> None:
        """What this member's own nodes read (``membership.json`` beside the chain in its own container):
        the verified head's members. A node's agent verifies the chain itself from the genesis
        (``chain.NodeTrust``) and uses this only as the index of what that chain admits."""
        members = [m.model_dump(mode="json", exclude_none=True) for m in trusted.document.members]
        self.public.put(MEMBERSHIP, chain.canonical({"version": trusted.version, "hash": trusted.hash,
                                                      "genesis": self.genesis, "members": members}))  # fmt: skip
