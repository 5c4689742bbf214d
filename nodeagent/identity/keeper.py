"""The identity keeper: runs one Corda identity's node on this instance only during a tenure.

A tenure begins when the keeper takes the identity's blob lease (``lease``), in this order, each step
before the next: the ledger's fence moves to the tenure's token (``fence.take``, which ends the sessions of
any earlier tenure), the node's schema migration runs with the token (Corda's ``run-migration-scripts``),
every table is armed (``fence.arm``; a table left unarmed refuses the start), and only then the node
starts, its database sessions carrying the token. The lease is renewed while the ledger is prepared (a
first Corda migration can outlast a lease); a preparation the tenure would not survive is killed. During
the tenure the keeper renews every ``renew_every`` seconds; it stops the node ``stop_budget`` seconds
before the tenure could end (``shared.decisions.identities.next_move``), and gives the lease up when the
node exits by itself or the keeper is told to stop, so a standby takes over without waiting for the lease
to expire. A node that outlives its tenure anyway (its VM frozen past the lease) writes nothing: the
ledger's fence refuses it.

One log line per move that changes something: ``identity bank-a: tenure 7 begins on vmss-a/3 (fenced
token 6 -> 7)``; ``... tenure 7 ends (ending): node stopped 6.0 s before the tenure could end (renewals failing:
...)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nodeagent.identity import fence
from nodeagent.identity.lease import Grant, IdentityLease, LeaseLost, StorageUnavailable
from shared.decisions.identities import Move, Tenure, Why, check_times, next_move

log = logging.getLogger("nodeagent.identity")
#: After a node that could not be started, the identity is left to other instances this long.
START_RETRY_SECONDS = 30


class Node(Protocol):
    """The identity's node process on this instance."""

    def migrate(self, token: int) -> None:
        """Bring the ledger's schema to the node's version, writing with ``token`` (before the start)."""
        ...

    def abort_migration(self) -> None:
        """End a migration under way (the tenure is ending); ``migrate`` then raises."""
        ...

    def start(self, token: int) -> None: ...

    def running(self) -> bool: ...

    def stop(self, grace: float) -> None:
        """Stop the node: asked to stop, then killed after ``grace`` seconds; returns once it is gone."""
        ...


class ProcessNode:
    """A node run as a process group from ``command`` (and its migration from ``migrate_command``), with
    the tenure's token in ``FENCE_TOKEN`` and the libpq/PgJDBC startup options in ``LEDGER_OPTIONS``."""

    def __init__(self, command: Sequence[str], *, migrate_command: Sequence[str] = (), env: Mapping[str, str] = {}):
        self.command, self.migrate_command, self.env = list(command), list(migrate_command), dict(env)
        self.process: subprocess.Popen[bytes] | None = None
        self.migration: subprocess.Popen[bytes] | None = None

    def _env(self, token: int) -> dict[str, str]:
        return {**os.environ, **self.env, "FENCE_TOKEN": str(token), "LEDGER_OPTIONS": fence.startup_options(token)}

    def migrate(self, token: int) -> None:
        if not self.migrate_command:
            return
        self.migration = subprocess.Popen(self.migrate_command, env=self._env(token), start_new_session=True)  # nosec B603 - argv from the config
        code = self.migration.wait()
        if code != 0:
            raise RuntimeError(f"the schema step {self.migrate_command[0]} exited with {code}")

    def abort_migration(self) -> None:
        if self.migration is not None and self.migration.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.migration.pid, signal.SIGKILL)

    def start(self, token: int) -> None:
        self.process = subprocess.Popen(self.command, env=self._env(token), start_new_session=True)  # nosec B603 - argv from the config

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass(frozen=True)
class Times:
    """The keeper's times (seconds). The node is stopped ``stop_budget`` before the tenure could end: room
    for one renewal still under way to give up (two storage calls of at most ``call_timeout`` each: the
    lease's container client is built with ``lease.client_options(call_timeout)``, no retries), the node's
    ``grace`` to stop cleanly, and a margin for the kill and for this process being slow to notice."""

    lease_seconds: int = 30
    renew_every: float = 5.0
    grace: float = 5.0
    margin: float = 3.0
    call_timeout: float = 5.0
    standby_every: float = 2.0
    #: The longest the ledger's preparation (fence, schema step, arming) may take before it is abandoned.
    prepare_timeout: float = 900.0
    poll: float = 0.5

    @property
    def stop_budget(self) -> float:
        return 2 * self.call_timeout + self.grace + self.margin

    def __post_init__(self) -> None:
        check_times(self.lease_seconds, self.renew_every, self.stop_budget)


