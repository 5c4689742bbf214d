"""What every member-signed document shares: its strict model base, its error, its instants, its quorum.

Members publish several signed documents to each other: the chain's versions (``chain``), their
heads (``consortium``), their keys documents (``published_keys``), their node-info indexes and flag
days (``node_infos``). Each is read from another member's storage, so each is checked the one way
python-tuf checks its metadata: a strict typed model, one function that verifies it, and an error
that names the rule broken. This module holds what they have in common, written once:

- ``Strict``: the base of every such model: unknown fields refused, no type coercion, immutable;
- ``DocumentError``: the base of every such document's error, which carries its ``rule`` (an enum:
  the chain's own ``chain.Rule``, or ``Rule`` for a member's own documents) so that callers record the
  rule, never parse the message;
- ``first_problem``: where a document first breaks its model, as the errors word it;
- ``parse_instant``: the one reading of the contract's instants (``2026-01-02T03:04:05Z``);
- ``majority``: the one quorum rule, more than half.
"""

from __future__ import annotations

from collections.abc import Sized
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    """A model of a document read from outside: unknown fields, coercions and mutation are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Rule(StrEnum):
    """The rules of a member's own documents (its head, keys document, node-info index, flag day)."""

    SHAPE = "shape"  # not the document: not canonical JSON, a field missing, unknown or malformed
    MEMBER = "member"  # the document names another member than the one whose it is said to be
    SIGNATURE = "signature"  # not signed with a governance key the verified chain lists for the member
    REPLAYED = "replayed"  # a sequence number below one already accepted, or one reused for other content
    HASH = "hash"  # a file's bytes do not hash to what the verified document lists (or are not its size)
    MISSING = "missing"  # a file a verified document lists is not published (yet): nothing changes until it is


class DocumentError(ValueError):
    """A member-signed document that does not verify: ``rule`` names the rule it breaks (each document
    has its enum of rules), ``str()`` is the message as users and rejection records see it."""

    rule: StrEnum


def first_problem(error: ValidationError) -> tuple[str, str]:
    """Where a document read from another member first breaks its model, and the rule: ``("a.b", "msg")``."""
    first = error.errors()[0]
    return ".".join(str(p) for p in first["loc"]), str(first["msg"])


def parse_instant(text: str) -> datetime:
    """An instant as documents write it (``...Z``, or an explicit offset), as an aware UTC datetime;
    ``ValueError`` if it is not one."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def majority(electorate: Sized) -> int:
    """How many of ``electorate`` make a strict majority: more than half."""
    return len(electorate) // 2 + 1
