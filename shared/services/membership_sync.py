"""Membership sync: what a version the consortium adopted about this member means for its own deployment.

The consortium service announces, on its ``Bus``, each version it adopts (``VersionAdopted``) and, after
each tick, the chain it follows (``ChainFollowed``); it knows nothing of who listens. This service
listens (``shared/bootstrap.py`` subscribes it): a version that admits this member posts its
``activate`` step, one that takes it out records why and posts ``retire`` (``decide_membership``).

Those steps can be lost: the consortium timer hands them to its output binding, which the host sends
only when the invocation returns, and a timer is never redelivered. So after each adoption, and on a
new process's first tick, the record is checked against the chain (``membership_due``) and a change it
does not show is handed on again, with a growing wait between postings (``RECHECK_SECONDS``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from shared.decisions import chain
from shared.decisions.onboarding import (
    Change,
    Membership,
    Status,
    change_about,
    decide_membership,
    membership_due,
)
from shared.errors import ConflictError, TransientError
from shared.ports.clock import Clock
from shared.services.consortium.events import ChainFollowed, VersionAdopted
from shared.services.member_record import MemberRecord

#: How long a membership change handed on gets before ``reconcile`` reads whether its step is done
#: (then twice as long after each posting again, at most ``RECHECK_MAX_SECONDS``).
RECHECK_SECONDS = 30.0
RECHECK_MAX_SECONDS = 3600.0

log = logging.getLogger(__name__)


@dataclass
class MembershipSync:
    member_id: str
    records: MemberRecord
    clock: Clock
    #: The head version whose effects on this member's own record ``reconcile`` last found carried out
    #: (process memory: a new process checks once).
    settled: int | None = None
    #: The membership change last handed on (by ``on_membership`` or ``reconcile``), when to look
    #: whether its step is done, and how many times ``reconcile`` posted it again.
    recheck: tuple[Change, float, int] | None = None

    def version_adopted(self, event: VersionAdopted) -> None:
        change = change_about(self.member_id, event.version)
        if change is not None:
            self.on_membership(change, event.version)

    def chain_followed(self, event: ChainFollowed) -> None:
        """Check, once per head version (and until it holds), that this member's own record shows what
        the chain says about it; a change whose step was lost is handed on again (``reconcile``)."""
        if not event.versions or self.settled == event.versions[-1].version:
            return
        try:
            if self.reconcile(event.versions) is None:
                self.settled = event.versions[-1].version
        except (TransientError, ConflictError) as error:  # the next tick tries again
            log.info("membership not reconciled yet: %s", error)

    def on_membership(self, change: Change, version: chain.Trusted) -> None:
        """The consortium adopted a version about this member: post what it means here."""
        decision = decide_membership(change, version.version)
        record = self.records.read()
        if decision.action is Membership.NOTHING or record is None:
            return
        self.recheck = (change, self.clock.now().timestamp() + RECHECK_SECONDS, 0)
        if decision.action is Membership.ACTIVATE:
            self.records.send_step("activate", record)
            return
        status = decision.status or Status.LEFT
        retiring = {"status": status.value, "version": version.version, "why": decision.message}
        record = self.records.update(lambda r: None if r.get("retiring") == retiring else {**r, "retiring": retiring})
        self.records.send_step("retire", record)

    def reconcile(self, versions: Sequence[chain.Trusted]) -> Change | None:
        """Hand a verified version about this member on again if its own record does not show its
        effect (``membership_due``: an ``activate`` or ``retire`` step lost with a host that died);
        returns the change still waiting, or None when the record agrees with the chain.

        ``chain_followed`` calls it after each adoption and on a new process's first tick. A change
        just handed on is given ``RECHECK_SECONDS`` before the record is read again, and each further
        posting waits twice as long (at most an hour): a step that keeps failing is not hammered."""
        now = self.clock.now().timestamp()
        if self.recheck is not None and now < self.recheck[1]:
            return self.recheck[0]
        if not versions:
            return None
        founders = versions[0].document.member(self.member_id) is not None
        about_me = [(0, chain.Kind.GENESIS)] if founders else []
        about_me += [(t.version, t.document.change.kind) for t in versions[1:]
                     if t.document.change.member_id == self.member_id]  # fmt: skip
        listed = versions[-1].document.member(self.member_id) is not None
        due = membership_due(self.records.read(), listed=listed, about_me=about_me)
        if due is None:
            self.recheck = None
            return None
        change, number = due
        attempts = (self.recheck[2] if self.recheck else 0) + 1
        log.warning(
            "version %d (%s %s) is not carried out in this member's record: handing it on again (attempt %d)",
            number, change, self.member_id, attempts,
        )  # fmt: skip
        self.on_membership(change, next(t for t in versions if t.version == number))
        self.recheck = (change, now + min(RECHECK_SECONDS * 2 ** (attempts - 1), RECHECK_MAX_SECONDS), attempts)
        return change
