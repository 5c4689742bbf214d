"""The canonical form of a version: RFC 8785 bytes, the hash, and reading published bytes back.

Canonical form: RFC 8785 (JSON Canonicalization Scheme) through the ``rfc8785`` library, of the
document without ``signatures``; a version's hash is the lowercase hex SHA-256 of that form. A version
is stored and published as the RFC 8785 form of the whole document, and read back only if its bytes
are exactly that form. A member's own documents (its head, its keys, its node-info index) are signed
over the RFC 8785 form of the document without ``sig``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import rfc8785

from shared.decisions.chain.model import MAX_DOCUMENT_BYTES, NotCanonicalError, ShapeError

#: How one member entry of ``members`` becomes its RFC 8785 bytes (``canonical``, or a memo of it).
EntryBytes = Callable[[dict[str, Any]], bytes]


def canonical(document: Any) -> bytes:
    """RFC 8785 bytes of any JSON value (``rfc8785`` refuses what JSON cannot carry)."""
    try:
        return rfc8785.dumps(document)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as error:
        raise ShapeError("not canonicalizable JSON", detail=str(error)) from error


def _canonical_value(key: str, value: Any, entry: EntryBytes) -> bytes:
    """``value`` in RFC 8785 form. A list of objects (the members) is serialized entry by entry with
    ``entry``: an array's canonical form is its elements' canonical forms joined by commas, and
    consecutive versions repeat all but one member (a reader of many versions memoizes ``entry``)."""
    if key == "members" and isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return b"[" + b",".join(entry(v) for v in value) + b"]"
    return canonical(value)


def _members_of(document: Mapping[str, Any], entry: EntryBytes) -> dict[str, bytes]:
    """Each top-level member of ``document`` serialized as RFC 8785 does (``"key":value``).

    An object's canonical form is its members in key order (UTF-16 code units), joined by commas;
    so the form with and without ``signatures`` are assembled from one serialization of each member.
    """
    return {key: canonical_key(key) + b":" + _canonical_value(key, value, entry) for key, value in document.items()}


@lru_cache(maxsize=64)
def canonical_key(key: str) -> bytes:
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


def own_signing_bytes(document: Mapping[str, Any]) -> bytes:
    """What a member signs its own published documents over (its head, its keys.json): RFC 8785 of the
    document without ``sig``."""
    return canonical({k: v for k, v in document.items() if k != "sig"})


def _no_duplicate_keys_or_refuse(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise ShapeError("not JSON", detail=f"a key appears twice in one object: {twice}")
    return dict(pairs)


def read_published(
    raw: bytes, *, limit: int = MAX_DOCUMENT_BYTES, entry: EntryBytes = canonical
) -> tuple[dict[str, Any], str]:
    """A version as read from storage, and its hash: at most ``limit`` bytes of JSON in exactly its
    RFC 8785 form (each member serialized once, for the check and for the hash; each member entry by
    ``entry``, which must return ``canonical``'s bytes).

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
    members = _members_of(value, entry)
    if _assemble(members) != raw:
        # A key given twice is one way to differ (the parse kept one of them): say so if it is that.
        json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys_or_refuse)
        raise NotCanonicalError("bytes are not the RFC 8785 canonical form of the document")
    return value, hashlib.sha256(_assemble(members, without="signatures")).hexdigest()


def parse_published(raw: bytes, *, limit: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:
    """``read_published`` without the hash."""
    return read_published(raw, limit=limit)[0]
