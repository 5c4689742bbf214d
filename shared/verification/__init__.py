"""Verification at scale, outside the pure core: the chain's own checks run on every core.

``shared.decisions.chain`` decides whether a version is valid and does no I/O, owns no pools and
keeps no caches keyed by documents. Checking hundreds of versions at once (a node's agent at start,
a deployment catching up, the chain bench) needs worker processes, threads and memos of the member
entries that repeat from version to version: they live here, around the same checks.

- ``pools``: this process's threads and worker processes, and ``check_on_cores`` (a ``chain.Check``);
- ``published``: ``verify_published`` and ``accept_all`` (many versions read at once), and ``forget``.
"""

from __future__ import annotations

from shared.verification.pools import PARALLEL_FROM, check_on_cores
from shared.verification.published import BATCH, IN_FLIGHT, PROCESSES_FROM, accept_all, forget, verify_published

__all__ = [
    "BATCH",
    "IN_FLIGHT",
    "PARALLEL_FROM",
    "PROCESSES_FROM",
    "accept_all",
    "check_on_cores",
    "forget",
    "verify_published",
]
