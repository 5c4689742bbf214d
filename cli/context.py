"""Settings for the CLI: the environment first, then ``local.settings.json`` Values (the local stack).

Operators in Azure export the app's settings into their shell; locally the CLI reads the same file
the local host reads, so `consortium` talks to whatever `make up` started without any setup.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from shared.settings import Settings

LOCAL_SETTINGS = "local.settings.json"


def find_local_settings(start: Path | None = None) -> Path | None:
    """``local.settings.json`` in the current folder or the nearest parent that has one."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / LOCAL_SETTINGS
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=1)
def settings() -> Settings:
    values: dict[str, str] = {}
    path = find_local_settings()
    if path is not None:
        values.update({k: str(v) for k, v in json.loads(path.read_text()).get("Values", {}).items()})
    values.update(os.environ)
    return Settings(values)
