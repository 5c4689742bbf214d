"""The signed network map of version 1 (``network-map/current.json``), kept only for the key rotation
until it moves onto the membership chain; nothing else uses it.

The signed network map that Corda nodes read: ``network-map/current.json``.

The map is always rebuilt from the member records (every ``active`` member, once, sorted), never
patched, so publishing is "make it so": a publish that finds the map already right writes nothing
and signs nothing. A new map is version + 1, signed through Key Vault with the ``network-map-signer``
key (ES256 over the canonical JSON of the document without its signature) and written with If-Match
on the map it was built from; a lost race re-reads, rebuilds and re-signs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from shared.canonical import b64u, digest, network_map_payload, unb64u
from shared.errors import ConflictError, TransientError
from shared.naming import NETWORK_MAP_SIGNER
from shared.ports.clock import Clock
from shared.ports.keys import KeyStore, KeyVersion
from shared.ports.state import Document, StateStore
from shared.services.records import active_members, iso

MAP_PATH = "network-map/current.json"
#: The signer's rotation record: ``{"keys": {"signer": <key entry>}}``, written by the key rotation.
SIGNER_PATH = "network-map/signer.json"
SIGNER_KIND = "signer"
#: Rotation stages during which the outgoing signer still signs and the incoming one is announced.
OVERLAP_STAGES = ("announced", "published")


@dataclass(frozen=True)
class Published:
    document: dict[str, Any]
    #: True when this call wrote a new version; False when the map was already right.
    changed: bool

    @property
    def version(self) -> int:
        return int(self.document.get("version", 0))


def map_entry(record: dict[str, Any]) -> dict[str, Any]:
    keys = {kind: _published_key(key) for kind, key in (record.get("keys") or {}).items()}
    return {
        "member_id": record["member_id"],
        "legal_name": record["legal_name"],
        "scale_set_id": record.get("scale_set_id"),
        "keys": keys,
    }


def _published_key(key: dict[str, Any]) -> dict[str, Any]:
    """A key as nodes see it; during a rotation's overlap, with the version it replaces as ``previous``."""
    entry = {"kid": key.get("kid"), "version": key.get("version"), "public_jwk": key.get("public_jwk")}
    previous = key.get("previous")
    if previous:
        entry["previous"] = {k: previous.get(k) for k in ("kid", "version", "public_jwk")}
    return entry


