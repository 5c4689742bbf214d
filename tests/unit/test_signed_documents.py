"""Every member-signed document has one shape: a strict model, one check, an error carrying its rule.

One row per rule of a member's own documents (a head, a keys document), each with the message users
and rejection records see; then the instant and the majority every document uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.decisions import chain, published_keys, signed
from shared.decisions import consortium as rules
from tests.support.chain_world import Key, new_key

A, B = new_key("bank-a"), new_key("bank-b")
KEY_A = chain.KeyRef.model_validate(A.ref)


def head(key: Key = A, **changes: Any) -> dict[str, Any]:
    body = {"member_id": "bank-a", "kid": key.kid, "seq": 3, "updated_at": "2026-01-02T03:04:05Z", **changes}
    return {**body, "sig": key.sign_own(body)}


def keys_document(key: Key = A, **changes: Any) -> dict[str, Any]:
    body = {
        "member_id": "bank-a",
        "kid": key.kid,
        "seq": 3,
        "updated_at": "2026-01-02T03:04:05Z",
        "keys": {"tls": [B.ref]},
        **changes,
    }
    return {**body, "sig": key.sign_own(body)}


def verify_head(raw: dict[str, Any]) -> object:
    return rules.verify_head(raw, member_id="bank-a", keys=[KEY_A])


def verify_keys(raw: dict[str, Any]) -> object:
    return published_keys.verify_keys_document(raw, member_id="bank-a", key=KEY_A, after_seq=2)


@dataclass(frozen=True)
class Row:
    why: str
    verify: Callable[[dict[str, Any]], object]
    raw: Callable[[], dict[str, Any]]
    rule: signed.Rule | None
    message: str = ""


ROWS = [
    Row("a head its member signed verifies", verify_head, head, None),
    Row("a head with a field the model does not know is refused as shape", verify_head,
        lambda: head(extra=1), signed.Rule.SHAPE, "head of bank-a: extra: Extra inputs are not permitted"),
    Row("a head naming another member is refused as member", verify_head,
        lambda: head(member_id="bank-b"), signed.Rule.MEMBER, "head of bank-a names bank-b"),
    Row("a head signed with a key the chain does not list is refused as signature", verify_head,
        lambda: head(B), signed.Rule.SIGNATURE, "head of bank-a: signed with a key its chain entry does not list"),
    Row("a head changed after it was signed is refused as signature", verify_head,
        lambda: {**head(), "seq": 4}, signed.Rule.SIGNATURE, "head of bank-a: signature does not verify"),
    Row("a keys document its member signed verifies", verify_keys, keys_document, None),
    Row("a keys document with a field of the wrong type is refused as shape", verify_keys,
        lambda: keys_document(seq="3"), signed.Rule.SHAPE, "keys of bank-a: seq: Input should be a valid integer"),
    Row("a keys document naming another member is refused as member", verify_keys,
        lambda: keys_document(member_id="bank-b"), signed.Rule.MEMBER, "keys of bank-a name bank-b"),
    Row("a keys document listing three keys of a kind is refused as shape", verify_keys,
        lambda: keys_document(keys={"tls": [A.ref, B.ref, new_key("bank-c").ref]}), signed.Rule.SHAPE,
        "keys of bank-a: tls lists 3 keys (one, or two in an overlap)"),
    Row("a keys document not after the one accepted is refused as replayed", verify_keys,
        lambda: keys_document(seq=2), signed.Rule.REPLAYED, "keys of bank-a: seq 2 is not after 2"),
    Row("a keys document signed with another key is refused as signature", verify_keys,
        lambda: keys_document(B), signed.Rule.SIGNATURE, "keys of bank-a: signed with a key its chain entry"),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.why for r in ROWS])
def test_rules(row: Row) -> None:
    if row.rule is None:
        row.verify(row.raw())
        return
    with pytest.raises(signed.DocumentError) as refused:
        row.verify(row.raw())
    assert refused.value.rule is row.rule
    assert str(refused.value).startswith(row.message), str(refused.value)


def test_each_documents_error_is_a_document_error_with_a_rule() -> None:
    assert issubclass(chain.ChainError, signed.DocumentError) and chain.SignatureError.rule is chain.Rule.SIGNATURES
    assert issubclass(rules.HeadError, signed.DocumentError)
    assert issubclass(published_keys.KeysDocumentError, signed.DocumentError)


def test_an_instant_is_read_as_utc_whatever_offset_it_is_written_with() -> None:
    assert signed.parse_instant("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert signed.parse_instant("2026-01-02T04:04:05+01:00") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(ValueError):
        signed.parse_instant("2026-13-02T03:04:05Z")


@pytest.mark.parametrize(("members", "needed"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (50, 26)])
def test_a_majority_is_more_than_half(members: int, needed: int) -> None:
    assert signed.majority(range(members)) == needed
