"""Canonical JSON and base64url, as the contract fixes them for signatures.

Canonical JSON: keys sorted, separators ``,`` and ``:``, no spaces, UTF-8. Signatures are ES256 over
the SHA-256 of those bytes, in the raw 64-byte r||s form, base64url without padding.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(document: Any) -> bytes:
    return hashlib.sha256(canonical_json(document)).digest()


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    """Decode base64url without padding; ValueError on anything else."""
    if "=" in text or not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError("not base64url without padding")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def approval_payload(*, approver_id: str, decision: str, member_id: str, request_id: str) -> dict[str, str]:
    """What an approver signs: exactly these four fields."""
    return {"approver_id": approver_id, "decision": decision, "member_id": member_id, "request_id": request_id}
