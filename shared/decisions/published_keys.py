"""A member's keys document: the public TLS and node identity keys it publishes for the others.

The chain carries each member's governance key; what else a member's nodes use (the TLS and node
identity keys, which rotate without the consortium's say) is not agreed by the members, so it is not
in the chain. Each member publishes it as ``keys.json`` in its own ``consortium-public`` container,
signed with the governance key its verified chain lists (docs/contract.md: "signed with a key the chain
lists for it, and others accept it only if it verifies"). During a rotation's overlap a kind lists
two keys, the current one first; afterwards one.

``verify_keys_document`` is the one check (``own_documents.verify_own``, as every member's own
document): the document parses (strict), names the member, lists one key per kind (two in an
overlap), ``seq`` never goes back, and it is signed with the key given (the reader's own chain's key
for that member); a refusal is a ``KeysDocumentError`` carrying its ``signed.Rule``. Nothing read
becomes a ``KeysDocument`` without passing it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from shared.decisions import chain
from shared.decisions.own_documents import verify_own
from shared.decisions.signed import DocumentError, Rule, Strict
from shared.naming import MEMBER_ID

PATH = "keys.json"
#: The kinds a keys document lists (the governance key is in the chain).
KINDS = ("identity", "tls")


class KeysDocument(Strict):
    member_id: str = Field(pattern=MEMBER_ID.pattern)
    #: The governance kid it is signed with: the one the signer's verified chain lists for it.
    kid: str = Field(pattern=chain.KID_PATTERN, max_length=512)
    seq: int = Field(ge=1)
    updated_at: str = Field(pattern=chain.TIMESTAMP_PATTERN)
    #: Per kind, the current key first, then the one it replaces while their overlap lasts.
    keys: dict[Literal["identity", "tls"], list[chain.KeyRef]]
    sig: str = Field(pattern=chain.B64U_PATTERN, min_length=86, max_length=86)


class KeysDocumentError(DocumentError):
    """A keys document that is not what its member published; ``rule`` is the rule, the message names it."""

    def __init__(self, rule: Rule, member_id: str, detail: str):
        self.rule, self.member_id, self.detail = rule, member_id, detail
        super().__init__(
            f"keys of {member_id} name {detail}" if rule == Rule.MEMBER else f"keys of {member_id}: {detail}"
        )


def signing_bytes(document: Mapping[str, Any]) -> bytes:
    """RFC 8785 of the document without ``sig``."""
    return chain.own_signing_bytes(document)


def digest(document: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(signing_bytes(document)).digest()


def verify_keys_document(
    raw: Mapping[str, Any], *, member_id: str, key: chain.KeyRef, after_seq: int = 0
) -> KeysDocument:
    """The keys document of ``member_id`` if it parses, is newer than ``after_seq`` and is signed by ``key``."""

    def refuse(rule: Rule, detail: str) -> KeysDocumentError:
        return KeysDocumentError(rule, member_id, detail)

    def rules(document: KeysDocument) -> None:
        for kind, refs in document.keys.items():
            if not 1 <= len(refs) <= 2 or len({r.kid for r in refs}) != len(refs):
                raise refuse(Rule.SHAPE, f"{kind} lists {len(refs)} keys (one, or two in an overlap)")
        if document.seq <= after_seq:
            raise refuse(Rule.REPLAYED, f"seq {document.seq} is not after {after_seq}")

    return verify_own(raw, KeysDocument, member_id=member_id, keys=[key], refuse=refuse, rules=rules)
