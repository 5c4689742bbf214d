"""ES256 (ECDSA on P-256 over a SHA-256 digest), as JWS writes it: raw ``r||s``, base64url, no padding.

Kept apart from ``chain`` and light on imports (``cryptography`` only) on purpose: a worker process
that checks a long chain's signatures is spawned and imports this module alone, so it starts
checking in tens of milliseconds instead of after loading the models and the canonical form.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

#: The algorithm object every check uses (immutable; made once instead of once per check).
_ALGORITHM = ec.ECDSA(Prehashed(hashes.SHA256()))

#: One version's checks as a worker takes them: each (x, y, signature), and the digest signed.
Checks = tuple[list[tuple[str, str, str]], bytes]


def b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@lru_cache(maxsize=4096)
def public_key(x: str, y: str) -> ec.EllipticCurvePublicKey:
    """The P-256 point (x, y), base64url coordinates; ``ValueError`` if it is not on the curve."""
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64u_decode(x), "big"), int.from_bytes(b64u_decode(y), "big"), ec.SECP256R1()
    )
    return numbers.public_key()


def verify(x: str, y: str, digest: bytes, sig: str) -> bool:
    """Whether ``sig`` (raw r||s, base64url) signs the SHA-256 ``digest`` with the key (x, y)."""
    raw = b64u_decode(sig)
    if len(raw) != 64:
        return False
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public_key(x, y).verify(der, digest, _ALGORITHM)
    except InvalidSignature:
        return False
    return True


def verify_batch(batch: list[Checks]) -> list[list[bool]]:
    """Each version's checks over its digest, in order (what a worker process runs)."""
    return [[verify(x, y, digest, sig) for x, y, sig in checks] for checks, digest in batch]
