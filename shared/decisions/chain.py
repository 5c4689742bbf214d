"""The membership chain: the signed document, its canonical form, and the one check of a version.

Members agree on who is in the consortium through numbered versions of one document, each signed by
the members of the version before it (CONTRACT.md, "The membership document"). This module is the
only place that decides whether a version is valid. It reads like python-tuf's ``metadata.py``:

- one typed model of the signed document (``Document``), strict: unknown fields, wrong types and
  bad patterns are refused with the field named;
- ``signature_result`` counts who signed, with which key, against the version before, and never
  raises; ``verify_next`` (and ``verify_genesis`` for version 0) raise a ``ChainError`` subclass
  whose message names the rule broken, and otherwise return a ``Trusted`` version;
- nothing read from another member or from storage becomes ``Trusted`` without passing them.

Canonical form: RFC 8785 (JSON Canonicalization Scheme) through the ``rfc8785`` library, of the
document without ``signatures``; a version's hash is the lowercase hex SHA-256 of that form.
Signatures: ES256 over the canonical form (Key Vault signs its SHA-256), raw 64-byte r||s,
base64url without padding.

The rules, in the order they are checked (the first broken one is reported):
1. shape: the document parses (``ShapeError``);
2. genesis: version 0 is the one whose hash this deployment was given (``GenesisHashError``);
3. the consortium's name and quorum rule never change (``ConsortiumError``);
4. ``version`` is N+1 (``VersionError``) and ``previous`` is the hash of N (``PreviousError``);
5. ``members`` is N's with exactly ``change`` applied (``ChangeError``);
6. signed by more than half of N's members with the keys N lists for them, plus the signers the
   change needs (the newcomer, the leaver, the rotating member with its old and new key); the member
   removed does not count; every signature listed verifies (``SignatureError``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.decisions import es256
from shared.messages import parse_x500
from shared.naming import MEMBER_ID

log = logging.getLogger(__name__)

#: A published version is at most this large (50 members take about 25 KiB).
MAX_DOCUMENT_BYTES = 1024 * 1024
CONSORTIUM_PATTERN = r"^[a-z][a-z0-9-]{1,62}[a-z0-9]$"
PROPOSAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
#: A Key Vault key identifier with its version: ``https://<vault>/keys/<name>/<32 hex>``; locally the
#: emulator's vault URL may carry a path before ``/keys``.
KID_PATTERN = r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._-]+)*/keys/[A-Za-z0-9-]{1,127}/[0-9a-fA-F]{32}$"
ENDPOINT_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%-]+)*/?$"
B64U_PATTERN = r"^[A-Za-z0-9_-]+$"
TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"


class Kind(StrEnum):
    GENESIS = "genesis"  # version 0: the founders, signed by every one of them
    ADMIT = "admit"  # a newcomer joins, and signs with the key this version lists for it
    REMOVE = "remove"  # a member is expelled; its own signature does not count
    LEAVE = "leave"  # a member goes, and signs that it goes
    ROTATE = "rotate"  # a member changes its own entry (a key, its endpoint), signing with old and new key


class Rule(StrEnum):
    SHAPE = "shape"  # not a membership document: a field missing, unknown, of the wrong type or pattern
    NOT_CANONICAL = "not_canonical"  # published bytes that are not the RFC 8785 form of what they hold
    GENESIS_HASH = "genesis_hash"  # version 0 is not the genesis this deployment was given
    CONSORTIUM = "consortium"  # another consortium's name or quorum rule
    VERSION = "version"  # not the version after the one trusted
    PREVIOUS = "previous"  # ``previous`` is not the hash of the version before
    CHANGE = "change"  # members differ from the version before by more than the change
    SIGNATURES = "signatures"  # not signed as the contract requires


class ChainError(ValueError):
    """A document that does not verify; ``str()`` starts with the rule as the contract words it."""

    rule: Rule = Rule.SHAPE

    def __init__(self, message: str, *, version: int | None = None, detail: str = ""):
        self.message = message
        self.version = version
        self.detail = detail
        super().__init__(f"{message}: {detail}" if detail else message)


class ShapeError(ChainError):
    rule = Rule.SHAPE


class NotCanonicalError(ChainError):
    rule = Rule.NOT_CANONICAL


class GenesisHashError(ChainError):
    rule = Rule.GENESIS_HASH


class ConsortiumError(ChainError):
    rule = Rule.CONSORTIUM


class VersionError(ChainError):
    rule = Rule.VERSION


class PreviousError(ChainError):
    rule = Rule.PREVIOUS


class ChangeError(ChainError):
    rule = Rule.CHANGE


class SignatureError(ChainError):
    rule = Rule.SIGNATURES


# --- the model ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PublicJwk(_Strict):
    kty: Literal["EC"]
    crv: Literal["P-256"]
    x: str = Field(pattern=B64U_PATTERN, min_length=43, max_length=43)
    y: str = Field(pattern=B64U_PATTERN, min_length=43, max_length=43)

    @model_validator(mode="after")
    def _on_the_curve(self) -> PublicJwk:
        try:
            _public_key(self.x, self.y)
        except ValueError as error:
            raise ValueError("x and y are not a point on P-256") from error
        return self


class KeyRef(_Strict):
    kid: str = Field(pattern=KID_PATTERN, max_length=512)
    jwk: PublicJwk


class Member(_Strict):
    member_id: str = Field(pattern=MEMBER_ID.pattern)
    legal_name: str = Field(max_length=300)
    governance_key: KeyRef
    endpoint: str = Field(pattern=ENDPOINT_PATTERN, max_length=2048)
    #: The member's Corda node identity and TLS keys, when it publishes them in the chain.
    identity_key: KeyRef | None = None
    tls_key: KeyRef | None = None

    @field_validator("legal_name")
    @classmethod
    def _x500(cls, value: str) -> str:
        x500_name(value)
        return value


class Change(_Strict):
    kind: Annotated[Kind, Field(strict=False)]  # the wire value, a string
    member_id: str = Field(pattern=MEMBER_ID.pattern)
    proposal_id: str = Field(pattern=PROPOSAL_ID_PATTERN)


class Signature(_Strict):
    member_id: str = Field(pattern=MEMBER_ID.pattern)
    kid: str = Field(pattern=KID_PATTERN, max_length=512)
    sig: str = Field(pattern=B64U_PATTERN, min_length=86, max_length=86)


class Document(_Strict):
    consortium: str = Field(pattern=CONSORTIUM_PATTERN)
    version: int = Field(ge=0, le=2**53 - 1)
    previous: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None
    issued_at: str = Field(pattern=TIMESTAMP_PATTERN)
    quorum: Literal["majority"]
    change: Change
    members: tuple[Member, ...] = Field(min_length=1, max_length=500, strict=False)  # a JSON array
    signatures: tuple[Signature, ...] = Field(max_length=1000, strict=False)

    @field_validator("issued_at")
    @classmethod
    def _a_real_time(cls, value: str) -> str:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value

    @model_validator(mode="after")
    def _members_ordered_and_distinct(self) -> Document:
        ids = [m.member_id for m in self.members]
        if ids != sorted(set(ids)):
            raise ValueError("members must be in member_id order, each member once")
        names = [x500_name(m.legal_name) for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError("two members share a legal_name")
        kids = [m.governance_key.kid for m in self.members]
        points = [(m.governance_key.jwk.x, m.governance_key.jwk.y) for m in self.members]
        if len(set(kids)) != len(kids) or len(set(points)) != len(points):
            raise ValueError("two members share a governance key")
        if (self.version == 0) != (self.previous is None) or (self.version == 0) != (self.change.kind == Kind.GENESIS):
            raise ValueError("version 0, previous null and change genesis go together")
        return self

    def member(self, member_id: str) -> Member | None:
        return next((m for m in self.members if m.member_id == member_id), None)

    @property
    def member_ids(self) -> tuple[str, ...]:
        return tuple(m.member_id for m in self.members)

    @property
    def label(self) -> str:
        """``version 3 (admit bank-d)``: how errors and logs name a version."""
        return f"version {self.version} ({self.change.kind} {self.change.member_id})"


# --- canonical form and hashes -----------------------------------------------------------------


def canonical(document: Any) -> bytes:
    """RFC 8785 bytes of any JSON value (``rfc8785`` refuses what JSON cannot carry)."""
    try:
        return rfc8785.dumps(document)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as error:
        raise ShapeError("not canonicalizable JSON", detail=str(error)) from error


@lru_cache(maxsize=8192)
def x500_name(name: str) -> tuple[tuple[str, str], ...]:
    """A legal name's attributes, sorted (names repeat version after version: parsed once each)."""
    return tuple(sorted(parse_x500(name).items()))


