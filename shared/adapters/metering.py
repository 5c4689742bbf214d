"""Counts the SDK requests the app makes, per service, when ``CONSORTIUM_REQUEST_COUNT_FILE`` is set.

A ``raw_request_hook`` on every client the app builds (storage, Key Vault, ARM, metrics) counts each
request sent, retries included; at exit the counts are written as JSON to that file. The benchmark
uses it for ``onboarding_storage_ops``; with the variable unset no hook is installed.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "CONSORTIUM_REQUEST_COUNT_FILE"
COUNTS: Counter[str] = Counter()
_lock = threading.Lock()
_registered: list[bool] = []


def _dump(path: str) -> None:
    with _lock:
        Path(path).write_text(json.dumps(dict(COUNTS)))


def hook(service: str) -> dict[str, Any]:
    """Client keyword arguments that count ``service`` requests, or nothing when metering is off."""
    path = os.environ.get(ENV)
    if not path:
        return {}
    if not _registered:
        _registered.append(True)
        atexit.register(_dump, path)

    def count(request: Any) -> None:
        with _lock:
            COUNTS[service] += 1

    counter: Callable[[Any], None] = count
    return {"raw_request_hook": counter}


def stop() -> None:
    """Forget the counts and the file to write them to (for a process that measured only a part of its life)."""
    with _lock:
        COUNTS.clear()
    if _registered:
        atexit.unregister(_dump)
        _registered.clear()
