"""A member's Corda root is made in its own vault once, and handed out the same every time after."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from cryptography import x509

from shared.decisions import corda_pki
from shared.fakes.keys import FakeKeyStore
from shared.fakes.state import FakeStateStore
from shared.services import corda_root

NOW = datetime(2026, 12, 7, 13, 30, tzinfo=UTC)
BANK_C = "O=Bank C, L=Amsterdam, C=NL"


def make() -> tuple[FakeKeyStore, FakeStateStore]:
    return FakeKeyStore(now=lambda: NOW), FakeStateStore()


def test_the_root_is_made_from_a_key_in_the_members_own_vault_and_is_a_ca_of_its_organisation_only() -> None:
    keys, state = make()
    encoded = corda_root.ensure_root(keys, state, member_id="bank-c", legal_name=BANK_C, now=NOW)
    key = keys.get_key("bank-c-corda-root")
    assert key is not None and key.tags["kind"] == "corda-root"
    assert corda_pki.check_root(encoded, "bank-c", BANK_C).accepted
    certificate = x509.load_der_x509_certificate(base64.b64decode(encoded))
    assert certificate.not_valid_before_utc == datetime(2026, 12, 7, tzinfo=UTC)
    stored = state.read(corda_root.ROOT_PATH)
    assert stored is not None and stored.body["kid"] == key.kid and stored.body["corda_root"] == encoded


def test_a_second_call_hands_out_the_stored_root_and_signs_nothing() -> None:
    keys, state = make()
    first = corda_root.ensure_root(keys, state, member_id="bank-c", legal_name=BANK_C, now=NOW)
    keys.sign = None  # type: ignore[assignment,method-assign]  # a second signature would fail loudly
    assert corda_root.ensure_root(keys, state, member_id="bank-c", legal_name=BANK_C, now=NOW) == first


def test_when_another_step_stored_a_root_first_that_one_is_the_members_root() -> None:
    keys, _ = make()
    mine = corda_root.ensure_root(keys, FakeStateStore(), member_id="bank-c", legal_name=BANK_C, now=NOW)
    key = keys.get_key("bank-c-corda-root")
    assert key is not None
    theirs = {"kid": key.kid, "corda_root": mine, "made_at": NOW.isoformat()}

    class Racing(FakeStateStore):
        """The other step stores its certificate between this one's read and its write."""

        def create(self, path, body):  # type: ignore[no-untyped-def]
            super().create(path, theirs)
            return super().create(path, body)

    racing = Racing()  # a root made now would differ from `mine`: ECDSA signatures are randomised
    assert corda_root.ensure_root(keys, racing, member_id="bank-c", legal_name=BANK_C, now=NOW) == mine


def test_a_rotated_root_key_makes_a_new_root() -> None:
    keys, state = make()
    first = corda_root.ensure_root(keys, state, member_id="bank-c", legal_name=BANK_C, now=NOW)
    keys.rotate("bank-c-corda-root")
    second = corda_root.ensure_root(keys, state, member_id="bank-c", legal_name=BANK_C, now=NOW)
    assert second != first and corda_pki.check_root(second, "bank-c", BANK_C).accepted
    stored = state.read(corda_root.ROOT_PATH)
    assert stored is not None and stored.body["corda_root"] == second