#: Canonical bytes of member entries seen, by ``repr`` of the parsed entry (at most ``ENTRIES_KEPT``).
_entries: dict[str, bytes] = {}
ENTRIES_KEPT = 4096


def _canonical_entry(value: dict[str, Any]) -> bytes:
    """One member entry's RFC 8785 bytes, computed once per process for each distinct entry.

    The cache key is ``repr`` of the parsed value: two parsed JSON values (str, int, float, bool, None,
    list, dict) with one ``repr`` are equal, types included (``True`` and ``1``, ``1`` and ``1.0`` differ);
    equal values whose keys came in another order only miss the cache. The bytes are always rfc8785's."""
    identity = repr(value)
    found = _entries.get(identity)
    if found is None:
        if len(_entries) >= ENTRIES_KEPT:
            _entries.clear()
        found = _entries[identity] = canonical(value)
    return found


def _canonical_value(key: str, value: Any) -> bytes:
    """``value`` in RFC 8785 form. A list of objects (the members) is serialized entry by entry, each
    entry once per process: consecutive versions repeat all but one member, and an array's canonical
    form is its elements' canonical forms joined by commas."""
    if key == "members" and isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return b"[" + b",".join(_canonical_entry(v) for v in value) + b"]"
    return canonical(value)


def _members_of(document: Mapping[str, Any]) -> dict[str, bytes]:
    """Each top-level member of ``document`` serialized as RFC 8785 does (``"key":value``).

    An object's canonical form is its members in key order (UTF-16 code units), joined by commas;
    so the form with and without ``signatures`` are assembled from one serialization of each member.
    """
    return {key: _canonical_key(key) + b":" + _canonical_value(key, value) for key, value in document.items()}


