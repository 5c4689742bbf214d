"""The agent's own configuration: one small TOML file, written by cloud-init (``/etc/nodeagent/config.toml``).

Every key, and what it is for::

    member_id = "bank-a"            # the member whose nodes these are (its flag days, its own entry)
    genesis = "<64 lowercase hex>"  # the pinned genesis hash: everything is verified from there
    container_url = "https://<account>.blob.core.windows.net/consortium-public"
    credential = "managed-identity" # or "sas"
    managed_identity_client_id = "" # the nodes' user-assigned identity (empty: the VM's only identity)
    corda_dir = "/opt/corda"        # the node's base directory; the agent writes additional-node-infos/
    state_dir = "/var/lib/nodeagent"  # what the agent has verified, and its flag-day requests
    inbox_url = "https://<account>.blob.core.windows.net/node-infos-inbox"  # optional (empty: off)

``credential`` says how the member's own ``consortium-public`` container is read:

- ``managed-identity`` (in Azure): the VM's user-assigned identity through IMDS
  (``azure.identity.ManagedIdentityCredential``), which holds Storage Blob Data Reader on that one
  container (infra/modules/publication.bicep). ``container_url`` carries no query string.
- ``sas`` (locally, against Azurite, which has no Entra roles): ``container_url`` carries a
  read-only SAS scoped to the container (``tools.provision.public_read_sas``); the file is then a
  secret and is readable by the agent's user only.

``inbox_url`` is the member's private ``node-infos-inbox`` container (in its own storage account,
not the publication one), where the agent offers the ``NodeInfo`` file Corda wrote
(``nodeagent.inbox``), with the same credential: the VM's identity holds Storage Blob Data
Contributor on that container only; with ``sas`` the URL carries a SAS with create and write on
that container only (``tools.provision.inbox_write_sas``). Empty: the node offers nothing.

A value cloud-init could not fill in (a ``${...}`` placeholder left as it is) fails here, naming the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared.naming import MEMBER_ID

DEFAULT_PATH = Path("/etc/nodeagent/config.toml")
_GENESIS = re.compile(r"^[0-9a-f]{64}$")
CLIENT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CONTAINER = "consortium-public"
_INBOX = "node-infos-inbox"  # shared.decisions.node_infos.INBOX_CONTAINER


class Credential(StrEnum):
    MANAGED_IDENTITY = "managed-identity"  # the VM's identity through IMDS (Azure)
    SAS = "sas"  # a read-only SAS in the URL (Azurite)


class ConfigError(ValueError):
    """A configuration the agent cannot run with; the message names the key and the rule."""


@dataclass(frozen=True)
class AgentConfig:
    member_id: str
    genesis: str
    container_url: str
    credential: Credential
    corda_dir: Path
    state_dir: Path
    managed_identity_client_id: str | None = None
    #: The member's private inbox container (empty: this node offers nothing).
    inbox_url: str = ""

    @property
    def node_infos_dir(self) -> Path:
        """Where Corda reads other nodes' ``NodeInfo`` files (network-map.rst): the agent's to write."""
        return self.corda_dir / "additional-node-infos"


_KEYS = {
    "member_id", "genesis", "container_url", "credential", "managed_identity_client_id", "corda_dir", "state_dir",
    "inbox_url",
}  # fmt: skip


def text(values: dict[str, Any], key: str, *, required: bool = True) -> str:
    """``values[key]`` as a string: refused when it is not one, a placeholder cloud-init left, or missing."""
    value = values.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    if "${" in value:
        raise ConfigError(f"{key} is still the placeholder {value!r}: the VM's cloud-init was not filled in")
    if required and not value:
        raise ConfigError(f"{key} is required")
    return value


def refuse_unknown(values: dict[str, Any], keys: set[str]) -> None:
    """A key the file should not have is a typo or a stale file: refused, naming the keys there are."""
    unknown = sorted(set(values) - keys)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}: the keys are {', '.join(sorted(keys))}")


def parse(values: dict[str, Any]) -> AgentConfig:
    refuse_unknown(values, _KEYS)
    member_id = text(values, "member_id")
    if not MEMBER_ID.fullmatch(member_id):
        raise ConfigError(f"member_id {member_id!r} must match {MEMBER_ID.pattern}")
    genesis = text(values, "genesis")
    if not _GENESIS.fullmatch(genesis):
        raise ConfigError("genesis must be the genesis document's hash: 64 lowercase hex digits")
    try:
        credential = Credential(text(values, "credential"))
    except ValueError:
        raise ConfigError(f"credential must be one of {', '.join(c.value for c in Credential)}") from None
    url = container_url(values, "container_url", _CONTAINER, credential)
    inbox_url = container_url(values, "inbox_url", _INBOX, credential, required=False)
    client_id = text(values, "managed_identity_client_id", required=False) or None
    if client_id is not None and not CLIENT_ID.fullmatch(client_id):
        raise ConfigError("managed_identity_client_id must be a client id (a GUID), or empty")
    corda_dir = Path(text(values, "corda_dir"))
    state_dir = Path(text(values, "state_dir"))
    for key, path in (("corda_dir", corda_dir), ("state_dir", state_dir)):
        if not path.is_absolute():
            raise ConfigError(f"{key} must be an absolute path")
    return AgentConfig(member_id, genesis, url, credential, corda_dir, state_dir, client_id, inbox_url)


def container_url(
    values: dict[str, Any], key: str, container: str, credential: Credential, *, required: bool = True
) -> str:
    url = text(values, key, required=required)
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or not parts.path.rstrip("/").endswith(container):
        raise ConfigError(f"{key} must be the URL of the member's {container} container")
    if credential is Credential.SAS and "sig=" not in parts.query:
        raise ConfigError(f'{key} carries no SAS (sig=...), which credential = "sas" needs')
    if credential is Credential.MANAGED_IDENTITY:
        if parts.query:
            raise ConfigError(f'{key} must carry no query string with credential = "managed-identity"')
        if parts.scheme != "https":
            raise ConfigError(f'{key} must be https with credential = "managed-identity"')
    return url


def read_toml(path: Path) -> dict[str, Any]:
    """The file's values; ``ConfigError`` naming the file when it cannot be read or is not TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not TOML: {error}") from None


def load(path: Path = DEFAULT_PATH) -> AgentConfig:
    return parse(read_toml(path))
