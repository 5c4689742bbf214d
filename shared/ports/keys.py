"""Keys in Key Vault: created non-exportable, versioned, used to sign without leaving the vault.

Private key material never reaches the control plane: signing and verification go through the
vault (CryptographyClient), and only public keys are exported (as JWK): for the chain, keys.json and heads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

KeyKind = Literal["EC", "RSA"]


@dataclass(frozen=True)
class KeyVersion:
    name: str
    version: str
    #: The full key id with version (``https://<vault>/keys/<name>/<version>``).
    kid: str
    enabled: bool
    created_on: datetime
    key_type: str
    tags: dict[str, str] = field(default_factory=dict)
    #: Public part only, as a JWK (kty, crv, x, y or n, e).
    public_jwk: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RotationPolicy:
    """Key Vault's own rotation policy (ISO 8601 durations), kept in step with ours."""

    rotate_after: str | None = None  # e.g. "P90D" (timeAfterCreate → Rotate)
    notify_before_expiry: str | None = None  # e.g. "P30D" (timeBeforeExpiry → Notify)
    expires_after: str | None = None  # e.g. "P2Y"


class KeyStore(Protocol):
    def create_key(self, name: str, kind: KeyKind, *, tags: dict[str, str]) -> KeyVersion:
        """A new non-exportable key (EC P-256 or RSA 2048); a new version if the name exists."""
        ...

    def get_key(self, name: str, version: str | None = None) -> KeyVersion | None: ...

    def list_versions(self, name: str) -> list[KeyVersion]: ...

    def rotate(self, name: str) -> KeyVersion: ...

    def set_enabled(self, name: str, version: str, *, enabled: bool) -> KeyVersion: ...

    def sign(self, kid: str, digest: bytes) -> bytes:
        """ES256 over a SHA-256 digest; the raw 64-byte r||s form."""
        ...

    def verify(self, kid: str, digest: bytes, signature: bytes) -> bool: ...

    def get_rotation_policy(self, name: str) -> RotationPolicy: ...

    def set_rotation_policy(self, name: str, policy: RotationPolicy) -> RotationPolicy: ...