@lru_cache(maxsize=64)
def _canonical_key(key: str) -> bytes:
    """A top-level key's RFC 8785 bytes (every version has the same few keys)."""
    return canonical(key)


def _assemble(members: Mapping[str, bytes], *, without: str | None = None) -> bytes:
    keys = sorted((k for k in members if k != without), key=lambda k: k.encode("utf-16-be"))
    return b"{" + b",".join(members[k] for k in keys) + b"}"


def signing_bytes(document: Mapping[str, Any]) -> bytes:
    """What every signature is over: the canonical form of the document without ``signatures``."""
    return canonical({k: v for k, v in document.items() if k != "signatures"})


def document_hash(document: Mapping[str, Any]) -> str:
    """A version's hash: lowercase hex SHA-256 of ``signing_bytes``."""
    return hashlib.sha256(signing_bytes(document)).hexdigest()


def published_bytes(document: Mapping[str, Any]) -> bytes:
    """How a version is stored and published: the RFC 8785 form of the whole document."""
    return canonical(document)


def _no_duplicate_keys_or_refuse(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise ShapeError("not JSON", detail=f"a key appears twice in one object: {twice}")
    return dict(pairs)


def read_published(raw: bytes, *, limit: int = MAX_DOCUMENT_BYTES) -> tuple[dict[str, Any], str]:
    """A version as read from storage, and its hash: at most ``limit`` bytes of JSON in exactly its
    RFC 8785 form (each member serialized once, for the check and for the hash).

    Refusing anything but the canonical bytes means one version has one byte string: no duplicate
    keys read two ways, no numbers or escapes that two parsers could disagree on.
    """
    if len(raw) > limit:
        raise ShapeError("document too large", detail=f"{len(raw)} bytes, at most {limit}")
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ShapeError("not JSON", detail=str(error)[:200]) from error
    if not isinstance(value, dict):
        raise ShapeError("not a JSON object")
    members = _members_of(value)
    if _assemble(members) != raw:
        # A key given twice is one way to differ (the parse kept one of them): say so if it is that.
        json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys_or_refuse)
        raise NotCanonicalError("bytes are not the RFC 8785 canonical form of the document")
    return value, hashlib.sha256(_assemble(members, without="signatures")).hexdigest()


