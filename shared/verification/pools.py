"""This process's pools for signature checks: threads, and worker processes for long reads.

ES256 checks run in OpenSSL without the GIL, so threads spread one version's many signatures over the
cores; a long read keeps this thread busy (and the GIL held) between two OpenSSL calls, so its
batches go to worker processes instead. A worker is spawned (this process may have threads) and
imports ``shared.decisions.es256`` alone, which needs ``cryptography`` only: it starts checking in
tens of milliseconds instead of after loading the models and the canonical form.

One pool of each per process: a pool inherited through fork has no threads or workers behind it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from shared.decisions import chain

#: Signatures of one version checked on more than one core from this many on (OpenSSL's verify runs
#: without the GIL; below it, handing them to threads costs more than it saves).
PARALLEL_FROM = 8
_pool: tuple[int, ThreadPoolExecutor] | None = None
_processes: tuple[int, ProcessPoolExecutor] | None = None


def executor() -> ThreadPoolExecutor:
    """This process's threads for signature checks, one per core."""
    global _pool
    if _pool is None or _pool[0] != os.getpid():
        _pool = (os.getpid(), ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="es256"))
    return _pool[1]


def process_executor() -> ProcessPoolExecutor | None:
    """Worker processes for signature checks (spawned), one fewer than the cores; None on a machine
    with one core."""
    global _processes
    workers = (os.cpu_count() or 1) - 1
    if workers < 1:
        return None
    if _processes is None or _processes[0] != os.getpid():
        context = multiprocessing.get_context("spawn")
        _processes = (os.getpid(), ProcessPoolExecutor(max_workers=workers, mp_context=context))
    return _processes[1]


def shutdown() -> None:
    """Stop this process's pools (the next check starts new ones)."""
    global _pool, _processes
    for pool in (_pool, _processes):
        if pool is not None and pool[0] == os.getpid():
            pool[1].shutdown(wait=True)
    _pool = _processes = None


def check_on_cores(checks: Sequence[tuple[chain.PublicJwk, str]], digest: bytes) -> list[bool]:
    """``chain.check_each``'s verdicts, in order, spread over the machine's cores when there are enough
    checks to be worth it (a ``chain.Check``)."""
    workers = os.cpu_count() or 1
    if workers < 2 or len(checks) < PARALLEL_FROM:
        return chain.check_each(checks, digest)
    size = -(-len(checks) // workers)
    chunks = [checks[i : i + size] for i in range(0, len(checks), size)]
    results = executor().map(lambda chunk: chain.check_each(chunk, digest), chunks)
    return [verdict for chunk in results for verdict in chunk]
