"""How long a cold verification of a long membership chain takes, against the signature library's own rate.

A chain of 50 members (a genesis signed by all 50, then 1,000 ``rotate`` versions, each signed by a
majority of 26 with the member's own key among them) is built once with real P-256 keys, stored as
its published bytes, then verified from genesis as a new deployment or a node does
(``verification.accept_all`` into a ``chain.NodeTrust``, ``verification.verify_published``): each
version read from its canonical bytes and checked against the one before as ``chain.verify_next``
does, with every cache empty (``verification.forget``: keys, member entries, names, worker
processes); while one thread
reads and checks the next version, the signatures of the ones before are checked by a worker process
on the other core, and the reading thread checks the newest batches no worker has started whenever
it would otherwise wait, so both cores check signatures to the end. Beside it, the ``cryptography``
library's own ES256 verification rate on one core in the same run: ``chain_verify_share_of_library_rate``
above 1 means the cores more than pay for the rest (parsing, canonical form, hashing);
``chain_verify_cores`` says how many there were.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from shared import verification
from shared.decisions import chain

MEMBERS = 50
VERSIONS = 1000
COUNTRIES = ["GB", "FR", "NL", "DE", "IT", "ES", "BE", "LU", "IE", "PT"]


def _jwk(private: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    n = private.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": chain.b64u(n.x.to_bytes(32, "big")),
        "y": chain.b64u(n.y.to_bytes(32, "big")),
    }


def _sign(private: ec.EllipticCurvePrivateKey, digest: bytes) -> str:
    r, s = decode_dss_signature(private.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
    return chain.b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def build() -> tuple[str, list[bytes], int]:
    ids = [f"bank-{i:02d}" for i in range(MEMBERS)]
    keys = {m: ec.generate_private_key(ec.SECP256R1()) for m in ids}
    kids = {m: f"https://kv-{m}.vault.azure.net/keys/{m}-governance/{i + 1:032x}" for i, m in enumerate(ids)}
    entries = {
        m: {"member_id": m, "legal_name": f"O=Bank {i}, L=City, C={COUNTRIES[i % 10]}",
            "governance_key": {"kid": kids[m], "jwk": _jwk(keys[m])},
            "endpoint": f"https://st{m.replace('-', '')}.blob.core.windows.net/consortium-public"}
        for i, m in enumerate(ids)
    }  # fmt: skip
    genesis = chain.unsigned_genesis(
        "credit-consortium", entries.values(), convener=ids[0], issued_at="2026-11-28T10:00:00Z"
    )
    digest = hashlib.sha256(chain.signing_bytes(genesis)).digest()
    genesis = chain.with_signatures(
        genesis, [{"member_id": m, "kid": kids[m], "sig": _sign(keys[m], digest)} for m in ids]
    )
    trusted = chain.verify_genesis(chain.document_hash(genesis), genesis)
    published = [chain.published_bytes(genesis)]
    signatures = len(ids)
    for v in range(1, VERSIONS + 1):
        subject = ids[v % MEMBERS]
        entry = {
            **entries[subject],
            "endpoint": f"https://st{subject.replace('-', '')}{v}.blob.core.windows.net/consortium-public",
        }
        change = {"kind": "rotate", "member_id": subject, "proposal_id": f"prop-{v}"}
        document = chain.unsigned_next(trusted, change, issued_at="2026-11-28T11:00:00Z", entry=entry)
        digest = hashlib.sha256(chain.signing_bytes(document)).digest()
        signers = [subject, *[m for m in ids if m != subject][: MEMBERS // 2]]
        document = chain.with_signatures(
            document, [{"member_id": m, "kid": kids[m], "sig": _sign(keys[m], digest)} for m in signers]
        )
        trusted = chain.verify_next(trusted, document)
        entries[subject] = entry
        published.append(chain.published_bytes(document))
        signatures += len(signers)
    return chain.document_hash(chain.parse_published(published[0])), published, signatures


def library_rate(seconds: float = 1.0) -> float:
    """ES256 verifications per second of ``cryptography`` itself (a prehashed digest, a DER signature)."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key()
    digest = hashlib.sha256(b"membership").digest()
    der = private.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(200):
            public.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        count += 200
    return count / (time.perf_counter() - started)


def verify_cold(pinned: str, published: list[bytes]) -> float:
    verification.forget()
    started = time.perf_counter()
    node = chain.NodeTrust(pinned)
    if verification.accept_all(node, published) != len(published):
        raise AssertionError(f"the bench chain did not verify: {node.refused[-1]}")
    return time.perf_counter() - started


def run() -> dict[str, Any]:
    pinned, published, signatures = build()
    rate = library_rate()
    seconds = min(verify_cold(pinned, published) for _ in range(3))
    achieved = signatures / seconds
    cores = os.cpu_count() or 1
    size = sum(len(p) for p in published)
    print(
        f"chain: {len(published)} versions of {MEMBERS} members, {size / 1e6:.1f} MB published, {signatures} signatures"
    )
    print(f"  cold verification from genesis   {seconds:7.2f} s  (goal <= 2 s)")
    print(f"  signatures verified per second   {achieved:9.0f}")
    share = f"{achieved / rate:.0%} of it on {cores} cores"
    print(f"  cryptography's own ES256 rate    {rate:9.0f} /s on one core ({share})")
    return {
        "chain_verify_seconds_1000_versions_50_members": round(seconds, 3),
        "chain_verify_signatures_1000_versions_50_members": float(signatures),
        "chain_verify_es256_per_second": round(achieved, 1),
        "chain_verify_es256_library_per_second": round(rate, 1),
        "chain_verify_share_of_library_rate": round(achieved / rate, 3),
        "chain_verify_cores": float(cores),
    }