class Keeper:
    """Keeps one identity's node running on this instance exactly while this instance holds its tenure."""

    def __init__(
        self,
        lease: IdentityLease,
        ledger: Callable[[], Any],
        node: Node,
        times: Times = Times(),
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.lease, self.ledger, self.node, self.times, self.monotonic = lease, ledger, node, times, monotonic
        self.grant: Grant | None = None
        self.tenure: Tenure | None = None
        self.failing: str | None = None  # why the last renewal failed, while renewals fail
        self.unreadable: str | None = None  # why the lease could not be read, while a standby cannot read it
        self.next_try = 0.0  # a standby asks for the lease every ``standby_every`` seconds

    @property
    def identity(self) -> str:
        return self.lease.identity

    def step(self) -> Move:
        """One move (``next_move``) and its effect; the move made."""
        now, tenure, grant = self.monotonic(), self.tenure, self.grant
        decided = next_move(now, tenure, node_running=self.node.running(), stop_budget=self.times.stop_budget)
        if tenure is None or grant is None:
            if now >= self.next_try:
                self.next_try = now + self.times.standby_every
                self._acquire()
        elif decided.move is Move.RENEW:
            self._renew(grant, tenure)
        elif decided.move is Move.STOP:
            failing = f" (renewals failing: {self.failing})" if self.failing and decided.reason is Why.ENDING else ""
            self._end(decided.message + failing, reason=decided.reason)
        elif decided.move is Move.RELEASE:
            self._end(decided.message, reason=decided.reason)
        return decided.move

    def _acquire(self) -> None:
        sent = self.monotonic()
        try:
            grant = self.lease.try_acquire()
        except StorageUnavailable as error:
            if self.unreadable is None:  # once per outage, not once per try
                log.warning("identity %s: lease not read (trying every %g s): %s", self.identity,
                            self.times.standby_every, error)  # fmt: skip
            self.unreadable = str(error)
            return
        if self.unreadable is not None:
            log.info("identity %s: lease readable again", self.identity)
            self.unreadable = None
        if grant is None:
            return  # a standby: another instance runs the identity
        self.grant = grant
        self.tenure = Tenure(grant.token, sent + grant.seconds, sent + self.times.renew_every)
        try:
            before = self._prepare(grant)
        except Exception as error:
            self._end(f"not begun: {error}", logging.ERROR)
            return
        if self.tenure is None:
            return  # the tenure ended while the ledger was being prepared (said by _end)
        try:
            self.node.start(grant.token)
        except OSError as error:  # the node's command is missing or not executable: an operator must act
            self._end(f"the node did not start ({error}); trying again in {START_RETRY_SECONDS} s", logging.ERROR)
            self.next_try = self.monotonic() + START_RETRY_SECONDS
            return
        log.info(
            "identity %s: tenure %d begins on %s (fenced token %d -> %d)",
            self.identity, grant.token, grant.holder, before, grant.token,
        )  # fmt: skip

    def _prepare(self, grant: Grant) -> int:
        """Fence the ledger, run the node's schema step and arm every table, renewing the lease meanwhile (a
        Corda migration may outlast a lease): the token it replaced. The tenure ending first (a renewal
        refused, or too little of it left) aborts the schema step; ``self.tenure`` is then None."""
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                with self.ledger() as conn:
                    outcome["before"] = fence.take(conn, grant.token, grant.holder)
                    self.node.migrate(grant.token)
                    unarmed = fence.arm(conn)
                if unarmed:
                    raise fence.FenceError(f"tables left unfenced: {', '.join(unarmed)}")
            except Exception as error:  # handed to the keeper's thread, which decides
                outcome["error"] = error

        worker = threading.Thread(target=work, name=f"prepare-{self.identity}", daemon=True)
        worker.start()
        deadline = self.monotonic() + self.times.prepare_timeout
        while worker.is_alive():
            worker.join(self.times.poll)
            tenure = self.tenure
            if tenure is None or not worker.is_alive():
                break
            now, why, level = self.monotonic(), "", logging.WARNING
            if now >= deadline:
                why, level = f"the ledger's preparation took over {self.times.prepare_timeout:g} s", logging.ERROR
            elif now >= tenure.valid_until - self.times.stop_budget:
                failing = f" (renewals failing: {self.failing})" if self.failing else ""
                why = f"the ledger was still being prepared when the tenure neared its end{failing}"
            elif now >= tenure.renew_at:
                self._renew(grant, tenure)  # a lost lease ends the tenure (and says so) here
            if why or self.tenure is None:  # the schema step must not go on
                self.node.abort_migration()
                worker.join()
                if why:
                    self._end(why, level)
                return int(outcome.get("before", 0))
        if "error" in outcome:
            raise outcome["error"]
        return int(outcome["before"])

    def _renew(self, grant: Grant, tenure: Tenure) -> None:
        sent = self.monotonic()
        try:
            self.lease.renew(grant)
        except LeaseLost as error:
            self._end(f"lease lost ({error})")
            return
        except StorageUnavailable as error:
            if self.failing is None:  # once per outage; the stop, if it comes to that, says it again
                left = tenure.valid_until - sent
                log.warning("identity %s: renewal failed, retrying every second (tenure valid %.1f s more): %s",
                            self.identity, left, error)  # fmt: skip
            self.failing = str(error)
            self.tenure = Tenure(tenure.token, tenure.valid_until, sent + min(1.0, self.times.renew_every))
            return
        if self.failing is not None:
            log.info("identity %s: lease renewed again (tenure %d)", self.identity, tenure.token)
        self.failing = None
        self.tenure = Tenure(tenure.token, sent + grant.seconds, sent + self.times.renew_every)

    def _end(self, why: str, level: int = logging.WARNING, *, reason: Why | None = None) -> None:
        """Stop the node, give the lease up and say why (with ``next_move``'s reason when it decided)."""
        self.node.stop(self.times.grace)
        grant, token = self.grant, self.tenure.token if self.tenure else 0
        self.grant, self.tenure, self.failing = None, None, None
        if grant is not None:
            self.lease.release(grant)
        decided = f" ({reason.value})" if reason is not None else ""
        log.log(level, "identity %s: tenure %d ends%s: %s", self.identity, token, decided, why)

    def shut_down(self) -> None:
        """Stop the node and give the identity up (the service is stopping: a standby takes over at once)."""
        if self.tenure is not None:
            self._end("the keeper is stopping", logging.INFO)

    def run(self, stop: threading.Event) -> None:
        """Move until ``stop`` is set, then shut down."""
        try:
            while not stop.is_set():
                self.step()
                stop.wait(self.times.poll)
        finally:
            self.shut_down()
