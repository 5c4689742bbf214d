"""Who may sign a version, and whether its signatures are enough: counted, never raised.

Signatures are ES256 over a version's hash (Key Vault signs the SHA-256 of the signing bytes), raw
64-byte r||s, base64url without padding. ``signature_result`` counts who signed, with which key,
against the version before; ``verify`` turns a result that is not enough into a ``SignatureError``.
How the (key, signature) pairs are checked is a ``Check``: one after the other here
(``check_each``); ``shared.verification`` checks them on several cores with the same verdicts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.decisions import es256
from shared.decisions.chain.canonical import own_signing_bytes
from shared.decisions.chain.model import Document, KeyRef, Kind, PublicJwk, Signature
from shared.decisions.signed import majority

#: base64url without padding, as JWS writes it (re-exported: signers and tests use ``chain.b64u``).
b64u = es256.b64u
_b64u_decode = es256.b64u_decode

#: Verdicts of (key, signature) pairs over one digest, in order.
Check = Callable[[Sequence[tuple[PublicJwk, str]], bytes], list[bool]]


def verify_signature(jwk: PublicJwk, digest: bytes, sig: str) -> bool:
    """ES256: the raw r||s ``sig`` over the SHA-256 ``digest`` with the key ``jwk``."""
    return es256.verify(jwk.x, jwk.y, digest, sig)


def check_each(checks: Sequence[tuple[PublicJwk, str]], digest: bytes) -> list[bool]:
    """``verify_signature`` of each (key, signature) over one ``digest``, in order, in this thread."""
    return [verify_signature(jwk, digest, sig) for jwk, sig in checks]


@dataclass(frozen=True)
class Signer:
    """A (member, key) whose signature a version may carry, and what it is for."""

    member_id: str
    key: KeyRef
    counts: bool  # counts towards "more than half of version N's members"
    required: bool  # must be there whatever the count (a founder, the newcomer, the leaver, ...)


def electorate(base: Document | None, document: Document) -> dict[tuple[str, str], Signer]:
    """Who may sign ``document`` given the version before it, keyed by (member_id, kid)."""
    signers: dict[tuple[str, str], Signer] = {}
    change = document.change
    if base is None:
        for m in document.members:
            signers[(m.member_id, m.governance_key.kid)] = Signer(m.member_id, m.governance_key, True, True)
        return signers
    for m in base.members:
        counts = not (change.kind == Kind.REMOVE and m.member_id == change.member_id)
        required = change.kind in (Kind.LEAVE, Kind.ROTATE) and m.member_id == change.member_id
        signers[(m.member_id, m.governance_key.kid)] = Signer(m.member_id, m.governance_key, counts, required)
    entry = document.member(change.member_id)
    if entry is not None and change.kind in (Kind.ADMIT, Kind.ROTATE):
        key = (entry.member_id, entry.governance_key.kid)
        if key not in signers:  # a newcomer's key, or a rotating member's new key: proof of possession
            signers[key] = Signer(entry.member_id, entry.governance_key, False, True)
    return signers


@dataclass(frozen=True)
class SignatureResult:
    """Who signed a version and whether that is enough; computed, never raised."""

    #: Distinct members of the version before whose valid signature counts towards the majority.
    counted: frozenset[str]
    #: How many of them are needed: more than half of the version before's members.
    threshold: int
    #: Required (member_id, kid) pairs with no valid signature.
    missing: frozenset[tuple[str, str]]
    #: Signatures listed that do not count: unlisted key, repeated, or not verifying; with why.
    invalid: tuple[tuple[str, str, str], ...]
    #: Valid (member_id, kid) pairs.
    valid: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    @property
    def sufficient(self) -> bool:
        return len(self.counted) >= self.threshold and not self.missing and not self.invalid

    def explain(self) -> str:
        parts = [f"{len(self.counted)} of the {self.threshold} counting signatures needed"]
        if self.missing:
            parts.append("missing " + ", ".join(f"{m} ({k.rsplit('/', 1)[-1][:8]})" for m, k in sorted(self.missing)))
        for member_id, kid, why in self.invalid:
            parts.append(f"{member_id} ({kid.rsplit('/', 1)[-1][:8]}): {why}")
        return "; ".join(parts)


#: A version's signatures as listed: (signature, the signer it claims to be, whether listed before).
Listed = list[tuple["Signature", "Signer | None", bool]]


def signature_plan(
    base: Document | None, document: Document
) -> tuple[dict[tuple[str, str], Signer], Listed, list[tuple[PublicJwk, str]]]:
    """Who may sign ``document``, its signatures as listed, and the (key, signature) pairs to check."""
    signers = electorate(base, document)
    listed: Listed = []
    seen: set[tuple[str, str]] = set()
    for s in document.signatures:
        key = (s.member_id, s.kid)
        listed.append((s, signers.get(key), key in seen))
        seen.add(key)
    checks = [(signer.key.jwk, s.sig) for s, signer, twice in listed if signer is not None and not twice]
    return signers, listed, checks


def count_signatures(
    base: Document | None,
    document: Document,
    signers: dict[tuple[str, str], Signer],
    listed: Listed,
    verdicts: Sequence[bool],
) -> SignatureResult:
    """The ``SignatureResult`` of ``listed`` given the verdicts of its checks, in order."""
    valid: set[tuple[str, str]] = set()
    invalid: list[tuple[str, str, str]] = []
    remaining = iter(verdicts)
    for s, signer, twice in listed:
        key = (s.member_id, s.kid)
        if twice:
            invalid.append((s.member_id, s.kid, "listed twice"))
        elif signer is None:
            version = "version " + (str(base.version) if base else "0")
            invalid.append((s.member_id, s.kid, f"not a key {version} lists for {s.member_id}"))
        elif not next(remaining):
            invalid.append((s.member_id, s.kid, "signature does not verify"))
        else:
            valid.add(key)
    threshold = len(document.members) if base is None else majority(base.members)
    counted = frozenset(signers[k].member_id for k in valid if signers[k].counts)
    missing = frozenset(k for k, s in signers.items() if s.required and k not in valid)
    return SignatureResult(counted, threshold, missing, tuple(invalid), frozenset(valid))


def signature_result(
    base: Document | None, document: Document, digest: bytes, *, check: Check = check_each
) -> SignatureResult:
    """Count ``document``'s signatures against the version before it (``None`` for genesis);
    ``digest`` is the SHA-256 of its signing bytes (``bytes.fromhex(document_hash(raw))``)."""
    signers, listed, checks = signature_plan(base, document)
    return count_signatures(base, document, signers, listed, check(checks, digest))


def own_signature_problem(document: Mapping[str, Any], *, kid: str, sig: str, keys: Iterable[KeyRef]) -> str | None:
    """Why a member's own signed document does not verify (``None`` when it does): it must be signed, over
    ``own_signing_bytes``, with one of ``keys`` (the key(s) the reader's verified chain lists for it)."""
    key = next((k for k in keys if k.kid == kid), None)
    if key is None:
        return "signed with a key its chain entry does not list"
    if not verify_signature(key.jwk, hashlib.sha256(own_signing_bytes(document)).digest(), sig):
        return "signature does not verify"
    return None
