"""Reading many versions at once: the chain's own checks, with the signatures checked on every core.

A node's agent starting from its stored chain, or a deployment catching up, reads hundreds of
versions at once. ``verify_published`` checks each against the one before with exactly the checks of
``chain.verify_genesis`` / ``chain.verify_next`` (the chain's own functions, in the same order, with
the same errors), but while this thread reads and shape-checks version N+1, the signatures of the
versions before are checked in ``pools``' workers. ``accept_all`` hands what verified to a
``chain.NodeTrust``.

Consecutive versions repeat all but one member entry, so this process keeps each distinct entry's
canonical bytes and its validated ``Member`` (at most ``ENTRIES_KEPT`` of each): memos of pure
functions, keyed by ``repr`` of the parsed entry, which the pure core does not keep.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from shared.decisions import chain, es256
from shared.verification import pools

log = logging.getLogger(__name__)

#: A long read (``verify_published`` of at least this many versions) checks signatures in worker
#: processes: threads would wait for the GIL the reading thread holds between two OpenSSL calls.
PROCESSES_FROM = 64
#: Versions whose signatures go to a worker in one task (one round trip for several).
BATCH = 8
#: Versions whose signatures may wait unchecked at once in ``verify_published`` (bounds how far the
#: reading runs ahead of the checks).
IN_FLIGHT = 256
#: Distinct member entries whose canonical bytes and model this process keeps.
ENTRIES_KEPT = 4096

#: Versions' signature checks as a worker takes them: per version, its (x, y, signature) and digest.
Batch = list[es256.Checks]
#: What a worker runs: ``es256`` alone, so that a spawned worker imports nothing else.
_verify_batch = es256.verify_batch

#: Canonical bytes of member entries seen, by ``repr`` of the parsed entry.
_entries: dict[str, bytes] = {}
#: Validated member entries, by ``repr`` of the parsed entry.
_members: dict[str, chain.Member] = {}


def canonical_entry(value: dict[str, Any]) -> bytes:
    """One member entry's RFC 8785 bytes, computed once per process for each distinct entry.

    The key is ``repr`` of the parsed value: two parsed JSON values (str, int, float, bool, None, list,
    dict) with one ``repr`` are equal, types included (``True`` and ``1``, ``1`` and ``1.0`` differ);
    equal values whose keys came in another order only miss. The bytes are always ``chain.canonical``'s."""
    identity = repr(value)
    found = _entries.get(identity)
    if found is None:
        if len(_entries) >= ENTRIES_KEPT:
            _entries.clear()
        found = _entries[identity] = chain.canonical(value)
    return found


def member(value: dict[str, Any]) -> chain.Member:
    """One member entry validated, once per process for each distinct entry (keyed as ``canonical_entry``)."""
    identity = repr(value)
    found = _members.get(identity)
    if found is None:
        if len(_members) >= ENTRIES_KEPT:
            _members.clear()
        found = _members[identity] = chain.Member.model_validate(value)
    return found


def forget() -> None:
    """Empty this process's memos (the chain's too) and stop its pools: what a new deployment or node
    starts with."""
    pools.shutdown()
    chain.forget()
    _entries.clear()
    _members.clear()


@dataclass
class _Checking:
    """A batch of versions' signature checks handed to a worker, and their verdicts once known."""

    future: Future[list[list[bool]]]
    task: Batch
    verdicts: list[list[bool]] | None = None

    def take_back(self) -> bool:
        """Check the batch in this thread if no worker has started it; whether it did."""
        if self.verdicts is None and self.future.cancel():
            self.verdicts = _verify_batch(self.task)
            return True
        return False

    def done(self) -> bool:
        return self.verdicts is not None or self.future.done()

    def result(self) -> list[list[bool]]:
        if self.verdicts is None:
            try:
                self.verdicts = self.future.result()
            except BrokenProcessPool as error:
                log.warning("signature checks in this thread: a worker process died (%s)", error)
                self.verdicts = _verify_batch(self.task)
        return self.verdicts


