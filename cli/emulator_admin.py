"""A small client of the local emulator's admin API, for `consortium load` and `consortium fault`."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from cli.main import CommandError, UsageError
from shared.settings import Settings


def call(settings: Settings, method: str, path: str, body: Any = None) -> Any:
    if settings.text("AZURE_CREDENTIAL").lower() != "emulator":
        raise UsageError("load and faults are simulated only by the local emulator (AZURE_CREDENTIAL=emulator)")
    base = settings.text("AZURE_ARM_ENDPOINT").rstrip("/")
    if urllib.parse.urlsplit(base).scheme != "https":  # urlopen would also read file: and ftp: URLs
        raise UsageError(f"AZURE_ARM_ENDPOINT must be the emulator's https:// URL, not {base!r}")
    bundle = settings.text("AZURE_CA_BUNDLE")
    try:
        context = ssl.create_default_context(cafile=bundle) if bundle else ssl.create_default_context()
    except (FileNotFoundError, ssl.SSLError):
        raise CommandError(f"the emulator's CA {bundle} is missing: is the local stack running (`make up`)?") from None
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(f"{base}{path}", data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310 - https only  # nosec B310
            raw = response.read()
    except urllib.error.HTTPError as e:
        detail = json.loads(e.read() or b"{}").get("error", {}).get("message", e.reason)
        raise UsageError(f"the emulator refused: {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        raise CommandError(
            f"the emulator at {base} is not reachable ({e}): is the local stack running (`make up`)?"
        ) from None
    return json.loads(raw) if raw else None
