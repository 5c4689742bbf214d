"""Records a document another member published that does not verify, once per source and content."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from shared.messages import Rejection
from shared.reasons import Reason
from shared.services.consortium.memory import Follow
from shared.services.consortium.paths import PEER_REJECTIONS
from shared.services.records import Rejections

log = logging.getLogger(__name__)


@dataclass
class Refusals:
    rejections: Rejections
    memory: Follow

    def refuse(self, source: str, data: bytes, error: Exception, member_id: str | None) -> None:
        """Record ``data`` read as ``source`` (from ``member_id``, when known) as refused for ``error``:
        its rule (a chain rule) or reason (a read refused by the storage), else ``head``."""
        marker = hashlib.sha256(source.encode() + data).hexdigest()
        if marker in self.memory.refused:
            return
        self.memory.refused.add(marker)
        log.warning("refused %s: %s", source, error)
        text = str(error)
        message = text if text.startswith(source) else f"{source}: {text}"
        reason = getattr(error, "rule", None) or getattr(error, "reason", None) or Reason.HEAD
        rejection = Rejection(reason=str(reason), message=message, member_id=member_id)
        self.rejections.record(PEER_REJECTIONS, data, rejection)
