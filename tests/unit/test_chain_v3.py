"""Contract version 3 in the chain: each member's ``corda_root``, the ``network`` and the ``parameters`` kind.

The contract's v3 vectors (``tests/data/membership-chain-v3.json``, copied as data) first: a valid chain
of four versions (genesis with network epoch 1 and every member's root, an admit, a ``parameters``
version, a rotate of one member's root) and six invalid variants, each naming the rule it breaks.
Then one row per rule on a consortium of our own, built with ``chain.unsigned_next``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from shared.decisions import chain
from tests.support.chain_world import banks, genesis, sign
from tests.support.corda_roots import vault_root

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "membership-chain-v3.json").read_text(encoding="utf-8"))
VALID = VECTORS["valid"]
NETWORK_1 = {"epoch": 1, "parameters_sha256": "a" * 64, "switch_at": "2026-12-01T10:00:00Z"}
NETWORK_2 = {"epoch": 2, "parameters_sha256": "b" * 64, "switch_at": "2026-12-02T10:00:00Z"}


def test_the_valid_v3_vector_chain_verifies_with_the_hashes_it_states() -> None:
    trusted = chain.verify_chain(VALID["chain"]["genesis"], VALID["chain"]["versions"])
    assert [t.hash for t in trusted] == VALID["hashes"]
    assert [t.document.change.kind for t in trusted] == ["genesis", "admit", "parameters", "rotate"]
    assert [t.document.network.epoch for t in trusted if t.document.network] == [1, 1, 2, 2]
    assert all(m.corda_root for t in trusted for m in t.document.members)


def test_the_canonical_form_of_the_v3_parameters_version_is_byte_for_byte_the_vectors() -> None:
    assert chain.signing_bytes(VALID["chain"]["versions"][2]) == VALID["canonical_version_2"].encode("utf-8")


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=[c["case"] for c in VECTORS["invalid"]])
def test_each_invalid_v3_vector_is_refused_naming_the_rule_it_breaks(case: dict[str, Any]) -> None:
    with pytest.raises(chain.ChainError) as refused:
        chain.verify_chain(case["chain"]["genesis"], case["chain"]["versions"])
    assert str(refused.value).startswith(case["why"]), str(refused.value)


# --- a consortium of our own --------------------------------------------------------------------


def founded(network: dict[str, Any] | None = NETWORK_1) -> tuple[dict[str, Any], list[chain.Trusted]]:
    """bank-a, bank-b, bank-c founders with their own roots, and the founding network."""
    b = banks("bank-a", "bank-b", "bank-c")
    entries = []
    for bank in b.values():
        entry = bank.entry
        entries.append({**entry, "corda_root": vault_root(bank.member_id, entry["legal_name"])})
    unsigned = chain.unsigned_genesis("credit-consortium", entries, convener="bank-a",
                                      issued_at="2026-12-01T10:00:00Z", network=network)  # fmt: skip
    raw = sign(unsigned, *b.values())
    return b, [chain.verify_genesis(chain.document_hash(raw), raw)]


def parameters(trusted: chain.Trusted, network: dict[str, Any] | None, proposer: str = "bank-c") -> dict[str, Any]:
    change = {"kind": "parameters", "member_id": proposer, "proposal_id": "prop-params"}
    return chain.unsigned_next(trusted, change, issued_at="2026-12-01T12:00:00Z", network=network)


def test_a_majority_moves_the_network_to_the_next_epoch_and_the_members_stay() -> None:
    b, trusted = founded()
    raw = sign(parameters(trusted[0], NETWORK_2), b["bank-a"], b["bank-b"])
    moved = chain.verify_next(trusted[0], raw)
    assert moved.document.network == chain.Network.model_validate(NETWORK_2)
    assert moved.document.members == trusted[0].document.members


def test_the_first_parameters_of_a_chain_without_network_are_epoch_1() -> None:
    b, trusted = founded(network=None)
    with pytest.raises(chain.ChangeError, match="network epoch must be 1"):
        chain.verify_next(trusted[0], sign(parameters(trusted[0], NETWORK_2), *b.values()))
    assert chain.verify_next(trusted[0], sign(parameters(trusted[0], NETWORK_1), *b.values())).document.network


def test_parameters_signed_by_a_minority_are_refused_even_with_the_proposer() -> None:
    b, trusted = founded()
    with pytest.raises(chain.SignatureError, match="not signed as the contract requires"):
        chain.verify_next(trusted[0], sign(parameters(trusted[0], NETWORK_2), b["bank-c"]))


def test_a_parameters_version_proposed_by_an_outsider_is_refused() -> None:
    b, trusted = founded()
    with pytest.raises(chain.ChangeError, match="bank-z is not a member"):
        chain.verify_next(trusted[0], sign(parameters(trusted[0], NETWORK_2, proposer="bank-z"), *b.values()))


def test_a_parameters_version_without_network_is_refused() -> None:
    b, trusted = founded()
    raw = parameters(trusted[0], NETWORK_2)
    del raw["network"]
    with pytest.raises(chain.ChangeError, match="network epoch must be 2"):
        chain.verify_next(trusted[0], sign(raw, *b.values()))


def test_every_other_kind_carries_the_network_as_it_was() -> None:
    b, trusted = founded()
    change = {"kind": "leave", "member_id": "bank-c", "proposal_id": "prop-leave"}
    unsigned = chain.unsigned_next(trusted[0], change, issued_at="2026-12-01T12:00:00Z")
    assert unsigned["network"] == NETWORK_1
    assert chain.verify_next(trusted[0], sign(unsigned, *b.values())).document.network == trusted[0].document.network
    moved = {**copy.deepcopy(unsigned), "network": {**NETWORK_1, "switch_at": "2026-12-01T11:00:00Z"}}
    with pytest.raises(chain.ChangeError, match="network changed outside a parameters version"):
        chain.verify_next(trusted[0], sign(moved, *b.values()))


def test_a_genesis_network_starts_at_epoch_1() -> None:
    with pytest.raises(chain.ChangeError, match="version 0: network epoch must be 1"):
        founded(network=NETWORK_2)


def test_a_member_entry_whose_root_vouches_for_another_organisation_is_not_a_membership_document() -> None:
    b, trusted = founded()
    entries = [dict(m) for m in trusted[0].raw["members"]]
    entries[0]["corda_root"] = entries[1]["corda_root"]  # bank-a's entry carrying bank-b's root
    unsigned = chain.unsigned_genesis("credit-consortium", entries, convener="bank-a", issued_at="2026-12-01T10:00:00Z")
    raw = sign(unsigned, *b.values())
    with pytest.raises(chain.ShapeError, match=r"not a membership document: members\.0") as refused:
        chain.verify_genesis(chain.document_hash(raw), raw)
    assert "corda_root of bank-a" in str(refused.value)


def test_building_a_parameters_version_needs_the_new_network_and_no_other_kind_takes_one() -> None:
    _, trusted = founded()
    with pytest.raises(ValueError, match="needs the new network"):
        parameters(trusted[0], None)
    change = {"kind": "remove", "member_id": "bank-c", "proposal_id": "prop-remove"}
    with pytest.raises(ValueError, match="carries the network as it was"):
        chain.unsigned_next(trusted[0], change, issued_at="2026-12-01T12:00:00Z", network=NETWORK_2)


def test_a_chain_founded_without_network_builds_its_versions_without_one() -> None:
    b = banks("bank-a", "bank-b")
    raw = genesis(b)
    trusted = chain.verify_genesis(chain.document_hash(raw), raw)
    change = {"kind": "leave", "member_id": "bank-b", "proposal_id": "prop-leave"}
    assert "network" not in chain.unsigned_next(trusted, change, issued_at="2026-12-01T12:00:00Z")
