"""The emulator's state: one JSON document per service in the state folder, written atomically, so a
restart keeps every principal, key, scale set, load setting and fault.

Keys are kept per vault (``keyvault``: vault name → key name → versions). A state folder written
before vaults had names holds version 1's keys at the top level; they are read as the default vault's.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from .identity import DEFAULT_VAULT


class State:
    def __init__(self, folder: Path):
        self.folder = folder
        self.lock = threading.RLock()
        self.data: dict[str, dict[str, Any]] = {}
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("keyvault", "compute", "load", "faults", "principals"):
            path = folder / f"{name}.json"
            self.data[name] = json.loads(path.read_text()) if path.exists() else {}
        keys = self.data["keyvault"]
        if any(isinstance(entry, dict) and "versions" in entry for entry in keys.values()):
            self.data["keyvault"] = {DEFAULT_VAULT: keys}

    def section(self, name: str) -> dict[str, Any]:
        return self.data[name]

    def save(self, name: str) -> None:
        with self.lock:
            path = self.folder / f"{name}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data[name]))
            os.replace(tmp, path)

    def reset(self) -> None:
        with self.lock:
            for name in self.data:
                self.data[name] = {}
                self.save(name)
