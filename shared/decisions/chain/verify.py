"""The one check of a version: against the pinned genesis hash, or against the trusted version before.

``verify_genesis`` (version 0) and ``verify_next`` (version N+1 against the trusted N) raise the
``ChainError`` subclass of the first rule broken, and otherwise return a ``Trusted`` version; nothing
read from another member or from storage becomes ``Trusted`` without passing them. The rules, in the
order they are checked, are listed in ``shared.decisions.chain``'s docstring.

Each check is the shape of the candidate (``genesis_candidate`` / ``next_candidate``: everything but
its signatures), then its signatures (``signatures.signature_result``, then ``signed_enough``). A
reader of many versions at once (``shared.verification``) runs the same steps, checking the
signatures of the versions before on other cores while it reads the next.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shared.decisions.chain.canonical import document_hash, published_bytes
from shared.decisions.chain.model import (
    ChangeError,
    ConsortiumError,
    Document,
    GenesisHashError,
    Kind,
    Member,
    PreviousError,
    ShapeError,
    SignatureError,
    VersionError,
)
from shared.decisions.chain.signatures import Check, SignatureResult, check_each, signature_result
from shared.decisions.signed import first_problem


def parse(raw: Mapping[str, Any], *, member: Callable[[dict[str, Any]], Member] | None = None) -> Document:
    """The typed document, or a ``ShapeError`` naming the first field and rule that fail.

    ``member``, when given, validates each member entry first (a reader of many versions memoizes it:
    consecutive versions repeat all but one); an entry that fails is left to the document's
    validation, which names where it fails."""
    members = raw.get("members")
    if member is not None and isinstance(members, list) and all(isinstance(m, dict) for m in members):
        try:
            raw = {**raw, "members": [member(m) for m in members]}
        except ValidationError:
            pass
    try:
        return Document.model_validate(raw)
    except ValidationError as error:
        where, rule = first_problem(error)
        version = raw.get("version") if isinstance(raw.get("version"), int) else None
        raise ShapeError(f"not a membership document: {where or 'document'}", version=version, detail=rule) from None


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
    if change.kind == Kind.PARAMETERS:  # the proposer is a member; the members stay as they were
        return base.members
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


def check_network(base: Document, document: Document) -> None:
    """Contract v3: only a ``parameters`` version changes ``network``, and it steps the epoch by one (to 1
    where the version before had none); every other kind carries ``network`` exactly as it was."""
    v = document.version
    if document.change.kind != Kind.PARAMETERS:
        if document.network != base.network:
            raise ChangeError(f"version {v}: network changed outside a parameters version", version=v)
        return
    epoch = base.network.epoch + 1 if base.network else 1
    if document.network is None or document.network.epoch != epoch:
        found = "no network" if document.network is None else f"epoch {document.network.epoch}"
        raise ChangeError(f"version {v}: network epoch must be {epoch}", version=v, detail=found)


def _changed_fields(before: Member | None, after: Member | None) -> str:
    if before is None or after is None:
        return "member " + ("added" if before is None else "dropped")
    a, b = before.model_dump(), after.model_dump()
    return ", ".join(sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)))


def genesis_candidate(pinned_hash: str, document: Document, raw: Mapping[str, Any], digest: str | None) -> Trusted:
    """Version 0 (``document``, parsed from ``raw``) checked for everything but its signatures (a
    ``Trusted`` only once they count: ``signed_enough``)."""
    digest = digest or document_hash(raw)
    if document.version != 0:
        raise VersionError(f"version {document.version} where version 0 was expected", version=document.version)
    if digest != pinned_hash:
        raise GenesisHashError("genesis hash does not match", version=0, detail=f"{digest} is not {pinned_hash}")
    if document.network is not None and document.network.epoch != 1:
        raise ChangeError("version 0: network epoch must be 1", version=0, detail=f"epoch {document.network.epoch}")
    return Trusted(document, digest, raw)


def next_candidate(trusted: Trusted, document: Document, raw: Mapping[str, Any], digest: str | None) -> Trusted:
    """Version N+1 (``document``, parsed from ``raw``) checked against version N for everything but its
    signatures."""
    base = trusted.document
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
    check_network(base, document)
    return Trusted(document, digest or document_hash(raw), raw)


def signed_enough(candidate: Trusted, result: SignatureResult) -> Trusted:
    """``candidate`` once its signatures are as the contract requires; else ``SignatureError``."""
    if not result.sufficient:
        raise SignatureError(
            f"{candidate.document.label}: not signed as the contract requires",
            version=candidate.version,
            detail=result.explain(),
        )
    return candidate


def verify_genesis(
    pinned_hash: str, raw: Mapping[str, Any], *, digest: str | None = None, check: Check = check_each
) -> Trusted:
    """Version 0, if it is the genesis this deployment was given and every founder signed it.

    ``digest`` is the hash ``read_published`` computed from the same bytes, when it did; ``check``
    verifies the signatures (in this thread, unless given another way with the same verdicts)."""
    candidate = genesis_candidate(pinned_hash, parse(raw), raw, digest)
    result = signature_result(None, candidate.document, bytes.fromhex(candidate.hash), check=check)
    return signed_enough(candidate, result)


def verify_next(
    trusted: Trusted, raw: Mapping[str, Any], *, digest: str | None = None, check: Check = check_each
) -> Trusted:
    """Version N+1 if it verifies against the trusted version N; else the ``ChainError`` of the rule.

    ``digest`` is the hash ``read_published`` computed from the same bytes, when it did; ``check``
    verifies the signatures (in this thread, unless given another way with the same verdicts)."""
    candidate = next_candidate(trusted, parse(raw), raw, digest)
    result = signature_result(trusted.document, candidate.document, bytes.fromhex(candidate.hash), check=check)
    return signed_enough(candidate, result)


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
