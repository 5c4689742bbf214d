"""Structured logs: one JSON object a line on stderr, for the host's own events and every invocation.

Each invocation ends with one record naming the function, invocation id, trigger, dequeue count,
outcome (Succeeded, Failed, Poisoned, TimedOut), duration and instance, so `grep`/`jq` answer "what
happened to message X" without a debugger. Function code's own ``logging`` output is included, tagged
with the invocation it came from.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

current_invocation: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("invocation", default=None)
INSTANCE: dict[str, str] = {"id": "local-0"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "instance": INSTANCE["id"],
            "message": record.getMessage(),
        }
        invocation = current_invocation.get()
        if invocation:
            entry.setdefault("function", invocation.get("function"))
            entry.setdefault("invocation_id", invocation.get("invocation_id"))
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("azure.core.pipeline.policies.http_logging_policy", "azure.identity", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


log = logging.getLogger("funchost")


def event(message: str, **fields: Any) -> None:
    log.info(message, extra={"fields": fields})


def invocation(outcome: str, **fields: Any) -> None:
    level = logging.INFO if outcome == "Succeeded" else logging.WARNING
    log.log(
        level,
        f"Executed '{fields.get('function')}' ({outcome})",
        extra={"fields": {"outcome": outcome, **fields}},
    )
