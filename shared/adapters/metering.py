"""Counts the SDK requests the app makes, per service, when ``CONSORTIUM_REQUEST_COUNT_FILE`` is set.

A ``raw_request_hook`` on every client the app builds (storage, Key Vault, ARM, metrics) counts each
request sent, retries included; at exit the counts are written as JSON to that file, and beside it
(``<file>.detail.json``) the same requests by method and kind of resource (``storage PUT
leases/members ?comp=lease``), to see where an operation's requests go. The benchmark uses it for
``onboarding_storage_ops``; with the variable unset no hook is installed.
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
from urllib.parse import parse_qs, unquote, urlsplit

ENV = "CONSORTIUM_REQUEST_COUNT_FILE"
COUNTS: Counter[str] = Counter()
DETAIL: Counter[str] = Counter()
_lock = threading.Lock()
_registered: list[bool] = []


def _dump(path: str) -> None:
    with _lock:
        Path(path).write_text(json.dumps(dict(COUNTS)))
        Path(f"{path}.detail.json").write_text(json.dumps(dict(DETAIL.most_common())))


def kind(method: str, url: str) -> str:
    """``PUT state/members ?comp=lease``: the method, the container and first folder, the operation."""
    parts = urlsplit(url)
    segments = [unquote(p) for p in parts.path.split("/") if p]
    if segments and segments[0].startswith("devstoreaccount"):
        segments = segments[1:]  # Azurite puts the account in the path
    where = "/".join(segments[:2]) if len(segments) > 2 else "/".join(segments[:1])
    if len(segments) == 2 and segments[-1].endswith(".json"):
        where = segments[0]
    query = parse_qs(parts.query)
    operation = " ".join(f"?{k}={query[k][0]}" for k in ("comp", "restype") if k in query)
    return " ".join(x for x in (method, where, operation) if x)


def hook(service: str) -> dict[str, Any]:
    """Client keyword arguments that count ``service`` requests, or nothing when metering is off."""
    path = os.environ.get(ENV)
    if not path:
        return {}
    if not _registered:
        _registered.append(True)
        atexit.register(_dump, path)

    def count(request: Any) -> None:
        http = getattr(request, "http_request", request)
        detail = f"{service} {kind(str(getattr(http, 'method', '?')), str(getattr(http, 'url', '')))}"
        with _lock:
            COUNTS[service] += 1
            DETAIL[detail] += 1

    counter: Callable[[Any], None] = count
    return {"raw_request_hook": counter}


def stop() -> None:
    """Forget the counts and the file to write them to (for a process that measured only a part of its life)."""
    with _lock:
        COUNTS.clear()
        DETAIL.clear()
    if _registered:
        atexit.unregister(_dump)
        _registered.clear()
