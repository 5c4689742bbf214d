"""An in-memory KeyStore with Key Vault's rules: versions, non-exportable keys, real ES256 signatures.

Private keys never leave the fake either: callers get public JWKs and signatures, as from the vault.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

from shared.errors import ForbiddenError, NotFoundError, PermanentError
from shared.ports.keys import KeyKind, KeyVersion, RotationPolicy

VAULT = "https://fake-vault.vault.azure.net"


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeKeyStore:
    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.now = now
        self.versions: dict[str, list[KeyVersion]] = {}
        self._private: dict[str, Any] = {}  # kid -> private key, never handed out
        self.policies: dict[str, RotationPolicy] = {}
        self._ids = itertools.count(1)

    def _new(self, name: str, kind: KeyKind, tags: dict[str, str]) -> KeyVersion:
        version = f"{next(self._ids):032x}"
        kid = f"{VAULT}/keys/{name}/{version}"
        if kind == "EC":
            private: Any = ec.generate_private_key(ec.SECP256R1())
            n = private.public_key().public_numbers()
            jwk = {
                "kty": "EC",
                "crv": "P-256",
                "x": _b64u(n.x.to_bytes(32, "big")),
                "y": _b64u(n.y.to_bytes(32, "big")),
            }
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            n = private.public_key().public_numbers()
            jwk = {"kty": "RSA", "n": _b64u(n.n.to_bytes(256, "big")), "e": _b64u(n.e.to_bytes(3, "big"))}
        key = KeyVersion(name, version, kid, True, self.now(), kind, dict(tags), jwk)
        self._private[kid] = private
        self.versions.setdefault(name, []).append(key)
        return key

    def create_key(self, name: str, kind: KeyKind, *, tags: dict[str, str]) -> KeyVersion:
        return self._new(name, kind, tags)

    def get_key(self, name: str, version: str | None = None) -> KeyVersion | None:
        versions = self.versions.get(name, [])
        if not versions:
            return None
        if version is None:
            return versions[-1]
        return next((v for v in versions if v.version == version), None)

    def list_versions(self, name: str) -> list[KeyVersion]:
        return list(self.versions.get(name, []))

    def rotate(self, name: str) -> KeyVersion:
        latest = self.get_key(name)
        if latest is None:
            raise NotFoundError(f"rotate key {name}: not found")
        return self._new(name, "EC" if latest.key_type == "EC" else "RSA", latest.tags)

    def set_enabled(self, name: str, version: str, *, enabled: bool) -> KeyVersion:
        versions = self.versions.get(name, [])
        for i, v in enumerate(versions):
            if v.version == version:
                versions[i] = KeyVersion(
                    v.name, v.version, v.kid, enabled, v.created_on, v.key_type, v.tags, v.public_jwk
                )
                return versions[i]
        raise NotFoundError(f"key {name}/{version}: not found")

    def _find(self, kid: str) -> KeyVersion:
        for versions in self.versions.values():
            for v in versions:
                if v.kid == kid:
                    return v
        raise NotFoundError(f"key {kid}: not found")

    def sign(self, kid: str, digest: bytes) -> bytes:
        key = self._find(kid)
        if not key.enabled:
            raise ForbiddenError(f"sign with {kid}", "Forbidden: Operation is not allowed on a disabled key.")
        if len(digest) != 32:
            raise PermanentError("ES256 takes a 32-byte SHA-256 digest", reason="http_400")
        der = self._private[kid].sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        r, s = utils.decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def verify(self, kid: str, digest: bytes, signature: bytes) -> bool:
        key = self._find(kid)
        if not key.enabled:
            raise ForbiddenError(f"verify with {kid}", "Forbidden: Operation is not allowed on a disabled key.")
        if len(signature) != 64:
            return False
        der = utils.encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            self._private[kid].public_key().verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except (InvalidSignature, ValueError):
            return False
        return True

    def get_rotation_policy(self, name: str) -> RotationPolicy:
        if name not in self.versions:
            raise NotFoundError(f"rotation policy of {name}: not found")
        return self.policies.get(name, RotationPolicy(notify_before_expiry="P30D"))

    def set_rotation_policy(self, name: str, policy: RotationPolicy) -> RotationPolicy:
        if name not in self.versions:
            raise NotFoundError(f"rotation policy of {name}: not found")
        self.policies[name] = policy
        return policy
