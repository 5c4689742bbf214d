"""The agent's files: what it has verified (``state_dir``) and the node's ``additional-node-infos``.

Every write is a whole file written beside its target and renamed over it (``os.replace``), so a
reader never sees half a file and a crash leaves the old one or the new one:

- ``state_dir/chain/{version:08d}.json``: each chain version as it verified (its published bytes),
  written once and never replaced, so the agent resumes from its head and never goes back;
- ``state_dir/state.json``: per member, the ``seq`` and fingerprint of the last index accepted; the
  flag days already applied;
- ``state_dir/flagday/``: a restart request for a due flag day and the network parameters it installs,
  which a root-owned systemd path unit acts on (the agent itself cannot restart anything);
- ``corda_dir/additional-node-infos/``: the admitted members' node-info files. Corda reads every
  *regular* file there and drops a node whose file disappears (``NodeInfoWatcher``), so temporary files
  are written in the subdirectory ``.nodeagent/``, which it does not read, and renamed into place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STAGING = ".nodeagent"


class StateError(RuntimeError):
    """The agent's own state cannot be read or does not verify; the message names the file."""


def write_atomically(path: Path, data: bytes, *, staging: Path | None = None, mode: int = 0o644) -> None:
    """``data`` at ``path`` whole or not at all (written in ``staging``, default ``path``'s folder)."""
    folder = staging or path.parent
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{path.name}.tmp-{os.getpid()}"
    with open(temp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(temp, mode)
    os.replace(temp, path)


def chain_file(version: int) -> str:
    return f"{version:08d}.json"


@dataclass
class AgentState:
    """What ``state.json`` holds."""

    #: member id -> [seq, fingerprint] of the last index accepted for it
    indexes: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: flag day ids this node has restarted for, oldest first
    applied_flag_days: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "indexes": {m: [s, f] for m, (s, f) in sorted(self.indexes.items())},
            "applied_flag_days": list(self.applied_flag_days),
        }


class StateDir:
    def __init__(self, root: Path):
        self.root = root
        self.chain_dir = root / "chain"
        self.flag_day_dir = root / "flagday"

    def versions(self) -> list[bytes]:
        """The verified versions as stored, from 0, stopping at the first gap."""
        found: list[bytes] = []
        while (path := self.chain_dir / chain_file(len(found))).exists():
            found.append(path.read_bytes())
        return found

    def store_version(self, version: int, raw: bytes) -> None:
        path = self.chain_dir / chain_file(version)
        if path.exists():
            if path.read_bytes() != raw:
                raise StateError(f"{path} already holds another document of version {version}")
            return
        write_atomically(path, raw, mode=0o640)

    def load(self) -> AgentState:
        path = self.root / "state.json"
        if not path.exists():
            return AgentState()
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            indexes = {str(m): (int(v[0]), str(v[1])) for m, v in body["indexes"].items()}
            applied = [str(f) for f in body["applied_flag_days"]]
        except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            raise StateError(f"{path} is not the agent's state: {error}") from None
        return AgentState(indexes, applied)

    def save(self, state: AgentState) -> None:
        data = json.dumps(state.to_json(), indent=1, sort_keys=True).encode()
        write_atomically(self.root / "state.json", data, mode=0o640)

    def request_restart(self, flag_day_id: str, network_parameters: bytes) -> None:
        """Stage the network parameters, then the request the root path unit watches (in that order, so
        the unit never sees a request without its parameters)."""
        write_atomically(self.flag_day_dir / "network-parameters", network_parameters)
        request = json.dumps({"flag_day_id": flag_day_id}, sort_keys=True).encode()
        write_atomically(self.flag_day_dir / "restart-request.json", request)


class NodeInfosDir:
    def __init__(self, root: Path):
        self.root = root
        self.staging = root / STAGING

    def present(self) -> set[str]:
        """The regular files Corda would read (every one, ours or not: the directory is the agent's)."""
        if not self.root.exists():
            return set()
        return {p.name for p in self.root.iterdir() if p.is_symlink() or p.is_file()}

    def write(self, name: str, data: bytes) -> None:
        write_atomically(self.root / name, data, staging=self.staging)

    def remove(self, names: Iterable[str]) -> None:
        for name in names:
            try:
                (self.root / name).unlink()
            except FileNotFoundError:
                pass
