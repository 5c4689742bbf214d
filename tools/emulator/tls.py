"""The emulator's TLS: a local CA (kept in the state folder, so clients that trust it keep working
across restarts) and a server certificate for localhost and 127.0.0.1 signed by it at every start.

Both come from trustme, the maintained library for test certificate authorities; the CA is written
once and read back with ``trustme.CA.from_pem``.
"""

from __future__ import annotations

from pathlib import Path

import trustme

ORGANIZATION = "consortium control plane (local)"


def ensure_ca(state_dir: Path) -> trustme.CA:
    cert_path, key_path = state_dir / "ca.pem", state_dir / "ca.key"
    if cert_path.exists() and key_path.exists():
        try:
            return trustme.CA.from_pem(cert_path.read_bytes(), key_path.read_bytes())
        except ValueError as e:
            raise ValueError(
                f"{key_path} or {cert_path} does not load ({e}): delete {state_dir} to make a new CA"
            ) from e
    ca = trustme.CA(organization_name=ORGANIZATION)
    state_dir.mkdir(parents=True, exist_ok=True)
    ca.private_key_pem.write_to_path(str(key_path))
    key_path.chmod(0o600)
    ca.cert_pem.write_to_path(str(cert_path))
    return ca


def server_certificate(state_dir: Path) -> tuple[Path, Path]:
    """Write a fresh server certificate (chain included) and key signed by the CA; return their paths."""
    leaf = ensure_ca(state_dir).issue_cert("localhost", "127.0.0.1", organization_name=ORGANIZATION)
    cert_path, key_path = state_dir / "server.pem", state_dir / "server.key"
    leaf.private_key_pem.write_to_path(str(key_path))
    key_path.chmod(0o600)
    cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return cert_path, key_path
