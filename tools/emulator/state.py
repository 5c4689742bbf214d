"""The emulator's state: one JSON document per service in the state folder, written atomically, so a
restart keeps every key, scale set, load setting and fault."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


class State:
    def __init__(self, folder: Path):
        self.folder = folder
        self.lock = threading.RLock()
        self.data: dict[str, dict[str, Any]] = {}
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("keyvault", "compute", "load", "faults"):
            path = folder / f"{name}.json"
            self.data[name] = json.loads(path.read_text()) if path.exists() else {}

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
