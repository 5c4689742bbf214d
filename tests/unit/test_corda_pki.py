"""Each member its own Corda root: built from a vault key, accepted only for its own organisation.

The roots in the contract's v3 vectors (``tests/data/membership-chain-v3.json``) are accepted for their
members; roots built here through a vault (the fake key store: sign over SHA-256, raw r||s back) load
and verify in ``cryptography``; and one row per rule of :func:`corda_pki.check_root`, each with the
sentence that explains it.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from shared.decisions import corda_pki
from shared.decisions.corda_pki import RootReason
from tests.support.corda_roots import BANK_A, DAY, vault_root

V3 = json.loads((Path(__file__).resolve().parents[1] / "data" / "membership-chain-v3.json").read_text())
GENESIS = V3["valid"]["chain"]["versions"][0]


@pytest.mark.parametrize("entry", GENESIS["members"], ids=lambda e: e["member_id"])
def test_the_contracts_vector_roots_are_accepted_for_their_own_members(entry: dict[str, str]) -> None:
    check = corda_pki.check_root(entry["corda_root"], entry["member_id"], entry["legal_name"])
    assert check.accepted, check.message


def test_a_vector_root_is_refused_for_another_members_name() -> None:
    a, b = GENESIS["members"][:2]
    check = corda_pki.check_root(a["corda_root"], b["member_id"], b["legal_name"])
    assert check.reason is RootReason.WRONG_SUBJECT and b["member_id"] in check.message


def test_a_root_signed_in_the_vault_is_a_valid_self_signed_ca_of_the_members_organisation() -> None:
    encoded = vault_root()
    certificate = x509.load_der_x509_certificate(base64.b64decode(encoded))
    certificate.verify_directly_issued_by(certificate)
    assert certificate.subject.rfc4514_string() == "C=GB,O=Bank A,CN=bank-a Corda root"
    assert certificate.not_valid_before_utc == DAY and certificate.not_valid_after_utc == DAY + timedelta(days=3650)
    names = certificate.extensions.get_extension_for_class(x509.NameConstraints)
    assert names.critical and names.value.permitted_subtrees == [
        x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bank A")]))
    ]
    assert corda_pki.check_root(encoded, "bank-a", BANK_A).accepted


def test_the_same_key_builds_the_same_certificate_body() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    one = corda_pki.root_tbs("bank-a", BANK_A, key, serial=7, not_before=DAY)
    assert one == corda_pki.root_tbs("bank-a", BANK_A, key, serial=7, not_before=DAY)


def self_signed(
    *,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    signer: ec.EllipticCurvePrivateKey | None = None,
    org: str = "Bank A",
    ca: bool = True,
    constraints: x509.NameConstraints | str | None = "own",
    critical: bool = True,
) -> str:
    """A certificate made by hand, to break one rule at a time."""
    private = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "root"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "GB"),
        ]
    )
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(1).not_valid_before(DAY).not_valid_after(DAY + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )  # fmt: skip
    if constraints == "own":
        constraints = x509.NameConstraints(
            permitted_subtrees=[x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]))],
            excluded_subtrees=None,
        )
    if isinstance(constraints, x509.NameConstraints):
        builder = builder.add_extension(constraints, critical=critical)
    cert = builder.sign(signer or private, hashes.SHA256())
    return base64.b64encode(cert.public_bytes(Encoding.DER)).decode()


def directory(org: str) -> x509.DirectoryName:
    return x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]))


ROWS = [
    ("accepted", lambda: self_signed(), RootReason.ACCEPTED,
     "a P-256 CA, self-signed, constrained to its own organisation"),
    ("garbage", lambda: "not base64!", RootReason.NOT_A_CERTIFICATE,
     "anything that is not base64 of a DER certificate"),
    ("rsa", lambda: self_signed(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
     RootReason.WRONG_KEY, "a root key that is not EC P-256 (the vault's key kind for roots)"),
    ("signed by another key", lambda: self_signed(signer=ec.generate_private_key(ec.SECP256R1())),
     RootReason.NOT_SELF_SIGNED, "a certificate naming itself as issuer but signed by another key"),
    ("not a ca", lambda: self_signed(ca=False), RootReason.NOT_A_CA, "a leaf certificate cannot issue doorman CAs"),
    ("another organisation", lambda: self_signed(org="Bank B"), RootReason.WRONG_SUBJECT,
     "a root whose subject is another organisation's"),
    ("unconstrained", lambda: self_signed(constraints=None), RootReason.UNCONSTRAINED,
     "without name constraints the root could vouch for any member's name"),
    ("not critical", lambda: self_signed(critical=False), RootReason.UNCONSTRAINED,
     "constraints a relying party may ignore are no constraints"),
    ("permits another too", lambda: self_signed(constraints=x509.NameConstraints(
        permitted_subtrees=[directory("Bank A"), directory("Bank B")], excluded_subtrees=None)),
     RootReason.CONSTRAINED_TO_OTHERS, "a root that also permits another organisation's names"),
    ("permits another only", lambda: self_signed(constraints=x509.NameConstraints(
        permitted_subtrees=[directory("Bank B")], excluded_subtrees=None)),
     RootReason.CONSTRAINED_TO_OTHERS, "a root constrained to someone else's names"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "make", "reason", "why"), ROWS, ids=[r[0] for r in ROWS])
def test_a_root_is_judged_by_one_rule_at_a_time(case: str, make, reason: RootReason, why: str) -> None:  # type: ignore[no-untyped-def]
    check = corda_pki.check_root(make(), "bank-a", BANK_A)
    assert check.reason is reason, f"{case}: {why} ({check.message})"
    assert check.message.startswith("corda_root of bank-a: ")


def test_a_signature_that_is_not_64_bytes_is_refused_before_anything_is_assembled() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        corda_pki.assemble(b"\x30\x00", b"\x00" * 63)


def test_a_root_key_must_be_p256() -> None:
    with pytest.raises(ValueError, match="P-256"):
        corda_pki.public_key_from_jwk({"kty": "RSA", "n": "AQAB", "e": "AQAB"})
