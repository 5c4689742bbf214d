"""The publication of this member's keys document (``keys.json``): what its peers trust for TLS and identity.

The document lists the TLS and node identity keys (current, then previous during an overlap), signed
with the governance key the chain lists for this member, in the member's ``consortium-public``. It is
written again only when what it says changes; its seq and fingerprint are stored (fenced) before it is
put, so a restart never hands out a seq twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.decisions import chain, published_keys
from shared.errors import TransientError
from shared.services.records import iso_time
from shared.services.rotation.paths import PUBLISHED_PATH
from shared.services.rotation.wiring import Wiring

log = logging.getLogger(__name__)


def key_ref(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A key as the chain and the keys document name it: its kid and public JWK."""
    return {"kid": entry["kid"], "jwk": dict(entry["public_jwk"])}


@dataclass
class KeysPublisher:
    wiring: Wiring

    def shown_kids(self, kind: str) -> list[str]:
        """The kids of ``kind`` the keys document last published lists, in its order."""
        published = self.wiring.read(PUBLISHED_PATH) or {}
        return [ref["kid"] for ref in (published.get("keys") or {}).get(kind, [])]

    def seq(self) -> int | None:
        """The seq of the keys document last published (None before the first)."""
        published = self.wiring.read(PUBLISHED_PATH)
        return int(published["seq"]) if published else None

    def publish(self, token: int, entries: Mapping[str, Any]) -> None:
        """``keys.json``: the TLS and identity keys (current, then previous in an overlap), signed with
        the governance key the chain lists; written again only when what it says changes."""
        w = self.wiring
        listed: dict[str, list[dict[str, Any]]] = {}
        for kind in published_keys.KINDS:
            entry = entries.get(kind)
            if entry and entry.get("kid"):
                listed[kind] = [key_ref(entry), *([key_ref(entry["previous"])] if entry.get("previous") else [])]
        try:
            kid = w.consortium.signing_key()
        except TransientError as error:  # no governance key yet: nothing can be signed; the next run tries
            log.info("keys document not published: %s", error)
            return
        fingerprint = hashlib.sha256(chain.canonical({"kid": kid, "keys": listed})).hexdigest()
        stored = w.read(PUBLISHED_PATH) or {}
        if stored.get("fingerprint") == fingerprint:
            return
        seq = int(stored.get("seq", 0)) + 1
        document: dict[str, Any] = {
            "member_id": w.member_id, "kid": kid, "seq": seq, "updated_at": iso_time(w.clock.now()),
            "keys": listed,
        }  # fmt: skip
        document["sig"] = chain.b64u(w.keys.sign(kid, published_keys.digest(document)))
        # The state first: a document is never published with a seq that a restart could hand out again.
        w.fenced.update(PUBLISHED_PATH, token, lambda _body: {"seq": seq, "fingerprint": fingerprint,
                                                               "keys": listed, "kid": kid})  # fmt: skip
        w.consortium.public.put(published_keys.PATH, chain.canonical(document))
