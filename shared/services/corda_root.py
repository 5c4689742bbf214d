"""A member's own Corda root: its key created in the member's own vault, its certificate made once.

The root's key is ``{member_id}-corda-root`` (EC P-256, non-exportable, like every key the control
plane creates); the vault signs the certificate body that ``decisions.corda_pki`` builds. The
certificate is stored create-only in the member's own state (``corda/root.json``, with the key id it
was made with) before anyone sees it, because an ECDSA signature differs each time it is made: a
step that runs twice, or two deployments of one member at once, must hand out one certificate, the
one stored first. A newer key version (a rotation) makes a new certificate.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from shared.decisions import corda_pki
from shared.errors import ConflictError
from shared.ports.keys import KeyStore
from shared.ports.state import StateStore

#: Where the member's root certificate is kept in its own state.
ROOT_PATH = "corda/root.json"


def root_key_name(member_id: str) -> str:
    return f"{member_id}-corda-root"


def ensure_root(keys: KeyStore, state: StateStore, *, member_id: str, legal_name: str, now: datetime) -> str:
    """``member_id``'s root certificate as a chain entry carries it (padded base64 DER): the stored one
    when it was made with the current key, else made now from the key (created if absent) and stored."""
    name = root_key_name(member_id)
    key = keys.get_key(name)
    if key is None or not key.enabled:
        key = keys.create_key(name, "EC", tags={"member_id": member_id, "kind": "corda-root"})
    stored = state.read(ROOT_PATH)
    if stored is not None and stored.body.get("kid") == key.kid:
        return str(stored.body["corda_root"])
    public_key = corda_pki.public_key_from_jwk(key.public_jwk)
    created = key.created_on if key.created_on.tzinfo else key.created_on.replace(tzinfo=UTC)
    not_before = created.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)  # Corda's: from the day
    tbs = corda_pki.root_tbs(
        member_id, legal_name, public_key, serial=corda_pki.serial_for(key.kid), not_before=not_before
    )
    encoded = corda_pki.encode(corda_pki.assemble(tbs, keys.sign(key.kid, hashlib.sha256(tbs).digest())))
    check = corda_pki.check_root(encoded, member_id, legal_name)
    if not check.accepted:  # the vault signed with another key than it named, or the name is not the member's
        raise ValueError(check.message)
    body = {"kid": key.kid, "corda_root": encoded, "made_at": now.isoformat()}
    try:
        if stored is None:
            state.create(ROOT_PATH, body)
        else:
            state.replace(ROOT_PATH, body, stored.etag)
    except ConflictError:
        # Another step made one first: the stored certificate is the member's root.
        again = state.read(ROOT_PATH)
        if again is None or again.body.get("kid") != key.kid:
            raise
        return str(again.body["corda_root"])
    return encoded
