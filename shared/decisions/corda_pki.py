"""Each member its own Corda trust root: the root certificate, built here, signed in the member's vault.

Corda trusts every truststore entry whose alias starts with ``cordarootca`` (CORDA-3979,
corda/corda#6772), so no central root is needed: each member is the root of its own certificate
hierarchy (root -> doorman CA -> node CA -> legal identity and TLS, corda/corda ``CertRole.kt``) and a
node trusts exactly the roots of the members the verified chain admits. What keeps one member's root
from vouching for another member's names is the root itself: its name constraints permit only the
directory names of its own organisation (the ``O`` of its legal name), and a root that permits more is
refused here before it can stand in a chain entry.

The root's key is a non-exportable Key Vault key, so this module never holds a private key: it
builds the certificate's to-be-signed part (:func:`root_tbs`), the vault signs the SHA-256 of those
bytes (ES256, raw r||s), and :func:`assemble` wraps both into the DER certificate. Checking a root
read from anywhere (a chain entry, another member) is :func:`check_root`, which never raises and
returns a decision with its reason. No I/O, no clock, no randomness: the serial and the validity are
inputs.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from shared.messages import parse_x500

#: Corda's certificate role extension (``CordaOID.X509_EXTENSION_CORDA_ROLE``).
CORDA_ROLE_OID = x509.ObjectIdentifier("1.3.6.1.4.1.50530.1.1")
#: How long a member's root is valid: Corda's own default window for a root (3,650 days).
ROOT_VALIDITY = timedelta(days=3650)
#: DER of the AlgorithmIdentifier ``ecdsa-with-SHA256`` (RFC 5758 §3.2: parameters absent).
ECDSA_WITH_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
#: A fixed stand-in signer: cryptography builds a certificate only by signing it, and the
#: to-be-signed bytes do not depend on the signer's key, only on its algorithm (ECDSA with SHA-256).
_STAND_IN = ec.derive_private_key(1, ec.SECP256R1())


class CertRole(IntEnum):
    """Corda's certificate roles (``CertRole.kt``), the value of the role extension."""

    DOORMAN_CA = 1  # INTERMEDIATE_CA in Corda's code
    NODE_CA = 2
    TLS = 3
    LEGAL_IDENTITY = 4
    CONFIDENTIAL_LEGAL_IDENTITY = 5
    NETWORK_MAP = 6
    SERVICE_IDENTITY = 7
    NETWORK_PARAMETERS = 8


class RootReason(StrEnum):
    """Why a root certificate is accepted for a member, or the rule it breaks."""

    ACCEPTED = "accepted"
    NOT_A_CERTIFICATE = "not_a_certificate"
    NOT_SELF_SIGNED = "not_self_signed"
    NOT_A_CA = "not_a_ca"
    WRONG_KEY = "wrong_key"
    WRONG_SUBJECT = "wrong_subject"
    UNCONSTRAINED = "unconstrained"
    CONSTRAINED_TO_OTHERS = "constrained_to_others"


@dataclass(frozen=True)
class RootCheck:
    """The decision on a member's root certificate: accepted or not, the reason, one line for people."""

    reason: RootReason
    message: str

    @property
    def accepted(self) -> bool:
        return self.reason is RootReason.ACCEPTED


def organisation(legal_name: str) -> str:
    """The ``O`` of a Corda legal name: the organisation a member's root may vouch for."""
    return parse_x500(legal_name)["O"]


def root_subject(member_id: str, legal_name: str) -> x509.Name:
    attributes = parse_x500(legal_name)
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{member_id} Corda root"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, attributes["O"]),
            x509.NameAttribute(NameOID.COUNTRY_NAME, attributes["C"]),
        ]
    )


def _own_names(legal_name: str) -> x509.NameConstraints:
    """Only directory names of the member's own organisation may chain to its root."""
    permitted = x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation(legal_name))]))
    return x509.NameConstraints(permitted_subtrees=[permitted], excluded_subtrees=None)