def build_network_map(
    current: dict[str, Any] | None,
    members: list[dict[str, Any]],
    *,
    issued_at: str,
    signing_key_id: str,
    next_signing_key: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The next map (unsigned) for ``members``, or None when it would not change (no new version).

    ``next_signing_key`` (kid and public JWK) announces the signer's incoming version during its
    rotation's overlap: a node that trusts this map's signer learns the key the next maps are signed with.
    """
    entries = sorted((map_entry(m) for m in members), key=lambda e: str(e["member_id"]))
    if (
        current is not None
        and current.get("members") == entries
        and current.get("signing_key_id") == signing_key_id
        and current.get("next_signing_key") == next_signing_key
    ):
        return None
    version = int(current.get("version", 0)) + 1 if current else 1
    document: dict[str, Any] = {
        "version": version, "issued_at": issued_at, "members": entries, "signing_key_id": signing_key_id,
    }  # fmt: skip
    if next_signing_key is not None:
        document["next_signing_key"] = next_signing_key
    return document


@dataclass
class NetworkMapPublisher:
    state: StateStore
    keys: KeyStore
    clock: Clock
    attempts: int = 8

    def signing(self, current: dict[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
        """The key id to sign with, and the incoming signer to announce (during its rotation's overlap).

        Once the signer has been rotated, ``network-map/signer.json`` (the rotation's record) says:
        while a rotation is announced or published, the outgoing version still signs and the map
        announces the incoming one; otherwise the current version signs. Before any rotation: the
        version the map is signed with while it is enabled (a rotation stopped before its record was
        written must not switch signers early), else the newest, created on first use.
        """
        record = self.state.read(SIGNER_PATH)
        entry = (record.body.get("keys") or {}).get(SIGNER_KIND) if record else None
        if entry and entry.get("kid"):
            stage = (entry.get("rotation") or {}).get("stage")
            previous = entry.get("previous")
            if previous and stage in OVERLAP_STAGES:
                return str(previous["kid"]), {"kid": entry["kid"], "public_jwk": entry.get("public_jwk")}
            return str(entry["kid"]), None
        named = str((current or {}).get("signing_key_id") or "")
        if named:
            key = self.keys.get_key(NETWORK_MAP_SIGNER, named.rstrip("/").rsplit("/", 1)[-1])
            if key is not None and key.enabled:
                return key.kid, None
        return self.signer().kid, None

    def signer(self) -> KeyVersion:
        """The newest enabled signing key, created (EC P-256, non-exportable) on first use."""
        key = self.keys.get_key(NETWORK_MAP_SIGNER)
        if key is None or not key.enabled:
            key = self.keys.create_key(NETWORK_MAP_SIGNER, "EC", tags={"purpose": "network-map"})
        return key

    def publish(self, including: dict[str, Any] | None = None) -> Published:
        """Rebuild the map from the records and sign it, unless it is already right.

        ``including``: the entry of the member whose step publishes (``map_entry`` of its record). A map
        that already carries it, because another member's publish rebuilt it after this record changed,
        is taken as it is, also after losing a race: nothing is listed, read, signed or written, and
        other members' changes are their own steps' to publish. With many onboardings at once most
        publishes end there instead of each reading every member record.
        """
        for _ in range(self.attempts):
            current: Document | None = self.state.read(MAP_PATH)
            if including is not None and current is not None and including in (current.body.get("members") or []):
                return Published(current.body, changed=False)
            signing_key_id, next_signer = self.signing(current.body if current else None)
            proposed = build_network_map(
                current.body if current else None,
                active_members(self.state),
                issued_at=iso(self.clock),
                signing_key_id=signing_key_id,
                next_signing_key=next_signer,
            )
            if proposed is None and current is not None:
                return Published(current.body, changed=False)
            if proposed is None:  # cannot happen: with no map yet there is always one to build
                raise TransientError(f"{MAP_PATH}: nothing to publish and no map yet")
            if current is not None and "fencing_token" in current.body:
                proposed["fencing_token"] = current.body["fencing_token"]  # the coordinator's fence stays
            proposed["signature"] = b64u(self.keys.sign(signing_key_id, digest(network_map_payload(proposed))))
            try:
                if current is None:
                    self.state.create(MAP_PATH, proposed)
                else:
                    self.state.replace(MAP_PATH, proposed, current.etag)
            except ConflictError:
                continue
            return Published(proposed, changed=True)
        raise TransientError(f"{MAP_PATH}: still contended after {self.attempts} attempts")


def verify_map(document: dict[str, Any], keys: KeyStore) -> bool:
    """Does the map's signature verify with the key it names? (What a node does, through the vault.)"""
    try:
        signature = unb64u(str(document["signature"]))
    except (KeyError, ValueError):
        return False
    return keys.verify(str(document.get("signing_key_id")), digest(network_map_payload(document)), signature)


def verify_with_public_key(document: dict[str, Any], public_jwk: dict[str, Any]) -> bool:
    """Does the map's signature verify with this EC P-256 public key? (What a node does, offline.)"""
    try:
        x = int.from_bytes(unb64u(str(public_jwk["x"])), "big")
        y = int.from_bytes(unb64u(str(public_jwk["y"])), "big")
        signature = unb64u(str(document["signature"]))
        key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except (KeyError, ValueError):
        return False
    if len(signature) != 64:
        return False
    der = utils.encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, digest(network_map_payload(document)), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True


@dataclass
class NodeTrust:
    """How a Corda node follows the map across signer rotations, from the one key it was given.

    A node trusts the signer key it was installed with (kid and public JWK). It accepts a map only
    if the map is signed by a key it trusts, and its version is not older than the last it took. A
    map it accepted that announces ``next_signing_key`` adds that key to the trusted ones, so the
    map signed by the incoming version after the overlap verifies; once a map signed by the new
    key is accepted, the keys before it are dropped.
    """

    trusted: dict[str, dict[str, Any]]
    version: int = 0

    def accept(self, document: dict[str, Any]) -> bool:
        kid = str(document.get("signing_key_id"))
        jwk = self.trusted.get(kid)
        if jwk is None or int(document.get("version", 0)) < self.version:
            return False
        if not verify_with_public_key(document, jwk):
            return False
        self.version = int(document.get("version", 0))
        self.trusted = {kid: jwk}
        announced = document.get("next_signing_key")
        if isinstance(announced, dict) and announced.get("kid") and announced.get("public_jwk"):
            self.trusted[str(announced["kid"])] = dict(announced["public_jwk"])
        return True
