"""The KeyStore over Key Vault (azure-keyvault-keys): non-exportable keys, signing inside the vault."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from azure.keyvault.keys import (
    KeyClient,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
    KeyVaultKey,
)
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm

from shared.adapters import sdk_models
from shared.adapters.azure_common import client_options, credential, is_emulator, translate
from shared.errors import NotFoundError
from shared.ports.keys import KeyKind, KeyVersion, RotationPolicy
from shared.settings import Settings

sdk_models.prepare(*sdk_models.KEYS)  # before threads build its models


def _b64u(data: bytes | None) -> str | None:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode() if data else None


def _text(value: Any) -> str:
    """An SDK enum's wire value ("EC", "P-256"), or the string itself."""
    return str(getattr(value, "value", value))


def _version(key: KeyVaultKey) -> KeyVersion:
    jwk: Any = key.key
    public: dict[str, Any] = {"kty": _text(jwk.kty)}
    if jwk.crv:
        public.update(crv=_text(jwk.crv), x=_b64u(jwk.x), y=_b64u(jwk.y))
    if jwk.n:
        public.update(n=_b64u(jwk.n), e=_b64u(jwk.e))
    props = key.properties
    return KeyVersion(
        name=str(key.name),
        version=str(props.version),
        kid=str(key.id),
        enabled=bool(props.enabled),
        created_on=props.created_on or datetime.now(UTC),
        key_type=_text(jwk.kty),
        tags=dict(props.tags or {}),
        public_jwk=public,
    )


class KeyVaultKeyStore:
    def __init__(self, client: KeyClient, crypto_kwargs: dict[str, Any]):
        self.client = client
        self.crypto_kwargs = crypto_kwargs

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyVaultKeyStore:
        cred = credential(settings)
        options = {**client_options(settings, "keyvault"), "verify_challenge_resource": not is_emulator(settings)}
        client = KeyClient(settings.text("AZURE_KEY_VAULT_URL"), cred, **options)
        return cls(client, {"credential": cred, **options})

    def create_key(self, name: str, kind: KeyKind, *, tags: dict[str, str]) -> KeyVersion:
        try:
            if kind == "EC":
                key = self.client.create_ec_key(name, curve="P-256", exportable=False, tags=tags)
            else:
                key = self.client.create_rsa_key(name, size=2048, exportable=False, tags=tags)
        except Exception as e:
            raise translate(e, f"create key {name}") from e
        return _version(key)

    def get_key(self, name: str, version: str | None = None) -> KeyVersion | None:
        try:
            return _version(self.client.get_key(name, version))
        except Exception as e:
            error = translate(e, f"get key {name}")
            if isinstance(error, NotFoundError):
                return None
            raise error from e

    def list_versions(self, name: str) -> list[KeyVersion]:
        try:
            versions = [self.get_key(name, p.version) for p in self.client.list_properties_of_key_versions(name)]
        except Exception as e:
            error = translate(e, f"list versions of {name}")
            if isinstance(error, NotFoundError):
                return []
            raise error from e
        return sorted((v for v in versions if v is not None), key=lambda v: v.created_on)

    def rotate(self, name: str) -> KeyVersion:
        try:
            return _version(self.client.rotate_key(name))
        except Exception as e:
            raise translate(e, f"rotate key {name}") from e

    def set_enabled(self, name: str, version: str, *, enabled: bool) -> KeyVersion:
        try:
            self.client.update_key_properties(name, version, enabled=enabled)
            return _version(self.client.get_key(name, version))
        except Exception as e:
            raise translate(e, f"{'enable' if enabled else 'disable'} key {name}/{version}") from e

    def _crypto(self, kid: str) -> CryptographyClient:
        return CryptographyClient(kid, **self.crypto_kwargs)

    def sign(self, kid: str, digest: bytes) -> bytes:
        try:
            return bytes(self._crypto(kid).sign(SignatureAlgorithm.es256, digest).signature)
        except Exception as e:
            raise translate(e, f"sign with {kid}") from e

    def verify(self, kid: str, digest: bytes, signature: bytes) -> bool:
        try:
            return bool(self._crypto(kid).verify(SignatureAlgorithm.es256, digest, signature).is_valid)
        except Exception as e:
            raise translate(e, f"verify with {kid}") from e

    def get_rotation_policy(self, name: str) -> RotationPolicy:
        try:
            policy = self.client.get_key_rotation_policy(name)
        except Exception as e:
            raise translate(e, f"get rotation policy of {name}") from e
        rotate = notify = None
        for action in policy.lifetime_actions or []:
            if _text(action.action).lower() == "rotate":
                rotate = action.time_after_create
            elif _text(action.action).lower() == "notify":
                notify = action.time_before_expiry
        return RotationPolicy(rotate_after=rotate, notify_before_expiry=notify, expires_after=policy.expires_in)

    def set_rotation_policy(self, name: str, policy: RotationPolicy) -> RotationPolicy:
        actions = []
        if policy.rotate_after:
            actions.append(
                KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create=policy.rotate_after)
            )
        if policy.notify_before_expiry:
            actions.append(
                KeyRotationLifetimeAction(
                    KeyRotationPolicyAction.notify, time_before_expiry=policy.notify_before_expiry
                )
            )
        try:
            self.client.update_key_rotation_policy(
                name, KeyRotationPolicy(), lifetime_actions=actions, expires_in=policy.expires_after
            )
        except Exception as e:
            raise translate(e, f"set rotation policy of {name}") from e
        return self.get_rotation_policy(name)