def parse_published(raw: bytes, *, limit: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    """``read_published`` without the hash."""
    return read_published(raw, limit=limit)[0]


def first_problem(error: ValidationError) -> tuple[str, str]:
    """Where a document read from another member first breaks its model, and the rule: ``("a.b", "msg")``."""
    first = error.errors()[0]
    return ".".join(str(p) for p in first["loc"]), str(first["msg"])


#: Validated member entries, by ``repr`` of the parsed entry (see ``_canonical_entry``).
_members: dict[str, Member] = {}


def forget() -> None:
    """Empty this process's caches (keys, entries, names) and stop its worker pools: what a new
    deployment or node starts with."""
    global _pool, _processes
    for pool in (_pool, _processes):
        if pool is not None and pool[0] == os.getpid():
            pool[1].shutdown(wait=True)
    _pool = _processes = None
    _public_key.cache_clear()
    x500_name.cache_clear()
    _canonical_key.cache_clear()
    _entries.clear()
    _members.clear()


def _member(value: dict[str, Any]) -> Member:
    identity = repr(value)
    found = _members.get(identity)
    if found is None:
        if len(_members) >= ENTRIES_KEPT:
            _members.clear()
        found = _members[identity] = Member.model_validate(value)
    return found


def parse(raw: Mapping[str, Any]) -> Document:
    """The typed document, or a ``ShapeError`` naming the first field and rule that fail.

    Member entries are validated once per process (consecutive versions repeat all but one); an
    entry that fails is left to the document's validation, which names where it fails."""
    members = raw.get("members")
    if isinstance(members, list) and all(isinstance(m, dict) for m in members):
        try:
            raw = {**raw, "members": [_member(m) for m in members]}
        except ValidationError:
            pass
    try:
        return Document.model_validate(raw)
    except ValidationError as error:
        where, rule = first_problem(error)
        version = raw.get("version") if isinstance(raw.get("version"), int) else None
        raise ShapeError(f"not a membership document: {where or 'document'}", version=version, detail=rule) from None


# --- signatures --------------------------------------------------------------------------------


#: base64url without padding, as JWS writes it (re-exported: signers and tests use ``chain.b64u``).
b64u = es256.b64u
_b64u_decode = es256.b64u_decode
_public_key = es256.public_key


def verify_signature(jwk: PublicJwk, digest: bytes, sig: str) -> bool:
    """ES256: the raw r||s ``sig`` over the SHA-256 ``digest`` with the key ``jwk``."""
    return es256.verify(jwk.x, jwk.y, digest, sig)


#: Signatures of one version checked on more than one core from this many on (OpenSSL's verify runs
#: without the GIL; below it, handing them to threads costs more than it saves).
PARALLEL_FROM = 8
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _executor() -> ThreadPoolExecutor:
    """One pool per process (a pool inherited through fork has no threads behind it)."""
    global _pool
    if _pool is None or _pool[0] != os.getpid():
        _pool = (os.getpid(), ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="es256"))
    return _pool[1]


#: A long read (``verify_published`` of at least this many versions) checks signatures in worker
#: processes: threads would wait for the GIL the reading thread holds between two OpenSSL calls.
PROCESSES_FROM = 64
#: Versions whose signatures go to a worker process in one task (one round trip for several).
BATCH = 8
_processes: tuple[int, ProcessPoolExecutor] | None = None


def _process_executor() -> ProcessPoolExecutor | None:
    """Worker processes for signature checks (spawned: this process may have threads), one pool per
    process; None on a machine with one core."""
    global _processes
    workers = (os.cpu_count() or 1) - 1
    if workers < 1:
        return None
    if _processes is None or _processes[0] != os.getpid():
        context = multiprocessing.get_context("spawn")
        _processes = (os.getpid(), ProcessPoolExecutor(max_workers=workers, mp_context=context))
    return _processes[1]


#: Versions' signature checks as a worker takes them: per version, its (x, y, signature) and digest.
Batch = list[es256.Checks]
_verify_batch = es256.verify_batch


