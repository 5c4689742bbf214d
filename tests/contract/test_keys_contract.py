"""The KeyStore contract: the fake and Key Vault (through the emulator, with the real SDK) agree."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from shared.errors import ForbiddenError, TransientError
from shared.ports.keys import KeyStore, KeyVersion, RotationPolicy


def name() -> str:
    return f"k-{uuid.uuid4().hex[:12]}"


def public_key(version: KeyVersion) -> ec.EllipticCurvePublicKey:
    def num(field: str) -> int:
        text = version.public_jwk[field]
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    return ec.EllipticCurvePublicNumbers(num("x"), num("y"), ec.SECP256R1()).public_key()


def test_a_new_key_is_non_exportable_tagged_and_gives_out_only_its_public_part(keys: KeyStore) -> None:
    key = keys.create_key(name(), "EC", tags={"request_id": "req-1"})
    assert key.enabled and key.tags == {"request_id": "req-1"} and key.key_type == "EC"
    assert set(key.public_jwk) >= {"kty", "crv", "x", "y"} and "d" not in key.public_jwk
    assert keys.get_key(key.name) == keys.get_key(key.name, key.version)
    assert keys.get_key(key.name).kid == key.kid  # type: ignore[union-attr]


def test_a_signature_is_raw_r_and_s_that_verifies_inside_and_outside_the_vault(keys: KeyStore) -> None:
    key = keys.create_key(name(), "EC", tags={})
    digest = hashlib.sha256(b'{"approver_id":"bank-a"}').digest()
    signature = keys.sign(key.kid, digest)
    assert len(signature) == 64
    assert keys.verify(key.kid, digest, signature)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    public_key(key).verify(utils.encode_dss_signature(r, s), digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    assert not keys.verify(key.kid, digest, forged)
    with pytest.raises(InvalidSignature):
        public_key(key).verify(
            utils.encode_dss_signature(r, s),
            hashlib.sha256(b"other").digest(),
            ec.ECDSA(utils.Prehashed(hashes.SHA256())),
        )


def test_rotation_makes_a_new_current_version_and_keeps_the_old_one(keys: KeyStore) -> None:
    first = keys.create_key(name(), "EC", tags={"kind": "tls"})
    second = keys.rotate(first.name)
    assert second.version != first.version and second.tags == {"kind": "tls"}
    assert keys.get_key(first.name).version == second.version  # type: ignore[union-attr]
    assert [v.version for v in keys.list_versions(first.name)] == [first.version, second.version]


def test_a_disabled_version_no_longer_signs_and_is_never_deleted(keys: KeyStore) -> None:
    key = keys.create_key(name(), "EC", tags={})
    disabled = keys.set_enabled(key.name, key.version, enabled=False)
    assert not disabled.enabled
    with pytest.raises(ForbiddenError, match="disabled key"):
        keys.sign(key.kid, hashlib.sha256(b"x").digest())
    assert keys.get_key(key.name, key.version) is not None


def test_missing_keys_read_as_absent(keys: KeyStore) -> None:
    assert keys.get_key(name()) is None
    assert keys.list_versions(name()) == []


def test_the_rotation_policy_round_trips(keys: KeyStore) -> None:
    key = keys.create_key(name(), "EC", tags={})
    policy = RotationPolicy(rotate_after="P90D", notify_before_expiry="P30D", expires_after="P180D")
    assert keys.set_rotation_policy(key.name, policy) == policy
    assert keys.get_rotation_policy(key.name) == policy


@pytest.mark.parametrize(("status", "retry_after"), [(429, 1.0), (503, None)])
def test_throttling_and_server_errors_surface_as_transient(backend: str, keys: KeyStore, request: pytest.FixtureRequest,
                                                          status: int, retry_after: float | None) -> None:  # fmt: skip
    if backend == "fake":
        pytest.skip("faults are injected by the emulator")
    from tools.harness.stack import admin

    handle = request.getfixturevalue("emulator_instance")
    admin(handle, "PUT", "/_admin/faults/keyvault", {"status": status, "count": 20, "retry_after": 1})
    try:
        with pytest.raises(TransientError) as raised:
            keys.get_key(name())
        assert raised.value.retry_after == retry_after
    finally:
        admin(handle, "DELETE", "/_admin/faults")
