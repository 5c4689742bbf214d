"""This member's head: what it says (its proposals, decisions, pre-signatures, record, final signature),
signed with its governance key and published in its own container when it changed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from shared.decisions import chain
from shared.decisions import consortium as rules
from shared.errors import TransientError
from shared.ports.clock import Clock
from shared.ports.keys import KeyStore
from shared.ports.published import PublicStore
from shared.services.consortium.memory import Follow
from shared.services.consortium.own import OwnState
from shared.services.consortium.paths import HEAD, PRIVATE_RECORD_FIELDS
from shared.services.consortium.store import ChainStore
from shared.services.records import iso


@dataclass
class HeadPublisher:
    me: str
    governance_key: str  # the key's name in this member's vault
    own: OwnState
    store: ChainStore
    keys: KeyStore
    public: PublicStore
    clock: Clock
    memory: Follow

    def signing_key(self) -> str:
        """The kid this member signs its head with: the one its verified chain lists, else its newest."""
        head = self.store.head()
        entry = head.document.member(self.me) if head else None
        if entry is not None:
            return entry.governance_key.kid
        key = self.keys.get_key(self.governance_key)
        if key is None:
            raise TransientError("the governance key is not created yet")
        if not key.enabled:  # out of the chain, its keys disabled (never deleted): nothing more to sign
            raise TransientError("the governance key is disabled: this member left or was removed")
        return key.kid

    def publish(self) -> dict[str, Any] | None:
        """Publish this member's head if what it says changed; the head published, or None."""
        own = self.own.read()
        head = self.store.head()
        try:
            kid = self.signing_key()
        except TransientError:
            return None
        record = own.get("record")
        body: dict[str, Any] = {
            "member_id": self.me,
            "kid": kid,
            "chain": {"version": head.version, "hash": head.hash} if head else None,
            "proposals": own.get("proposals", [])[-20:],
            "approvals": own.get("approvals", {}),
            "presigned": own.get("presigned", [])[-20:],
            "record": {k: v for k, v in record.items() if k not in PRIVATE_RECORD_FIELDS} if record else None,
            "final": own.get("final"),
        }
        self.memory.says = rules.Says(
            rules.RecordModel.model_validate(body["record"]) if body["record"] else None,
            rules.Final.model_validate(body["final"]) if body["final"] else None,
        )
        fingerprint = hashlib.sha256(chain.canonical(body)).hexdigest()
        if own.get("published_fingerprint") == fingerprint:
            return None
        seq = int(own.get("seq", 0)) + 1
        body = {**body, "seq": seq, "updated_at": iso(self.clock)}
        digest = hashlib.sha256(rules.head_signing_bytes(body)).digest()
        body["sig"] = chain.b64u(self.keys.sign(kid, digest))
        # the state first: a head is never published with a seq that a restart could hand out again
        self.own.update(lambda o: {**o, "seq": seq, "published_fingerprint": fingerprint})
        self.public.put(HEAD, chain.canonical(body))
        return body
