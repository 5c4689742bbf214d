"""Offering this node's own ``NodeInfo`` file to its member's control plane, which signs and publishes it.

Corda writes ``nodeInfo-<hash>`` in its base directory when it starts (network-map.rst). The agent
puts the newest such file (a node has one current ``NodeInfo``) in the member's private
``node-infos-inbox`` container, as a blob named by the SHA-256 of its bytes, and never overwrites one:
``If-None-Match: *`` (the same bytes are the same blob). Then, every ``INBOX_REFRESH_SECONDS``, it
sets the blob's metadata, which moves its Last-Modified (set by the storage service, not by this
VM's clock): that is the node's heartbeat. The control plane publishes the files whose blobs were
refreshed within ``INBOX_CURRENT_SECONDS`` (``shared.services.node_infos.NodeInfoPublisher``), so a
node that is deleted, stopped or writes a new file drops out of the member's signed index by itself.

Most runs send nothing: the agent remembers (``state_dir/inbox.json``) which file it offered and
when it last refreshed it. A refresh that finds the blob gone (the control plane removes stale ones)
uploads it again. The credential is the one the agent reads with (``nodeagent.config``): the VM's
managed identity, which holds Storage Blob Data Contributor on that container only; locally a SAS
with create and write on that container only. Nothing the agent offers is trusted for it: the
control plane checks it, and the agents verify what it signs. The adapter over the storage SDK is
``nodeagent.container.BlobInbox`` (the agent's one module that imports Azure SDKs).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from nodeagent.config import AgentConfig
from nodeagent.disk import write_atomically
from shared.decisions import node_infos

#: What Corda names the file it writes in its base directory.
PREFIX = "nodeInfo-"


class Offered(StrEnum):
    UPLOADED = "uploaded"  # the file was not in the inbox: it is now
    REFRESHED = "refreshed"  # the file's blob was there: its Last-Modified moved (the heartbeat)
    UNCHANGED = "unchanged"  # offered and refreshed less than INBOX_REFRESH_SECONDS ago: nothing sent
    NO_FILE = "no_file"  # Corda has written no nodeInfo file (yet)
    TOO_LARGE = "too_large"  # larger than any NodeInfo file can be: not offered
    OFF = "off"  # no inbox_url configured


class Inbox(Protocol):
    def refresh(self, name: str) -> bool:
        """Move the blob's Last-Modified; ``False`` when there is no such blob. ``Unavailable``."""
        ...

    def create(self, name: str, data: bytes) -> None:
        """Write the blob unless one of that name exists (then nothing). ``Unavailable``."""
        ...


@dataclass(frozen=True)
class Offer:
    outcome: Offered
    sha256: str | None = None

    def line(self) -> str:
        return f"nodeagent: own node info {self.outcome.value}" + (f" ({self.sha256[:12]})" if self.sha256 else "")


def own_node_info(corda_dir: Path) -> Path | None:
    """The newest ``nodeInfo-*`` regular file directly in Corda's base directory (``None``: none yet)."""
    if not corda_dir.is_dir():
        return None
    found = [p for p in corda_dir.iterdir() if p.name.startswith(PREFIX) and p.is_file() and not p.is_symlink()]
    return max(found, key=lambda p: (p.stat().st_mtime, p.name), default=None)


def offer(config: AgentConfig, inbox: Inbox, *, now: datetime) -> Offer:
    """Offer the node's file if it is new, or refresh it when ``INBOX_REFRESH_SECONDS`` have passed."""
    path = own_node_info(config.corda_dir)
    if path is None:
        return Offer(Offered.NO_FILE)
    if path.stat().st_size > node_infos.MAX_NODE_INFO_BYTES:
        return Offer(Offered.TOO_LARGE)
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    memo = config.state_dir / "inbox.json"
    last = _read(memo)
    at = now.timestamp()
    if last.get("sha256") == sha256 and 0 <= at - float(last.get("refreshed_at", 0)) < node_infos.INBOX_REFRESH_SECONDS:
        return Offer(Offered.UNCHANGED, sha256)
    outcome = Offered.REFRESHED
    if not inbox.refresh(sha256):
        inbox.create(sha256, data)
        outcome = Offered.UPLOADED
    write_atomically(memo, json.dumps({"sha256": sha256, "refreshed_at": at}).encode(), mode=0o640)
    return Offer(outcome, sha256)


def _read(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a memo only: without it the next run refreshes once more
    return body if isinstance(body, dict) else {}
