"""host.json and local.settings.json as the Functions host reads them, with the host's defaults.

Defaults and rules are the Storage queues extension's (``QueuesOptions``) and the WebJobs SDK's
(``SingletonOptions``), as recorded in the project's platform facts:
batchSize 16 (1..32), newBatchThreshold (batchSize/2) x processors, maxPollingInterval 1 min (2 s in
Development when left at default, and at least 100 ms), visibilityTimeout 0, maxDequeueCount 5,
messageEncoding base64; listener locks 60 s with a 1-minute recovery poll; functionTimeout 5 min.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any


class HostConfigError(ValueError):
    """host.json or local.settings.json is malformed; the message names the key and the rule."""


_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$")


def parse_timespan(value: str, key: str) -> timedelta:
    """A .NET TimeSpan string (``hh:mm:ss``, ``d.hh:mm:ss``, optional fraction)."""
    match = _TIMESPAN.match(value.strip())
    if not match:
        raise HostConfigError(f"host.json {key}={value!r} must be a TimeSpan like 00:01:00")
    days, hours, minutes, seconds, fraction = match.groups()
    total = timedelta(days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=int(seconds))
    if fraction:
        total += timedelta(seconds=float("0." + fraction))
    return total


@dataclass(frozen=True)
class QueueOptions:
    batch_size: int
    new_batch_threshold: int
    max_polling_interval: timedelta
    visibility_timeout: timedelta
    max_dequeue_count: int
    message_encoding: str  # "base64" | "none"


@dataclass(frozen=True)
class SingletonOptions:
    listener_lock_period: timedelta
    listener_lock_recovery_polling_interval: timedelta


@dataclass(frozen=True)
class HostConfig:
    host_id: str | None
    function_timeout: timedelta
    queues: QueueOptions
    singleton: SingletonOptions
    raw: dict[str, Any]


def load_host_json(path: Path, *, processor_count: int | None = None, development: bool = True) -> HostConfig:
    raw: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"version": "2.0"}
    if raw.get("version") != "2.0":
        raise HostConfigError(f'{path.name}: version must be "2.0"')
    queues: dict[str, Any] = raw.get("extensions", {}).get("queues", {})
    processors = processor_count or (1 if os.environ.get("WEBSITE_SKU") == "Dynamic" else os.cpu_count() or 1)

    batch_size = int(queues.get("batchSize", 16))
    if not 1 <= batch_size <= 32:
        raise HostConfigError(f"host.json extensions.queues.batchSize={batch_size} must be within 1..32")
    threshold = int(queues.get("newBatchThreshold", (batch_size // 2) * processors))
    if threshold < 0:
        raise HostConfigError("host.json extensions.queues.newBatchThreshold must not be negative")
    default_max_poll = timedelta(minutes=1)
    if "maxPollingInterval" in queues:
        max_poll = parse_timespan(str(queues["maxPollingInterval"]), "extensions.queues.maxPollingInterval")
    else:
        max_poll = timedelta(seconds=2) if development else default_max_poll
    if max_poll < timedelta(milliseconds=100):
        raise HostConfigError("host.json extensions.queues.maxPollingInterval must be at least 00:00:00.1")
    visibility = parse_timespan(str(queues.get("visibilityTimeout", "00:00:00")), "extensions.queues.visibilityTimeout")
    max_dequeue = int(queues.get("maxDequeueCount", 5))
    if max_dequeue < 1:
        raise HostConfigError("host.json extensions.queues.maxDequeueCount must be at least 1")
    encoding = str(queues.get("messageEncoding", "base64")).lower()
    if encoding not in ("base64", "none"):
        raise HostConfigError("host.json extensions.queues.messageEncoding must be base64 or none")

    singleton: dict[str, Any] = raw.get("singleton", {})
    listener_period = parse_timespan(
        str(singleton.get("listenerLockPeriod", "00:01:00")), "singleton.listenerLockPeriod"
    )
    if not timedelta(seconds=15) <= listener_period <= timedelta(seconds=60):
        raise HostConfigError("host.json singleton.listenerLockPeriod must be within 00:00:15..00:01:00")
    recovery = parse_timespan(
        str(singleton.get("listenerLockRecoveryPollingInterval", "00:01:00")),
        "singleton.listenerLockRecoveryPollingInterval",
    )
    timeout_text = raw.get("functionTimeout")
    function_timeout = parse_timespan(str(timeout_text), "functionTimeout") if timeout_text else timedelta(minutes=5)
    host_id = raw.get("id")
    return HostConfig(
        host_id=str(host_id) if host_id else None,
        function_timeout=function_timeout,
        queues=QueueOptions(batch_size, threshold, max_poll, visibility, max_dequeue, encoding),
        singleton=SingletonOptions(listener_period, recovery),
        raw=raw,
    )


def load_local_settings(path: Path) -> dict[str, str]:
    """The ``Values`` of local.settings.json as strings (the host puts them in the environment)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise HostConfigError(f"{path.name} is not valid JSON: {e}") from None
    values = data.get("Values", {})
    if not isinstance(values, dict):
        raise HostConfigError(f"{path.name}: Values must be an object")
    return {str(k): "" if v is None else str(v) for k, v in values.items()}


def host_id_for(config: HostConfig, env: dict[str, str], app_dir: Path) -> str:
    """The host id: host.json ``id``, else ``AzureFunctionsWebHost__hostid``, else from the folder name.

    Lower-case, at most 32 characters, as the host derives it; two apps sharing one storage account
    must have different host ids or only one app's timers run.
    """
    explicit = config.host_id or env.get("AzureFunctionsWebHost__hostid")
    base = explicit or app_dir.resolve().name
    cleaned = re.sub(r"[^a-z0-9-]", "-", base.lower()).strip("-") or "funchost"
    return cleaned[:32].rstrip("-")
