"""Corda roots made as a deployment makes them, for the tests of the chain's v3 rules and of the roots."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from shared.decisions import corda_pki
from shared.fakes.keys import FakeKeyStore

DAY = datetime(2026, 12, 1, tzinfo=UTC)
BANK_A = "O=Bank A, L=London, C=GB"


def vault_root(member_id: str = "bank-a", legal_name: str = BANK_A) -> str:
    """A root built as a deployment builds it: the key in the vault, the vault signs the TBS digest."""
    keys = FakeKeyStore(now=lambda: DAY)
    key = keys.create_key(f"{member_id}-corda-root", "EC", tags={"kind": "corda-root"})
    public_key = corda_pki.public_key_from_jwk(key.public_jwk)
    tbs = corda_pki.root_tbs(member_id, legal_name, public_key, serial=corda_pki.serial_for(key.kid), not_before=DAY)
    return corda_pki.encode(corda_pki.assemble(tbs, keys.sign(key.kid, hashlib.sha256(tbs).digest())))
