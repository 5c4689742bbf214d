"""The identity keeper's configuration: one TOML file per identity an instance may run
(``/etc/nodeagent/identity-{identity}.toml``). Every key::

    identity = "bank-a"                # the Corda identity: its lease (leases/{identity}) and its ledger
    scale_set = "vmss-bank-a"          # this instance's scale set ...
    instance_id = "3"                  # ... and its instance id: the lease's holder is "vmss-bank-a/3"
    leases_url = "https://<account>.blob.core.windows.net/identity-leases"
    credential = "managed-identity"    # or "sas" (Azurite: the URL carries a container SAS)
    managed_identity_client_id = ""    # the nodes' user-assigned identity (empty: the VM's only identity)
    ledger = "host=<server> port=5432 dbname=ledger_bank_a user=ledger_bank_a sslmode=require"
    ledger_password_file = "/etc/nodeagent/ledger-bank-a.pw"   # the role's password, readable by the agent only
    node_command = ["/opt/corda/bin/corda-node"]               # started with FENCE_TOKEN and LEDGER_OPTIONS
    migrate_command = ["/opt/corda/bin/corda-migrate"]         # optional: the schema step before each start

    [times]                            # optional; the defaults are nodeagent.identity.keeper.Times
    lease_seconds = 30
    renew_every = 5.0
    grace = 5.0
    margin = 3.0
    call_timeout = 5.0
    standby_every = 2.0
    prepare_timeout = 900.0            # the fence, the schema step and arming, renewing the lease meanwhile

``ledger`` is a libpq connection string without a password (the password comes from its own file, so
the config file itself holds no secret with ``managed-identity``). The keeper's own sessions carry no
fencing token: it never writes the ledger's tables, only the fence. With ``sas`` the leases URL must
carry a SAS that allows read, create and write on the container (a lease is a write).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeagent.config import CLIENT_ID, ConfigError, Credential, container_url, read_toml, refuse_unknown, text
from shared.decisions.identities import LEASE_CONTAINER, holder_name

_IDENTITY = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_KEYS = {
    "identity", "scale_set", "instance_id", "leases_url", "credential", "managed_identity_client_id", "ledger",
    "ledger_password_file", "node_command", "migrate_command", "times",
}  # fmt: skip
_TIMES = {"lease_seconds": int, "renew_every": float, "grace": float, "margin": float, "call_timeout": float,
          "standby_every": float, "prepare_timeout": float}  # fmt: skip


@dataclass(frozen=True)
class KeeperConfig:
    identity: str
    holder: str
    leases_url: str
    credential: Credential
    ledger: str
    ledger_password_file: Path
    node_command: tuple[str, ...]
    migrate_command: tuple[str, ...] = ()
    managed_identity_client_id: str | None = None
    times: dict[str, float] = field(default_factory=dict)


def _command(values: dict[str, Any], key: str, *, required: bool) -> tuple[str, ...]:
    value = values.get(key, [])
    if not isinstance(value, list) or not all(isinstance(part, str) and part for part in value):
        raise ConfigError(f"{key} must be a list of non-empty strings (the program and its arguments)")
    if required and not value:
        raise ConfigError(f"{key} is required")
    return tuple(value)


def parse(values: dict[str, Any]) -> KeeperConfig:
    refuse_unknown(values, _KEYS)
    identity = text(values, "identity")
    if not _IDENTITY.fullmatch(identity):
        raise ConfigError(f"identity {identity!r} must match {_IDENTITY.pattern}")
    try:
        holder = holder_name(text(values, "scale_set"), text(values, "instance_id"))
    except ValueError as error:
        raise ConfigError(f"scale_set and instance_id: {error}") from None
    try:
        credential = Credential(text(values, "credential"))
    except ValueError:
        raise ConfigError(f"credential must be one of {', '.join(c.value for c in Credential)}") from None
    url = container_url(values, "leases_url", LEASE_CONTAINER, credential)
    client_id = text(values, "managed_identity_client_id", required=False) or None
    if client_id is not None and not CLIENT_ID.fullmatch(client_id):
        raise ConfigError("managed_identity_client_id must be a client id (a GUID), or empty")
    ledger = text(values, "ledger")
    if re.search(r"(^|\s)password\s*=", ledger):
        raise ConfigError("ledger must not carry a password: put it in ledger_password_file")
    password_file = Path(text(values, "ledger_password_file"))
    if not password_file.is_absolute():
        raise ConfigError("ledger_password_file must be an absolute path")
    times = values.get("times", {})
    if not isinstance(times, dict):
        raise ConfigError("times must be a table")
    unknown_times = sorted(set(times) - set(_TIMES))
    if unknown_times:
        raise ConfigError(f"unknown key(s) in times: {', '.join(unknown_times)}: they are {', '.join(_TIMES)}")
    for key, kind in _TIMES.items():
        if key in times and (isinstance(times[key], bool) or not isinstance(times[key], int | float)
                             or (kind is int and not isinstance(times[key], int)) or times[key] <= 0):  # fmt: skip
            raise ConfigError(f"times.{key} must be a positive {'whole ' if kind is int else ''}number of seconds")
    return KeeperConfig(
        identity, holder, url, credential, ledger, password_file,
        _command(values, "node_command", required=True), _command(values, "migrate_command", required=False),
        client_id, dict(times),
    )  # fmt: skip


def load(path: Path) -> KeeperConfig:
    return parse(read_toml(path))
