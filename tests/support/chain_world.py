"""Members with real P-256 keys that build and sign membership documents, for the chain's tests.

The keys stand in for each member's Key Vault: a member signs only with its own, as Key Vault's
ES256 does (SHA-256 of the canonical bytes, raw r||s). Nothing here decides validity: that is
``shared.decisions.chain``'s alone.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from shared.decisions import chain

COUNTRIES = ["GB", "FR", "NL", "DE", "IT", "ES", "BE", "LU", "IE", "PT"]
_serial = itertools.count(1)


@dataclass
class Key:
    kid: str
    private: ec.EllipticCurvePrivateKey

    @property
    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": chain.b64u(numbers.x.to_bytes(32, "big")),
                "y": chain.b64u(numbers.y.to_bytes(32, "big"))}  # fmt: skip

    @property
    def ref(self) -> dict[str, Any]:
        return {"kid": self.kid, "jwk": self.jwk}

    def sign(self, document: dict[str, Any]) -> str:
        return self._es256(chain.signing_bytes(document))

    def sign_own(self, document: dict[str, Any]) -> str:
        """A member's signature over one of its own documents (a head, a node-info index, a flag day)."""
        return self._es256(chain.own_signing_bytes(document))

    def _es256(self, data: bytes) -> str:
        digest = hashlib.sha256(data).digest()
        r, s = decode_dss_signature(self.private.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
        return chain.b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def new_key(member_id: str) -> Key:
    version = f"{next(_serial):032x}"
    return Key(
        f"https://kv-{member_id}.vault.azure.net/keys/{member_id}-governance/{version}",
        ec.generate_private_key(ec.SECP256R1()),
    )


@dataclass
class Bank:
    member_id: str
    key: Key
    old_keys: list[Key] = field(default_factory=list)

    @property
    def entry(self) -> dict[str, Any]:
        index = int(self.member_id.rsplit("-", 1)[-1]) if self.member_id[-1].isdigit() else ord(self.member_id[-1])
        country = COUNTRIES[index % len(COUNTRIES)]
        endpoint = f"https://st{self.member_id.replace('-', '')}.blob.core.windows.net/consortium-public"
        legal_name = f"O=Bank {self.member_id}, L=City, C={country}"
        return {
            "member_id": self.member_id,
            "legal_name": legal_name,
            "governance_key": self.key.ref,
            "endpoint": endpoint,
        }

    def signature(self, document: dict[str, Any], key: Key | None = None) -> dict[str, str]:
        key = key or self.key
        return {"member_id": self.member_id, "kid": key.kid, "sig": key.sign(document)}

    def rotate(self) -> None:
        self.old_keys.append(self.key)
        self.key = new_key(self.member_id)


@dataclass
class GovernanceKey:
    """The member's key in its vault: the KeyStore's ``sign`` over the key the chain lists for it."""

    bank: Bank
    signed: list[str] = field(default_factory=list)

    def sign(self, kid: str, digest: bytes) -> bytes:
        assert kid == self.bank.key.kid, "signs only with the kid the verified chain lists"
        self.signed.append(kid)
        der = self.bank.key.private.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def banks(*ids: str) -> dict[str, Bank]:
    return {i: Bank(i, new_key(i)) for i in ids}


def sign(document: dict[str, Any], *signers: tuple[Bank, Key | None] | Bank) -> dict[str, Any]:
    signatures = []
    for s in signers:
        bank, key = s if isinstance(s, tuple) else (s, None)
        signatures.append(bank.signature(document, key))
    return chain.with_signatures(document, signatures)


def genesis(founders: dict[str, Bank], at: str = "2026-11-28T10:00:00Z") -> dict[str, Any]:
    unsigned = chain.unsigned_genesis(
        "credit-consortium", [b.entry for b in founders.values()], convener=min(founders), issued_at=at
    )
    return sign(unsigned, *founders.values())


def next_version(trusted: chain.Trusted, kind: str, member_id: str, entry: dict[str, Any] | None = None,
                 at: str = "2026-11-28T11:00:00Z") -> dict[str, Any]:  # fmt: skip
    change = {"kind": kind, "member_id": member_id, "proposal_id": f"prop-{kind}-{member_id}-{trusted.version + 1}"}
    return chain.unsigned_next(trusted, change, issued_at=at, entry=entry)
