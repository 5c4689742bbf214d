"""The membership chain's rules: the contract's test vectors, one row per rule and attack, then invariants.

The vectors (tests/data/membership-chain.json) are the contract's own, copied as data: a valid chain
of six versions and invalid variants, each naming the rule it breaks.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.decisions import chain
from tests.support.chain_world import Bank, banks, genesis, new_key, next_version, sign

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "membership-chain.json").read_text(encoding="utf-8"))
VALID = VECTORS["valid"]


# --- the contract's vectors --------------------------------------------------------------------


def test_the_valid_vector_chain_verifies_from_its_genesis_with_the_hashes_it_states() -> None:
    trusted = chain.verify_chain(VALID["chain"]["genesis"], VALID["chain"]["versions"])
    assert [t.hash for t in trusted] == VALID["hashes"]
    assert [t.document.change.kind for t in trusted] == ["genesis", "admit", "rotate", "admit", "remove", "leave"]


def test_the_canonical_form_of_version_0_is_byte_for_byte_the_vectors() -> None:
    version_0 = VALID["chain"]["versions"][0]
    assert chain.signing_bytes(version_0) == VALID["canonical_version_0"].encode("utf-8")
    assert "Générale".encode() in chain.signing_bytes(version_0)  # RFC 8785 keeps non-ASCII as UTF-8


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=[c["case"] for c in VECTORS["invalid"]])
def test_each_invalid_vector_is_refused_naming_the_rule_it_breaks(case: dict[str, Any]) -> None:
    with pytest.raises(chain.ChainError) as refused:
        chain.verify_chain(case["chain"]["genesis"], case["chain"]["versions"])
    assert str(refused.value).startswith(case["why"]), str(refused.value)


def test_published_bytes_of_a_valid_version_read_back_as_the_same_document() -> None:
    for version in VALID["chain"]["versions"]:
        raw = chain.published_bytes(version)
        assert chain.parse_published(raw) == version


# --- a consortium of our own, to forge against ------------------------------------------------


@dataclass
class World:
    """bank-a, bank-b, bank-c members at version 1 (bank-c admitted); bank-d outside; eve an attacker."""

    banks: dict[str, Bank]
    chain: list[chain.Trusted]

    @property
    def head(self) -> chain.Trusted:
        return self.chain[-1]

    @property
    def pinned(self) -> str:
        return self.chain[0].hash


def world() -> World:
    b = banks("bank-a", "bank-b", "bank-c", "bank-d", "eve-bank")
    v0 = genesis({k: b[k] for k in ("bank-a", "bank-b")})
    t0 = chain.verify_genesis(chain.document_hash(v0), v0)
    v1 = sign(next_version(t0, "admit", "bank-c", b["bank-c"].entry), b["bank-a"], b["bank-b"], b["bank-c"])
    return World(b, [t0, chain.verify_next(t0, v1)])


W = world()
A, B, C, D, EVE = (W.banks[k] for k in ("bank-a", "bank-b", "bank-c", "bank-d", "eve-bank"))


def admit_d() -> dict[str, Any]:
    return next_version(W.head, "admit", "bank-d", D.entry)


@dataclass(frozen=True)
class Row:
    why: str
    build: Callable[[], dict[str, Any]]
    rule: chain.Rule | None  # None: it verifies


def _with(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(document), **changes}


def _tamper_member(document: dict[str, Any], member_id: str, **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(document)
    for m in doc["members"]:
        if m["member_id"] == member_id:
            m.update(changes)
    return doc


def _eve_key_named_like(member_id: str) -> Bank:
    """An attacker mints a key called ``{member_id}-governance`` in its own vault."""
    key = new_key(member_id)
    key.kid = key.kid.replace(f"kv-{member_id}", "kv-eve-bank")
    return Bank(member_id, key)


EVIL = "https://evil.example/consortium-public"
OTHER_ENDPOINT = "https://stbankc2.blob.core.windows.net/consortium-public"
OTHER_NAME = "O=Other, L=Paris, C=FR"
GENESIS_CHANGE = {"kind": "genesis", "member_id": "bank-a", "proposal_id": "prop-again"}


def _without(members: list[dict[str, Any]], member_id: str) -> list[dict[str, Any]]:
    return [m for m in members if m["member_id"] != member_id]


def _off_curve(bank: Bank) -> dict[str, Any]:
    return {**bank.key.ref, "jwk": {**bank.key.jwk, "x": "A" * 43}}


ROWS = [
    Row("an admit signed by a majority of version 1 and the newcomer verifies",
        lambda: sign(admit_d(), A, B, D), None),
    Row("an admit signed by one of three members and the newcomer is short of the majority",
        lambda: sign(admit_d(), A, D), chain.Rule.SIGNATURES),
    Row("an admit without the newcomer's proof of possession is refused even with every member",
        lambda: sign(admit_d(), A, B, C), chain.Rule.SIGNATURES),
    Row("a signature that does not verify refuses the document, however many others are good",
        lambda: {**(d := sign(admit_d(), A, B, C, D)),
                 "signatures": [{**s, "sig": s["sig"][:-2] + ("AA" if not s["sig"].endswith("AA") else "BA")}
                                if s["member_id"] == "bank-c" else s for s in d["signatures"]]},
        chain.Rule.SIGNATURES),
    Row("a signature moved from another document does not verify",
        lambda: {**(d := sign(admit_d(), A, D)),
                 "signatures": [*d["signatures"], sign(next_version(W.head, "leave", "bank-c"), B)["signatures"][0]]},
        chain.Rule.SIGNATURES),
    Row("a signature by a non-member refuses the document, even one that has its majority",
        lambda: sign(admit_d(), A, B, D, EVE), chain.Rule.SIGNATURES),
    Row("a key named like bank-b's but minted in the attacker's vault is not the key the chain lists",
        lambda: sign(admit_d(), A, D, _eve_key_named_like("bank-b")), chain.Rule.SIGNATURES),
    Row("one member listed twice counts once and the repeat refuses the document",
        lambda: {**(d := sign(admit_d(), A, B, D)), "signatures": [*d["signatures"], d["signatures"][0]]},
        chain.Rule.SIGNATURES),
    Row("a missing signatures list is not a membership document",
        lambda: {k: v for k, v in sign(admit_d(), A, B, D).items() if k != "signatures"}, chain.Rule.SHAPE),
    Row("an unknown field is refused, not ignored",
        lambda: _with(sign(admit_d(), A, B, D), note="hello"), chain.Rule.SHAPE),
    Row("an unknown field inside a member entry is refused",
        lambda: sign(_tamper_member(admit_d(), "bank-d", admin=True), A, B, D), chain.Rule.SHAPE),
    Row("a version given as a float is not a version",
        lambda: sign(_with(admit_d(), version=2.0), A, B, D), chain.Rule.SHAPE),
    Row("a governance key that is not a point on P-256 is refused",
        lambda: sign(_tamper_member(admit_d(), "bank-d", governance_key=_off_curve(D)), A, B, D),
        chain.Rule.SHAPE),
    Row("a legal name without a country is not a Corda X.500 name",
        lambda: sign(_tamper_member(admit_d(), "bank-d", legal_name="O=Bank D, L=Rome"), A, B, D), chain.Rule.SHAPE),
    Row("members out of member_id order are refused (one version, one byte string)",
        lambda: sign(_with(admit_d(), members=list(reversed(admit_d()["members"]))), A, B, D), chain.Rule.SHAPE),
    Row("a skipped version is refused",
        lambda: sign(_with(admit_d(), version=3), A, B, D), chain.Rule.VERSION),
    Row("a replayed old version is refused: it is not the next one",
        lambda: copy.deepcopy(dict(W.head.raw)), chain.Rule.VERSION),
    Row("a wrong previous hash is refused",
        lambda: sign(_with(admit_d(), previous="0" * 64), A, B, D), chain.Rule.PREVIOUS),
    Row("a document of another consortium is refused",
        lambda: sign(_with(admit_d(), consortium="other-consortium"), A, B, D), chain.Rule.CONSORTIUM),
    Row("an admit that also changes another member's endpoint differs by more than its change",
        lambda: sign(_tamper_member(admit_d(), "bank-a", endpoint=EVIL), A, B, D), chain.Rule.CHANGE),
    Row("an admit that drops a member differs by more than its change",
        lambda: sign(_with(admit_d(), members=_without(admit_d()["members"], "bank-b")), A, C, D),
        chain.Rule.CHANGE),
    Row("admitting a member already in is refused",
        lambda: sign(next_version(W.head, "admit", "bank-c", C.entry), A, B, C), chain.Rule.CHANGE),
    Row("removing a member that is not in is refused",
        lambda: sign(next_version(W.head, "remove", "bank-d"), A, B, C), chain.Rule.CHANGE),
    Row("a second genesis is refused",
        lambda: sign(_with(next_version(W.head, "leave", "bank-c"), change=GENESIS_CHANGE), A, B, C),
        chain.Rule.SHAPE),
    Row("a remove signed by a majority that does not need the removed member verifies",
        lambda: sign(next_version(W.head, "remove", "bank-c"), A, B), None),
    Row("a remove whose majority needs the removed member's own signature is refused",
        lambda: sign(next_version(W.head, "remove", "bank-c"), A, C), chain.Rule.SIGNATURES),
    Row("a leave signed by the leaver and one other member verifies",
        lambda: sign(next_version(W.head, "leave", "bank-c"), C, A), None),
    Row("a leave without the leaver is refused: nobody is made to leave",
        lambda: sign(next_version(W.head, "leave", "bank-c"), A, B), chain.Rule.SIGNATURES),
    Row("a rotate that changes only the member's endpoint needs its key and a majority",
        lambda: sign(next_version(W.head, "rotate", "bank-c", {**C.entry, "endpoint": OTHER_ENDPOINT}), C, A),
        None),
    Row("a rotate of another member's entry without that member is refused",
        lambda: sign(next_version(W.head, "rotate", "bank-c", {**C.entry, "endpoint": EVIL}), A, B),
        chain.Rule.SIGNATURES),
    Row("a rotate that changes the legal name is refused",
        lambda: sign(next_version(W.head, "rotate", "bank-c", {**C.entry, "legal_name": OTHER_NAME}), A, B, C),
        chain.Rule.CHANGE),
    Row("a rotate that changes nothing is refused",
        lambda: sign(next_version(W.head, "rotate", "bank-c", C.entry), A, B, C), chain.Rule.CHANGE),
    Row("issued before the version it follows is refused",
        lambda: sign(_with(admit_d(), issued_at="2020-01-01T00:00:00Z"), A, B, D), chain.Rule.CHANGE),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.why for r in ROWS])
def test_rules(row: Row) -> None:
    document = row.build()
    if row.rule is None:
        trusted = chain.verify_next(W.head, document)
        assert trusted.version == W.head.version + 1
        return
    with pytest.raises(chain.ChainError) as refused:
        chain.verify_next(W.head, document)
    assert refused.value.rule == row.rule, str(refused.value)


def test_a_rotation_of_the_governance_key_needs_the_old_and_the_new_key() -> None:
    c = Bank("bank-c", C.key)
    c.rotate()
    document = next_version(W.head, "rotate", "bank-c", c.entry)
    with pytest.raises(chain.SignatureError):
        chain.verify_next(W.head, sign(document, (c, C.key), A))  # old key and a majority, no new key
    rotated = chain.verify_next(W.head, sign(document, (c, C.key), (c, c.key), A))
    # the next version must be signed with the new key: the old one is no longer listed
    leave = next_version(rotated, "leave", "bank-c", at="2026-11-28T12:00:00Z")
    with pytest.raises(chain.SignatureError, match="not a key version 2 lists"):
        chain.verify_next(rotated, sign(leave, (c, C.key), A))
    assert chain.verify_next(rotated, sign(leave, c, A)).version == 3


def test_genesis_must_be_the_one_pinned_and_signed_by_every_founder() -> None:
    founders = {k: W.banks[k] for k in ("bank-a", "bank-b")}
    v0 = genesis(founders)
    with pytest.raises(chain.GenesisHashError, match="genesis hash does not match"):
        chain.verify_genesis("0" * 64, v0)
    one_signature = {**v0, "signatures": v0["signatures"][:1]}
    with pytest.raises(chain.SignatureError):
        chain.verify_genesis(chain.document_hash(one_signature), one_signature)


def test_two_valid_documents_of_one_version_name_the_members_who_signed_both() -> None:
    admit = chain.verify_next(W.head, sign(admit_d(), A, B, D))
    leave = chain.verify_next(W.head, sign(next_version(W.head, "leave", "bank-c"), C, B))
    assert chain.equivocators(admit, leave) == ["bank-b"]
    assert chain.equivocators(admit, admit) == []


# --- published bytes ---------------------------------------------------------------------------


PUBLISHED_ROWS = [
    ("garbage is not JSON", b"\x00\xffnot json", chain.Rule.SHAPE),
    ("truncated JSON is not JSON", chain.published_bytes(W.head.raw)[:-7], chain.Rule.SHAPE),
    ("a JSON array is not a document", b"[1,2,3]", chain.Rule.SHAPE),
    ("pretty-printed JSON is not the canonical bytes", json.dumps(dict(W.head.raw), indent=1).encode(),
     chain.Rule.NOT_CANONICAL),
    ("a key given twice is refused before anyone can read it two ways",
     chain.published_bytes(W.head.raw)[:-1] + b',"version":1}', chain.Rule.SHAPE),
    ("an oversize document is refused unread", b" " * (chain.MAX_DOCUMENT_BYTES + 1), chain.Rule.SHAPE),
    ("invalid UTF-8 is refused", b'{"a":"\xc3\x28"}', chain.Rule.SHAPE),
]  # fmt: skip


@pytest.mark.parametrize(("why", "raw", "rule"), PUBLISHED_ROWS, ids=[r[0] for r in PUBLISHED_ROWS])
def test_published_bytes(why: str, raw: bytes, rule: chain.Rule) -> None:
    with pytest.raises(chain.ChainError) as refused:
        chain.parse_published(raw)
    assert refused.value.rule == rule


# --- invariants --------------------------------------------------------------------------------


MEMBERS = ["bank-a", "bank-b", "bank-c"]


@settings(max_examples=60, deadline=None)
@given(st.sets(st.sampled_from([*MEMBERS, "bank-d", "eve-bank"])))
def test_an_admit_verifies_exactly_when_a_majority_of_members_and_the_newcomer_sign(signers: set[str]) -> None:
    document = sign(admit_d(), *(W.banks[s] for s in sorted(signers)))
    valid = len(signers & set(MEMBERS)) >= 2 and "bank-d" in signers and "eve-bank" not in signers
    try:
        chain.verify_next(W.head, document)
        verified = True
    except chain.SignatureError:
        verified = False
    assert verified == valid


def _strings(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _strings(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _strings(v, (*path, i))]
    return [path] if isinstance(value, str) else []


SIGNED = sign(admit_d(), A, B, D)
SIGNED_PATHS = [p for p in _strings({k: v for k, v in SIGNED.items() if k != "signatures"})]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(SIGNED_PATHS), st.integers(min_value=0, max_value=10_000), st.sampled_from("AaZz09-_.:"))
def test_changing_any_character_of_a_signed_version_makes_it_refused(
    path: tuple[Any, ...], where: int, char: str
) -> None:
    document = copy.deepcopy(SIGNED)
    holder: Any = document
    for step in path[:-1]:
        holder = holder[step]
    old = holder[path[-1]]
    index = where % len(old)
    new = old[:index] + char + old[index + 1 :]
    if new == old:
        return
    holder[path[-1]] = new
    with pytest.raises(chain.ChainError):
        chain.verify_next(W.head, document)


def test_anyone_who_builds_the_next_version_from_the_same_inputs_gets_the_same_bytes() -> None:
    one = next_version(W.head, "admit", "bank-d", D.entry)
    two = next_version(W.head, "admit", "bank-d", dict(reversed(list(D.entry.items()))))
    assert chain.signing_bytes(one) == chain.signing_bytes(two)


def test_a_node_accepts_the_vector_chain_version_by_version_and_nothing_that_skips_or_forges() -> None:
    versions = VALID["chain"]["versions"]
    node = chain.NodeTrust(VALID["chain"]["genesis"])
    assert not node.accept(versions[1]), "version 1 before the genesis is refused"
    assert all(node.accept(v) for v in versions)
    assert node.head is not None and node.head.hash == VALID["hashes"][-1]
    assert [m.member_id for m in node.members()] == ["bank-a", "bank-b"]
    assert not node.accept(versions[3]), "an old version again is refused"
    forged = VECTORS["invalid"][0]["chain"]["versions"]
    other = chain.NodeTrust(VALID["chain"]["genesis"])
    assert other.accept(forged[0]) and not other.accept(forged[1])
    assert other.refused[-1].startswith("version 1 (admit bank-c): not signed as the contract requires")
