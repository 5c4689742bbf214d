"""The signed network map that Corda nodes read: ``network-map/current.json``.

The map is always rebuilt from the member records (every ``active`` member, once, sorted), never
patched, so publishing is "make it so": a publish that finds the map already right writes nothing
and signs nothing. A new map is version + 1, signed through Key Vault with the ``network-map-signer``
key (ES256 over the canonical JSON of the document without its signature) and written with If-Match
on the map it was built from; a lost race re-reads, rebuilds and re-signs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.canonical import b64u, digest, network_map_payload, unb64u
from shared.decisions.onboarding import Status, build_network_map
from shared.errors import ConflictError, TransientError
from shared.naming import NETWORK_MAP_SIGNER
from shared.ports.clock import Clock
from shared.ports.keys import KeyStore, KeyVersion
from shared.ports.state import Document, StateStore
from shared.services.records import iso

MAP_PATH = "network-map/current.json"


@dataclass(frozen=True)
class Published:
    document: dict[str, Any]
    #: True when this call wrote a new version; False when the map was already right.
    changed: bool

    @property
    def version(self) -> int:
        return int(self.document.get("version", 0))


def active_members(state: StateStore) -> list[dict[str, Any]]:
    """Members that are active and not on their way out: the map's members, and the voters."""
    members = []
    for path in state.list_paths("members/"):
        doc = state.read(path)
        if doc is not None and doc.body.get("status") == Status.ACTIVE.value and not doc.body.get("offboarding"):
            members.append(doc.body)
    return members


@dataclass
class NetworkMapPublisher:
    state: StateStore
    keys: KeyStore
    clock: Clock
    attempts: int = 8

    def signer(self) -> KeyVersion:
        """The current signing key, created (EC P-256, non-exportable) on first use."""
        key = self.keys.get_key(NETWORK_MAP_SIGNER)
        if key is None or not key.enabled:
            key = self.keys.create_key(NETWORK_MAP_SIGNER, "EC", tags={"purpose": "network-map"})
        return key

    def publish(self) -> Published:
        for _ in range(self.attempts):
            current: Document | None = self.state.read(MAP_PATH)
            signer = self.signer()
            proposed = build_network_map(
                current.body if current else None,
                active_members(self.state),
                issued_at=iso(self.clock),
                signing_key_id=signer.kid,
            )
            if proposed is None and current is not None:
                return Published(current.body, changed=False)
            assert proposed is not None  # build_network_map returns a map when there is none yet
            if current is not None and "fencing_token" in current.body:
                proposed["fencing_token"] = current.body["fencing_token"]  # the coordinator's fence stays
            proposed["signature"] = b64u(self.keys.sign(signer.kid, digest(network_map_payload(proposed))))
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