def verify_signatures(checks: Sequence[tuple[PublicJwk, str]], digest: bytes) -> list[bool]:
    """``verify_signature`` of each (key, signature) over one ``digest``, in order; spread over the
    machine's cores when there are enough of them to be worth it."""
    workers = os.cpu_count() or 1
    if workers < 2 or len(checks) < PARALLEL_FROM:
        return [verify_signature(jwk, digest, sig) for jwk, sig in checks]
    size = -(-len(checks) // workers)
    chunks = [checks[i : i + size] for i in range(0, len(checks), size)]
    results = _executor().map(lambda chunk: [verify_signature(jwk, digest, sig) for jwk, sig in chunk], chunks)
    return [verdict for chunk in results for verdict in chunk]


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


def _signature_plan(
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


def _signature_count(
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
    electorate_size = len(document.members) if base is None else len(base.members)
    threshold = electorate_size if base is None else electorate_size // 2 + 1
    counted = frozenset(signers[k].member_id for k in valid if signers[k].counts)
    missing = frozenset(k for k, s in signers.items() if s.required and k not in valid)
    return SignatureResult(counted, threshold, missing, tuple(invalid), frozenset(valid))


def signature_result(base: Document | None, document: Document, digest: bytes) -> SignatureResult:
    """Count ``document``'s signatures against the version before it (``None`` for genesis);
    ``digest`` is the SHA-256 of its signing bytes (``bytes.fromhex(document_hash(raw))``)."""
    signers, listed, checks = _signature_plan(base, document)
    return _signature_count(base, document, signers, listed, verify_signatures(checks, digest))


def own_signing_bytes(document: Mapping[str, Any]) -> bytes:
    """What a member signs its own published documents over (its head, its keys.json): RFC 8785 of the
    document without ``sig``."""
    return canonical({k: v for k, v in document.items() if k != "sig"})


def own_signature_problem(document: Mapping[str, Any], *, kid: str, sig: str, keys: Iterable[KeyRef]) -> str | None:
    """Why a member's own signed document does not verify (``None`` when it does): it must be signed, over
    ``own_signing_bytes``, with one of ``keys`` (the key(s) the reader's verified chain lists for it)."""
    key = next((k for k in keys if k.kid == kid), None)
    if key is None:
        return "signed with a key its chain entry does not list"
    if not verify_signature(key.jwk, hashlib.sha256(own_signing_bytes(document)).digest(), sig):
        return "signature does not verify"
    return None


# --- the change --------------------------------------------------------------------------------


def expected_members(base: Document, document: Document) -> tuple[Member, ...]:
    """``base``'s members with ``document.change`` applied; ``ChangeError`` if it cannot apply.

    For an admit or a rotate the new entry is the one ``document`` carries; everything else must be
    ``base``'s, byte for byte.
    """
    change = document.change
    label = document.label
    before = {m.member_id: m for m in base.members}
    target = change.member_id
    if change.kind == Kind.GENESIS:
        raise ChangeError(f"{label}: only version 0 is a genesis", version=document.version)
    if change.kind == Kind.ADMIT:
        if target in before:
            raise ChangeError(f"{label}: {target} is already a member", version=document.version)
        entry = document.member(target)
        if entry is None:
            raise ChangeError(f"{label}: the newcomer's entry is missing", version=document.version)
        return tuple(sorted([*base.members, entry], key=lambda m: m.member_id))
    if target not in before:
        raise ChangeError(f"{label}: {target} is not a member of version {base.version}", version=document.version)
    if change.kind in (Kind.REMOVE, Kind.LEAVE):
        if len(base.members) == 1:
            raise ChangeError(f"{label}: the last member cannot go", version=document.version)
        return tuple(m for m in base.members if m.member_id != target)
    entry = document.member(target)
    old = before[target]
    if entry is None or entry == old:
        raise ChangeError(f"{label}: a rotate must change the member's entry", version=document.version)
    if entry.legal_name != old.legal_name:
        raise ChangeError(f"{label}: a rotate cannot change the legal name", version=document.version)
    if entry.governance_key.kid == old.governance_key.kid and entry.governance_key != old.governance_key:
        raise ChangeError(f"{label}: a new governance key needs a new kid", version=document.version)
    return tuple(entry if m.member_id == target else m for m in base.members)


# --- trusted versions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Trusted:
    """A version that verified from the pinned genesis: the only kind the rest of the code believes."""

    document: Document
    hash: str
    #: The whole document as published (RFC 8785 of this is what other members read).
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def version(self) -> int:
        return self.document.version

    def published(self) -> bytes:
        return published_bytes(self.raw)


def _changed_fields(before: Member | None, after: Member | None) -> str:
    if before is None or after is None:
        return "member " + ("added" if before is None else "dropped")
    a, b = before.model_dump(), after.model_dump()
    return ", ".join(sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)))


def _genesis_shape(pinned_hash: str, raw: Mapping[str, Any], digest: str | None) -> Trusted:
    """Version 0 checked for everything but its signatures (a ``Trusted`` only once they count)."""
    document = parse(raw)
    digest = digest or document_hash(raw)
    if document.version != 0:
        raise VersionError(f"version {document.version} where version 0 was expected", version=document.version)
    if digest != pinned_hash:
        raise GenesisHashError("genesis hash does not match", version=0, detail=f"{digest} is not {pinned_hash}")
    return Trusted(document, digest, raw)


def _next_shape(trusted: Trusted, raw: Mapping[str, Any], digest: str | None) -> Trusted:
    """Version N+1 checked against version N for everything but its signatures."""
    base = trusted.document
    document = parse(raw)
    v = document.version
    if document.consortium != base.consortium or document.quorum != base.quorum:
        raise ConsortiumError(f"version {v}: another consortium or quorum rule", version=v)
    if v != base.version + 1:
        raise VersionError(f"version {v} after {base.version}", version=v)
    if document.previous != trusted.hash:
        raise PreviousError(f"version {v}: previous is not the hash of version {base.version}", version=v)
    if document.issued_at < base.issued_at:
        raise ChangeError(f"{document.label}: issued before version {base.version}", version=v)
    expected = expected_members(base, document)
    if expected != document.members:
        ids = sorted({m.member_id for m in expected} | set(document.member_ids))
        diff = [
            f"{i}: {_changed_fields(next((m for m in expected if m.member_id == i), None), document.member(i))}"
            for i in ids
            if next((m for m in expected if m.member_id == i), None) != document.member(i)
        ]
        raise ChangeError(
            f"version {v}: members differ from version {base.version} by more than its change",
            version=v,
            detail="; ".join(diff),
        )
    return Trusted(document, digest or document_hash(raw), raw)


def _signed(candidate: Trusted, result: SignatureResult) -> Trusted:
    if not result.sufficient:
        raise SignatureError(
            f"{candidate.document.label}: not signed as the contract requires",
            version=candidate.version,
            detail=result.explain(),
        )
    return candidate


def verify_genesis(pinned_hash: str, raw: Mapping[str, Any], *, digest: str | None = None) -> Trusted:
    """Version 0, if it is the genesis this deployment was given and every founder signed it.

    ``digest`` is the hash ``read_published`` computed from the same bytes, when it did."""
    candidate = _genesis_shape(pinned_hash, raw, digest)
    result = signature_result(None, candidate.document, bytes.fromhex(candidate.hash))
    return _signed(candidate, result)


def verify_next(trusted: Trusted, raw: Mapping[str, Any], *, digest: str | None = None) -> Trusted:
    """Version N+1 if it verifies against the trusted version N; else the ``ChainError`` of the rule.

    ``digest`` is the hash ``read_published`` computed from the same bytes, when it did."""
    candidate = _next_shape(trusted, raw, digest)
    result = signature_result(trusted.document, candidate.document, bytes.fromhex(candidate.hash))
    return _signed(candidate, result)


#: Versions whose signatures may wait unchecked at once in ``verify_published`` (bounds how far the
#: reading runs ahead of the checks).
IN_FLIGHT = 256


@dataclass
class _Checking:
    """A batch of versions' signature checks handed to a worker, and their verdicts once known."""

    future: Future[list[list[bool]]]
    task: Batch
    verdicts: list[list[bool]] | None = None

    def take_back(self) -> bool:
        """Check the batch in this thread if no worker has started it; whether it did."""
        if self.verdicts is None and self.future.cancel():
            self.verdicts = _verify_batch(self.task)
            return True
        return False

    def done(self) -> bool:
        return self.verdicts is not None or self.future.done()

    def result(self) -> list[list[bool]]:
        if self.verdicts is None:
            try:
                self.verdicts = self.future.result()
            except BrokenProcessPool as error:
                log.warning("signature checks in this thread: a worker process died (%s)", error)
                self.verdicts = _verify_batch(self.task)
        return self.verdicts


def verify_published(
    pinned_hash: str, published: Sequence[bytes], *, after: Trusted | None = None
) -> tuple[list[Trusted], ChainError | None]:
    """Versions as their bytes were read, each against the one before (from the genesis, or after
    ``after``): what ``verify_genesis`` and ``verify_next`` check, with the same errors, but while this
    thread reads and checks version N+1, the signatures of the versions before are checked on the other
    cores (in worker processes for a long read, ``PROCESSES_FROM``; else in threads). When this thread
    has read all it can (or is ``IN_FLIGHT`` ahead), it takes back the newest batches no worker has
    started and checks them itself, so every core checks signatures until the last. Returns the
    versions that verified, in order, and the error of the first that did not (None when all did);
    nothing after a version that failed is returned."""
    processes = _process_executor() if len(published) >= PROCESSES_FROM else None
    threads = _executor()
    #: read, shape-checked versions whose signatures are being checked, oldest first
    pending: list[tuple[Trusted, Document | None, Any, Any]] = []
    checking: list[_Checking] = []  # one per batch of pending, in order
    batch: Batch = []
    verified: list[Trusted] = []
    shape_error: ChainError | None = None
    tentative = after

    def send() -> None:
        nonlocal processes
        if not batch:
            return
        task = list(batch)
        batch.clear()
        if processes is not None:
            try:
                checking.append(_Checking(processes.submit(_verify_batch, task), task))
                return
            except (BrokenProcessPool, OSError, RuntimeError) as error:  # no worker process: threads it is
                log.warning("signature checks in threads: worker processes unavailable (%s)", error)
                processes = None
        checking.append(_Checking(threads.submit(_verify_batch, task), task))

    def settle() -> ChainError | None:
        """Count the signatures of the oldest batch's versions; until a worker has checked them, this
        thread checks the newest batch no worker has started, one at a time."""
        oldest = checking[0]
        while not oldest.done() and any(later.take_back() for later in reversed(checking[1:])):
            pass
        oldest.take_back()
        for found in checking.pop(0).result():
            candidate, base, signers, listed = pending.pop(0)
            try:
                verified.append(_signed(candidate, _signature_count(base, candidate.document, signers, listed, found)))
            except SignatureError as error:
                return error
        return None

    for raw in published:
        try:
            document, digest = read_published(raw)
            if tentative is None:
                candidate, base = _genesis_shape(pinned_hash, document, digest), None
            else:
                candidate, base = _next_shape(tentative, document, digest), tentative.document
        except ChainError as refused:
            shape_error = refused
            break
        signers, listed, checks = _signature_plan(base, candidate.document)
        batch.append(([(jwk.x, jwk.y, sig) for jwk, sig in checks], bytes.fromhex(candidate.hash)))
        pending.append((candidate, base, signers, listed))
        tentative = candidate
        if len(batch) >= BATCH:
            send()
        while checking and (checking[0].done() or len(checking) * BATCH >= IN_FLIGHT):
            if (unsigned := settle()) is not None:
                return verified, unsigned
    send()
    while checking:
        if (unsigned := settle()) is not None:
            return verified, unsigned
    return verified, shape_error


def verify_chain(pinned_hash: str, versions: Sequence[Mapping[str, Any]]) -> list[Trusted]:
    """Every version from genesis, each against the one before; the first that fails raises."""
    if not versions:
        raise ShapeError("an empty chain")
    trusted = [verify_genesis(pinned_hash, versions[0])]
    for raw in versions[1:]:
        trusted.append(verify_next(trusted[-1], raw))
    return trusted


def equivocators(a: Trusted, b: Trusted) -> list[str]:
    """The members who signed both of two different valid documents of one version: the fork's authors.

    Any two valid versions N+1 each carry more than half of version N's members, so while ``a`` and
    ``b`` are different documents the list is never empty.
    """
    if a.version != b.version or a.hash == b.hash:
        return []
    signed_a = {(s.member_id, s.kid) for s in a.document.signatures}
    signed_b = {(s.member_id, s.kid) for s in b.document.signatures}
    return sorted({member_id for member_id, _ in signed_a & signed_b})


# --- building the next version -----------------------------------------------------------------


def unsigned_next(
    trusted: Trusted, change: Mapping[str, str], *, issued_at: str, entry: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The unsigned version N+1 that applies ``change`` (with ``entry``, the member's new entry for an
    admit or a rotate) to the trusted version N: the same bytes whoever builds it."""
    base = trusted.raw
    members: list[Mapping[str, Any]] = [m for m in base["members"] if m["member_id"] != change["member_id"]]
    if change["kind"] in (Kind.ADMIT, Kind.ROTATE):
        if entry is None:
            raise ValueError(f"a {change['kind']} needs the member's entry")
        members.append(entry)
    members.sort(key=lambda m: str(m["member_id"]))
    return {
        "consortium": base["consortium"],
        "version": trusted.version + 1,
        "previous": trusted.hash,
        "issued_at": max(issued_at, str(base["issued_at"])),
        "quorum": base["quorum"],
        "change": dict(change),
        "members": [dict(m) for m in members],
        "signatures": [],
    }


def unsigned_genesis(
    consortium: str, founders: Iterable[Mapping[str, Any]], *, convener: str, issued_at: str
) -> dict[str, Any]:
    """Version 0 listing ``founders``, before any founder signs it."""
    members = sorted((dict(m) for m in founders), key=lambda m: str(m["member_id"]))
    return {
        "consortium": consortium,
        "version": 0,
        "previous": None,
        "issued_at": issued_at,
        "quorum": "majority",
        "change": {"kind": Kind.GENESIS.value, "member_id": convener, "proposal_id": f"prop-genesis-{convener}"},
        "members": members,
        "signatures": [],
    }


def with_signatures(document: Mapping[str, Any], signatures: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    """``document`` carrying ``signatures`` (added to those it has, each (member, kid) once, in order)."""
    merged = {(s["member_id"], s["kid"]): dict(s) for s in document.get("signatures", [])}
    for s in signatures:
        merged.setdefault((s["member_id"], s["kid"]), dict(s))
    return {**document, "signatures": [merged[k] for k in sorted(merged)]}


class NodeTrust:
    """What a Corda node's agent believes: the pinned genesis, then each version that verifies against
    the one before it (``verify_genesis`` / ``verify_next``, nothing else). A document that does not
    verify is refused with the rule it breaks and changes nothing; an older or repeated version is
    refused as not the next one."""

    def __init__(self, pinned_hash: str):
        self.pinned = pinned_hash
        self.chain: list[Trusted] = []
        self.refused: list[str] = []
        #: The errors behind ``refused``, in the same order (each names its rule: ``error.rule``).
        self.errors: list[ChainError] = []

    @property
    def head(self) -> Trusted | None:
        return self.chain[-1] if self.chain else None

    def accept(self, raw: Mapping[str, Any], *, digest: str | None = None) -> bool:
        try:
            if self.chain:
                trusted = verify_next(self.chain[-1], raw, digest=digest)
            else:
                trusted = verify_genesis(self.pinned, raw, digest=digest)
        except ChainError as error:
            self.refused.append(str(error))
            self.errors.append(error)
            return False
        self.chain.append(trusted)
        return True

    def accept_published(self, raw: bytes) -> bool:
        """A version as its bytes were read: refused unless canonical, then ``accept``."""
        try:
            document, digest = read_published(raw)
        except ChainError as error:
            self.refused.append(str(error))
            self.errors.append(error)
            return False
        return self.accept(document, digest=digest)

    def accept_all(self, published: Sequence[bytes]) -> int:
        """Versions N+1, N+2... as their bytes were read, in order (``verify_published``: the next one
        is read while the signatures of the ones before are checked); stops at the first refused.
        Returns how many were accepted."""
        verified, error = verify_published(self.pinned, published, after=self.head)
        self.chain.extend(verified)
        if error is not None:
            self.refused.append(str(error))
            self.errors.append(error)
        return len(verified)

    def members(self) -> tuple[Member, ...]:
        """The members the node may transact with: those the verified head lists."""
        return self.head.document.members if self.head else ()
