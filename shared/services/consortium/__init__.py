"""One member's part in the consortium: follow the others, agree on the next version, adopt it.

``tick`` is what the member's coordinator runs on a short timer. In order:
1. its own verified chain, from the genesis hash it was given (the versions in its own storage are
   verified again from genesis once per process; later versions one by one);
2. the other members' heads, one conditional request each (an unchanged head costs no download),
   each believed only once ``consortium.verify_head`` has checked it with the key the chain lists;
3. catch-up: versions another member has adopted and this one has not are fetched from it and
   adopted only if ``chain.verify_next`` passes; a different valid document of a version this
   member already holds is a fork: both documents and the members who signed both are recorded,
   ``consortium.fork`` is announced and the member applies no further change;
4. proposals: every proposal it knows (its own and the ones the others publish) is judged by
   ``consortium.eligibility`` over its head; the eligible ones are what it may propose as a leader;
5. agreement: ``agreement.step`` with the records the others published; if a value is chosen it
   signs that document, once: ``signed/{version}.json`` is written create-only in its own storage
   before the signature is published;
6. assembly: once its head and the final signatures the others published make a document that
   ``chain.verify_next`` accepts, it adopts it, publishes it, and announces it;
7. its own head (its proposals, decisions, pre-signatures, record, final signature), signed with its
   governance key, is published when it changed.

Everything it writes is in its own storage account: the private ``consortium`` container (state)
and its ``consortium-public`` container (what the others read). It never writes anywhere else.

``Consortium`` is a thin front over parts with one job each: ``store`` (the verified chain: adopt, pin
the genesis, hand to nodes), ``peers`` (the others' heads: whom to read, with which key, what was
read), ``catch_up`` (versions the others hold, and fork reports), ``proposals`` (proposals and votes,
judged), ``agreeing`` (pre-sign, agree, sign the final document, assemble) and ``publishing`` (its own
head); ``own`` is its state document and ``refusals`` the record of what did not verify. It announces
each version it adopts and, after each tick, the chain it follows on its ``Bus`` (``events``), for
listeners it does not know (the membership sync, the key rotator). What ``status`` shows of it is
``shared.services.status.consortium_view``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from typing import Any

from shared.decisions import agreement, chain
from shared.decisions import consortium as rules
from shared.ports.clock import Clock
from shared.ports.keys import KeyStore
from shared.ports.published import PeerReader, PublicStore
from shared.ports.state import StateStore
from shared.services.bus import Bus
from shared.services.consortium.agreeing import AgreementDriver
from shared.services.consortium.catch_up import CatchUp
from shared.services.consortium.events import ChainFollowed, VersionAdopted
from shared.services.consortium.memory import Follow
from shared.services.consortium.own import OwnState
from shared.services.consortium.paths import (
    HEAD,
    MEMBERSHIP,
    PEER_REJECTIONS,
    PRIVATE_RECORD_FIELDS,
    SELF,
    chain_path,
    signed_path,
)
from shared.services.consortium.peers import PeerHeads
from shared.services.consortium.proposals import Proposals
from shared.services.consortium.publishing import HeadPublisher
from shared.services.consortium.refusals import Refusals
from shared.services.consortium.store import ChainStore, Forked
from shared.services.records import Events, Rejections

__all__ = [
    "HEAD",
    "MEMBERSHIP",
    "PEER_REJECTIONS",
    "PRIVATE_RECORD_FIELDS",
    "SELF",
    "ChainFollowed",
    "Consortium",
    "FastFollow",
    "Follow",
    "Forked",
    "Identity",
    "TickOutcome",
    "VersionAdopted",
    "chain_path",
    "signed_path",
]  # fmt: skip

log = logging.getLogger(__name__)
#: What ``agreement.step`` did in a tick (a name of its own: ``TickOutcome`` has a field ``agreement``).
Agreed = agreement.Reason


@dataclass(frozen=True)
class Identity:
    """Who this deployment is: its member id and where its governance key lives in its own vault."""

    member_id: str
    governance_key: str  # the key's name in this member's vault
    endpoint: str  # the URL of this member's consortium-public container


@dataclass(frozen=True)
class FastFollow:
    """How closely a tick follows while a change is in flight (settings CONSORTIUM_FAST_FOLLOW_*).

    Agreeing on a version takes a few exchanges of heads (a decision, the leader's ballot, the accepts,
    the final signatures); at the timer's pace each costs up to one schedule period (10 s in Azure). So
    one timer invocation goes on ticking every ``interval`` seconds while a change is in flight (an
    open proposal, a ballot or a final signature on the next version) and the conversation moved
    within the last ``quiet`` seconds; when nothing moves (a member down, a stuck vote) it falls back to
    the timer's pace, so a change that cannot progress costs no more than an idle consortium. ``budget``
    bounds one invocation (the next timer occurrence waits for it: invocations never overlap).
    """

    interval: float = 0.25
    quiet: float = 0.0  # 0: off, one tick per timer occurrence
    budget: float = 60.0


@dataclass(frozen=True)
class TickOutcome:
    """What a tick (or ``follow_closely``'s run of ticks) did, for logs, the node-info work and tests."""

    #: A fork is recorded: this member applies no further change.
    fork: bool = False
    #: The head version the tick agreed over (None before the genesis, or on a fork).
    version: int | None = None
    #: A change on the next version is under way (see ``FastFollow``).
    in_flight: bool = False
    #: ``agreement.step``'s reason for what it did (None when there was no head to agree over).
    agreement: Agreed | None = None
    #: The version this tick (or run) adopted, assembled here or caught up from the others.
    adopted: int | None = None
    #: Another member's head changed or a version was adopted.
    moved: bool = False
    #: How many ticks ``follow_closely`` ran.
    ticks: int = 1

    def fields(self) -> dict[str, Any]:
        """The outcome as log fields (what is not known left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


class Consortium:
    """One member's part in the consortium (see the module's docstring); a front over its parts."""

    def __init__(
        self,
        *,
        identity: Identity,
        genesis: str,
        state: StateStore,
        public: PublicStore,
        peers: PeerReader,
        keys: KeyStore,
        clock: Clock,
        events: Events,
        rejections: Rejections,
        lifetime: timedelta = timedelta(days=7),
        timing: agreement.Timing | None = None,
        jitter: Callable[[int], float] = lambda _round: 0.0,
        memory: Follow | None = None,
        fast: FastFollow | None = None,
        bus: Bus | None = None,
    ) -> None:
        self.identity, self.state, self.public = identity, state, public
        self.keys, self.clock, self.events, self.rejections, self.lifetime = keys, clock, events, rejections, lifetime
        self.timing = timing or agreement.Timing()
        self.jitter = jitter
        self.fast = fast or FastFollow()
        self.lock = threading.Lock()
        #: Where it announces each version it adopts and, after each tick, the chain it follows.
        self.bus = bus or Bus()
        memory = memory or Follow()
        me = identity.member_id
        self.own_state = OwnState(state)
        self.refusals = Refusals(rejections, memory)
        self.store = ChainStore(genesis, state, public, events, memory, adopted=self._adopted)
        self.catching_up = CatchUp(self.store, peers, self.refusals, self.own_state, events, clock)
        self.peer_heads = PeerHeads(me, peers, state, memory, self.refusals, self.store, self.catching_up)
        self.proposals = Proposals(me, self.own_state, self.store, events, clock, lifetime, memory)
        self.agreeing = AgreementDriver(
            me, self.own_state, self.store, self.proposals, state, keys, clock, self.timing, jitter
        )
        self.publishing = HeadPublisher(
            me, identity.governance_key, self.own_state, self.store, keys, public, clock, memory
        )
        self._memory = memory

    # Settable like the fields they were, for the tests' worlds (which found a consortium after making
    # its members): each reaches the parts that use it.

    @property
    def genesis(self) -> str:
        """The pinned genesis hash."""
        return self.store.genesis

    @genesis.setter
    def genesis(self, genesis: str) -> None:
        self.store.genesis = genesis

    @property
    def peers(self) -> PeerReader:
        return self.peer_heads.peers

    @peers.setter
    def peers(self, peers: PeerReader) -> None:
        self.peer_heads.peers = self.catching_up.peers = peers

    @property
    def memory(self) -> Follow:
        return self._memory

    @memory.setter
    def memory(self, memory: Follow) -> None:
        """What a new process starts with: every part forgets what it remembered."""
        self._memory = memory
        for part in (self.refusals, self.store, self.peer_heads, self.proposals, self.publishing):
            part.memory = memory

    def _adopted(self, trusted: chain.Trusted) -> None:
        self.bus.publish(VersionAdopted(trusted))

    # --- what the others call -------------------------------------------------------------------

    @property
    def me(self) -> str:
        return self.identity.member_id

    def own(self) -> dict[str, Any]:
        """This member's consortium state (read once per tick); never mutate it."""
        return self.own_state.read()

    def verified(self) -> list[chain.Trusted]:
        return self.store.verified()

    def head(self) -> chain.Trusted | None:
        return self.store.head()

    def pin_genesis(self, raw: Mapping[str, Any]) -> chain.Trusted:
        return self.store.pin_genesis(raw)

    def endpoints(self, head: chain.Trusted | None) -> dict[str, str]:
        return self.peer_heads.endpoints(head)

    def read_heads(self, head: chain.Trusted | None) -> dict[str, rules.Head]:
        return self.peer_heads.read(head)

    def stored_heads(self) -> dict[str, rules.Head]:
        return self.peer_heads.stored()

    def catch_up(self, heads: Mapping[str, rules.Head]) -> None:
        self.catching_up.catch_up(heads, self.peer_heads.endpoints(self.head()))

    def report_fork(self, ours: chain.Trusted, theirs: chain.Trusted, *, seen_at: str) -> None:
        self.catching_up.report_fork(ours, theirs, seen_at=seen_at)

    def known_proposals(self, heads: Mapping[str, rules.Head] | None = None) -> dict[str, rules.Proposal]:
        return self.proposals.known(heads)

    def decisions(self, proposal_id: str, heads: Mapping[str, rules.Head]) -> dict[str, str]:
        return self.proposals.decisions(proposal_id, heads)

    def judge(self, heads: Mapping[str, rules.Head]) -> dict[str, rules.Eligibility]:
        return self.proposals.judge(heads)

    def propose(self, proposal: rules.Proposal) -> rules.Proposal:
        return self.proposals.propose(proposal)

    def decide(self, proposal_id: str, decision: str) -> str:
        return self.proposals.decide(proposal_id, decision)

    def signing_key(self) -> str:
        return self.publishing.signing_key()

    def publish(self) -> dict[str, Any] | None:
        """``publish_head`` under the service's lock: what a step that changed this member's own
        statements (a decision, a proposal) calls on the coordinator, so they need not wait for a tick."""
        with self.lock:
            return self.publish_head()

    def publish_head(self) -> dict[str, Any] | None:
        return self.publishing.publish()

    def follow(self) -> chain.Trusted | None:
        """Read the others and adopt what verifies, without agreeing or publishing: the head after it."""
        with self.lock:
            try:
                self.catch_up(self.read_heads(self.head()))
            except Forked as error:
                log.error("fork: %s", error)
        return self.head()

    # --- the tick -----------------------------------------------------------------------------

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One tick reads its own state document and lists its stored chain once; writes through the
        parts keep both current."""
        self.own_state.begin()
        self.store.listed = False
        try:
            yield
        finally:
            self.own_state.end()
            self.store.listed = None

    def tick(self) -> TickOutcome:
        """One round of following, agreeing and publishing; what it did (``TickOutcome``)."""
        with self.lock, self._snapshot():
            return self._tick()

    def _tick(self) -> TickOutcome:
        """The body of ``tick``, under its lock and with its snapshot."""
        if self.own().get("fork"):
            self.publish_head()
            return TickOutcome(fork=True)
        seen = {m: h.seq for m, h in self.memory.heads.items()}
        before = self.head()
        heads = self.read_heads(before)
        moved = {m: h.seq for m, h in heads.items()} != seen
        try:
            self.catch_up(heads)
        except Forked as error:
            log.error("fork: %s", error)
            return TickOutcome(fork=True)
        if self.own().get("fork"):
            self.publish_head()
            return TickOutcome(fork=True)
        base = self.head()
        agreed: Agreed | None = None
        in_flight = False
        if base is not None:
            judged = self.judge(heads)
            self.agreeing.presign(base)
            agreed = self.agreeing.agree(base, heads, judged)
            assembled = self.agreeing.assemble(base, heads, judged)
            in_flight = assembled is not None or self._in_flight(self.head() or base, heads, judged)
        after = self.head()
        adopted = after.version if after is not None and (before is None or after.version > before.version) else None
        self.publish_head()
        self.bus.publish(ChainFollowed(tuple(self.verified())))
        if base is not None:
            in_flight = in_flight or self._says_in_flight(self.head() or base)
        # what we publish ourselves does not count: a lone leader retrying its ballot is not a conversation
        moved = moved or adopted is not None
        if moved:
            self.memory.moved_at = self.clock.now().timestamp()
        return TickOutcome(
            version=base.version if base else None, in_flight=in_flight, agreement=agreed, adopted=adopted, moved=moved
        )

    def _in_flight(
        self, base: chain.Trusted, heads: Mapping[str, rules.Head], judged: Mapping[str, rules.Eligibility]
    ) -> bool:
        """Whether a change on the version after ``base`` is under way by what the others say
        (``rules.in_flight``); following closely also needs the conversation to be moving."""
        says = [rules.Says(h.record, h.final) for h in heads.values()]
        return rules.in_flight(base.version + 1, base.hash, says, [e.standing for e in judged.values()]).in_flight

    def _says_in_flight(self, base: chain.Trusted) -> bool:
        """Whether this member's own head (as last built) has a ballot or a final signature on the
        version after ``base``: read from memory, so an idle tick costs no extra request."""
        return rules.in_flight(base.version + 1, base.hash, [self.memory.says]).in_flight

    def follow_closely(self, active: Callable[[], bool], *, sleep: Callable[[float], None] = time.sleep) -> TickOutcome:
        """What the timer runs: a tick, then more ticks ``fast.interval`` apart while a change is in
        flight and the conversation moved within ``fast.quiet`` seconds, for at most ``fast.budget``
        seconds, and only while ``active()`` (this deployment still coordinates). Returns the last tick's
        outcome with ``ticks`` (how many ran) and the last version adopted in any of them."""
        started = self.clock.now().timestamp()
        outcome = self.tick()
        adopted, ticks = outcome.adopted, 1
        while self.fast.quiet > 0 and outcome.in_flight and not outcome.fork:
            now = self.clock.now().timestamp()
            # a clock that jumps back ends it too: the spans below must be real ones
            if not (0 <= now - self.memory.moved_at < self.fast.quiet) or not (
                0 <= now - started <= self.fast.budget - self.fast.interval
            ):
                break
            if not active():  # before the wait too: an outcome to hand on goes at once
                break
            sleep(self.fast.interval)
            if not active():
                break
            outcome = self.tick()
            adopted, ticks = outcome.adopted if outcome.adopted is not None else adopted, ticks + 1
        return replace(outcome, adopted=adopted, ticks=ticks)
