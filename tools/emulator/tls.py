"""The emulator's TLS: a local CA (kept in the state folder, so clients that trust it keep working
across restarts) and a server certificate for localhost and 127.0.0.1 signed by it at every start.

Both come from trustme, the maintained library for test certificate authorities; the CA is written
once and read back with ``trustme.CA.from_pem``.
"""

from __future__ import annotations

from pathlib import Path

import trustme

ORGANIZATION = "consortium control plane (local)"


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write ``path`` whole or not at all: a client polling for the CA never reads a half-written file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    if private:
        partial.chmod(0o600)
    partial.replace(path)


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
    _write(key_path, ca.private_key_pem.bytes(), private=True)
    _write(cert_path, ca.cert_pem.bytes())
    return ca


def server_certificate(state_dir: Path) -> tuple[Path, Path]:
    """Write a fresh server certificate (chain included) and key signed by the CA; return their paths."""
    leaf = ensure_ca(state_dir).issue_cert("localhost", "127.0.0.1", organization_name=ORGANIZATION)
    cert_path, key_path = state_dir / "server.pem", state_dir / "server.key"
    _write(key_path, leaf.private_key_pem.bytes(), private=True)
    _write(cert_path, b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return cert_path, key_path