def verify_published(
    pinned_hash: str, published: Sequence[bytes], *, after: chain.Trusted | None = None
) -> tuple[list[chain.Trusted], chain.ChainError | None]:
    """Versions as their bytes were read, each against the one before (from the genesis, or after
    ``after``): what ``chain.verify_genesis`` and ``chain.verify_next`` check, with the same errors, but
    while this thread reads and checks version N+1, the signatures of the versions before are checked on
    the other cores (in worker processes for a long read, ``PROCESSES_FROM``; else in threads). When this
    thread has read all it can (or is ``IN_FLIGHT`` ahead), it takes back the newest batches no worker
    has started and checks them itself, so every core checks signatures until the last. Returns the
    versions that verified, in order, and the error of the first that did not (None when all did);
    nothing after a version that failed is returned."""
    processes = pools.process_executor() if len(published) >= PROCESSES_FROM else None
    threads = pools.executor()
    #: read, shape-checked versions whose signatures are being checked, oldest first
    pending: list[tuple[chain.Trusted, chain.Document | None, Any, Any]] = []
    checking: list[_Checking] = []  # one per batch of pending, in order
    batch: Batch = []
    verified: list[chain.Trusted] = []
    shape_error: chain.ChainError | None = None
    tentative = after

    def send() -> None:
        nonlocal processes
        if not batch:
            return
        task = list(batch)
        batch.clear()
        if processes is not None:
            try:
                checking.append(_Checking(processes.submit(_verify_batch, task), task))
                return
            except (BrokenProcessPool, OSError, RuntimeError) as error:  # no worker process: threads it is
                log.warning("signature checks in threads: worker processes unavailable (%s)", error)
                processes = None
        checking.append(_Checking(threads.submit(_verify_batch, task), task))

    def settle() -> chain.ChainError | None:
        """Count the signatures of the oldest batch's versions; until a worker has checked them, this
        thread checks the newest batch no worker has started, one at a time."""
        oldest = checking[0]
        while not oldest.done() and any(later.take_back() for later in reversed(checking[1:])):
            pass
        oldest.take_back()
        for found in checking.pop(0).result():
            candidate, base, signers, listed = pending.pop(0)
            counted = chain.count_signatures(base, candidate.document, signers, listed, found)
            try:
                verified.append(chain.signed_enough(candidate, counted))
            except chain.SignatureError as error:
                return error
        return None

    for raw in published:
        try:
            document, digest = chain.read_published(raw, entry=canonical_entry)
            parsed = chain.parse(document, member=member)
            if tentative is None:
                candidate, base = chain.genesis_candidate(pinned_hash, parsed, document, digest), None
            else:
                candidate, base = chain.next_candidate(tentative, parsed, document, digest), tentative.document
        except chain.ChainError as refused:
            shape_error = refused
            break
        signers, listed, checks = chain.signature_plan(base, candidate.document)
        batch.append(([(jwk.x, jwk.y, sig) for jwk, sig in checks], bytes.fromhex(candidate.hash)))
        pending.append((candidate, base, signers, listed))
        tentative = candidate
        if len(batch) >= BATCH:
            send()
        while checking and (checking[0].done() or len(checking) * BATCH >= IN_FLIGHT):
            if (unsigned := settle()) is not None:
                return verified, unsigned
    send()
    while checking:
        if (unsigned := settle()) is not None:
            return verified, unsigned
    return verified, shape_error


def accept_all(trust: chain.NodeTrust, published: Sequence[bytes]) -> int:
    """Versions N+1, N+2... after ``trust``'s head as their bytes were read, in order
    (``verify_published``: the next one is read while the signatures of the ones before are checked);
    stops at the first refused, which ``trust`` records. Returns how many were accepted."""
    verified, error = verify_published(trust.pinned, published, after=trust.head)
    return trust.extend(verified, error)