def public_key_from_jwk(jwk: dict[str, str]) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of a vault key's JWK (``crv`` P-256, ``x`` and ``y`` base64url)."""
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ValueError("a Corda root key must be EC P-256")

    def number(field: str) -> int:
        text = jwk[field]
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    return ec.EllipticCurvePublicNumbers(number("x"), number("y"), ec.SECP256R1()).public_key()


def root_tbs(
    member_id: str, legal_name: str, public_key: ec.EllipticCurvePublicKey, *, serial: int, not_before: datetime
) -> bytes:
    """The to-be-signed bytes of ``member_id``'s self-signed root, as Corda's ``ROOT_CA`` type makes it
    (CA, key usage digitalSignature|keyCertSign|cRLSign, the key identifiers), name-constrained to
    the organisation of ``legal_name``, valid for :data:`ROOT_VALIDITY` from ``not_before``."""
    subject = root_subject(member_id, legal_name)
    key_id = x509.SubjectKeyIdentifier.from_public_key(public_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(key_id, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(key_id), critical=False)
        .add_extension(_own_names(legal_name), critical=True)
    )
    return builder.sign(_STAND_IN, hashes.SHA256()).tbs_certificate_bytes


def serial_for(kid: str) -> int:
    """A positive 63-bit serial derived from the root key's id, so a root is rebuilt identically."""
    return int.from_bytes(hashlib.sha256(kid.encode()).digest()[:8], "big") >> 1 or 1


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def assemble(tbs: bytes, raw_signature: bytes) -> bytes:
    """The DER certificate: ``tbs`` with the vault's ES256 signature (raw 64-byte r||s) over it."""
    if len(raw_signature) != 64:
        raise ValueError("an ES256 signature is 64 bytes (r||s)")
    signature = encode_dss_signature(
        int.from_bytes(raw_signature[:32], "big"), int.from_bytes(raw_signature[32:], "big")
    )
    bit_string = b"\x03" + _der_length(len(signature) + 1) + b"\x00" + signature
    body = tbs + ECDSA_WITH_SHA256 + bit_string
    return b"\x30" + _der_length(len(body)) + body


def encode(der: bytes) -> str:
    """A root as the chain entry's ``corda_root`` carries it: base64 (RFC 4648 §4, padded) of its DER."""
    return base64.b64encode(der).decode("ascii")


def check_root(corda_root: str, member_id: str, legal_name: str) -> RootCheck:
    """Whether ``corda_root`` (padded base64 DER) may be ``member_id``'s root: self-signed by a P-256
    CA key, its subject the member's organisation, and name-constrained to exactly that organisation.
    Time is not judged here (a chain is verified the same on any day); nodes check validity."""

    def refused(reason: RootReason, message: str) -> RootCheck:
        return RootCheck(reason, f"corda_root of {member_id}: {message}")

    try:
        certificate = x509.load_der_x509_certificate(base64.b64decode(corda_root, validate=True))
    except ValueError:
        return refused(RootReason.NOT_A_CERTIFICATE, "not base64 of a DER X.509 certificate")
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return refused(RootReason.WRONG_KEY, "its key is not EC P-256")
    if certificate.issuer != certificate.subject:
        return refused(RootReason.NOT_SELF_SIGNED, "its issuer is not its subject")
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature):
        return refused(RootReason.NOT_SELF_SIGNED, "its signature is not its own key's")
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return refused(RootReason.NOT_A_CA, "no basic constraints")
    if not constraints.value.ca:
        return refused(RootReason.NOT_A_CA, "it is not a CA certificate")
    own = organisation(legal_name)
    subject_orgs = [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if subject_orgs != [own]:
        return refused(RootReason.WRONG_SUBJECT, f"its subject's O is {subject_orgs}, not [{own!r}]")
    try:
        names = certificate.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return refused(RootReason.UNCONSTRAINED, "it has no name constraints, so it could vouch for any name")
    if not names.critical:
        return refused(RootReason.UNCONSTRAINED, "its name constraints are not critical")
    if names.value != _own_names(legal_name):
        return refused(
            RootReason.CONSTRAINED_TO_OTHERS,
            f"its name constraints must permit exactly directory names with O={own}, and nothing else",
        )
    return RootCheck(RootReason.ACCEPTED, f"corda_root of {member_id}: a CA of {own} only")
