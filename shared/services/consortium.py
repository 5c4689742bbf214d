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
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from shared.decisions import agreement, chain
from shared.decisions import consortium as rules
from shared.decisions.onboarding import CHANGE_OF_KIND, Change
from shared.errors import ConflictError, PermanentError, TransientError
from shared.messages import Rejection
from shared.ports.clock import Clock
from shared.ports.keys import KeyStore
from shared.ports.published import PeerReader, PublicStore
from shared.ports.state import StateStore
from shared.reasons import Reason
from shared.services.records import Events, Rejections, iso, iso_time

log = logging.getLogger(__name__)
#: What this member keeps of its agreement record and never publishes: its stall clock, whether it
#: has had anything to agree on, and the hash it signed (``agreement.Record``).
PRIVATE_RECORD_FIELDS = ("moved_at", "signed", "engaged")

SELF = "consortium/self.json"
HEAD = "head.json"
MEMBERSHIP = "membership.json"
PEER_REJECTIONS = "peer-documents"


def chain_path(version: int) -> str:
    return f"chain/{version:08d}.json"


def signed_path(version: int) -> str:
    return f"signed/{version:08d}.json"


@dataclass(frozen=True)
class Identity:
    """Who this deployment is: its member id and where its governance key lives in its own vault."""

    member_id: str
    governance_key: str  # the key's name in this member's vault
    endpoint: str  # the URL of this member's consortium-public container


@dataclass
class Follow:
    """What the service remembers between ticks in process memory (never needed for correctness)."""

    trusted: list[chain.Trusted] = field(default_factory=list)
    peer_etags: dict[str, str] = field(default_factory=dict)
    heads: dict[str, rules.Head] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    #: When (the service clock's timestamp) a tick last saw the conversation move: another member's head
    #: changed or a version was adopted. Fast following lasts only while that is recent.
    moved_at: float = float("-inf")
    #: What this member's head says now (its record and final signature), as ``publish_head`` last built it.
    says: rules.Says = field(default_factory=rules.Says)
    #: The head version whose effects on this member's own record ``reconcile`` last found carried out.
    settled: int | None = None


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


@dataclass
class Snapshot:
    """What one tick reads once: its own state document and the listing of its stored chain. Writes
    through ``_update_own`` and ``_adopt`` keep it current, so the tick never reads its own writes
    stale; another instance's writes are seen by the next tick."""

    own: dict[str, Any] | None = None
    chain_listed: bool = False


class Forked(PermanentError):
    def __init__(self, message: str) -> None:
        super().__init__(message, reason=Reason.FORK)


@dataclass
class Consortium:
    identity: Identity
    genesis: str  # the pinned genesis hash
    state: StateStore
    public: PublicStore
    peers: PeerReader
    keys: KeyStore
    clock: Clock
    events: Events
    rejections: Rejections
    lifetime: timedelta = timedelta(days=7)
    timing: agreement.Timing = field(default_factory=agreement.Timing)
    jitter: Callable[[int], float] = lambda _round: 0.0
    #: Called with the member's own status change ("admitted", "left", "removed") once adopted.
    on_membership: Callable[[Change, chain.Trusted], None] = lambda _what, _version: None
    #: Called with the verified versions after an adoption (and on a process's first tick) until it
    #: returns None: hands on again a change about this member whose step was lost (``Onboarding.reconcile``).
    reconcile: Callable[[list[chain.Trusted]], Change | None] = lambda _versions: None
    memory: Follow = field(default_factory=Follow)
    fast: FastFollow = field(default_factory=FastFollow)
    lock: threading.Lock = field(default_factory=threading.Lock)
    snapshot: Snapshot | None = field(default=None, repr=False)

    # --- own state ---------------------------------------------------------------------------

    @property
    def me(self) -> str:
        return self.identity.member_id

    def own(self) -> dict[str, Any]:
        """This member's consortium state (read once per tick: see ``Snapshot``); never mutate it."""
        snapshot = self.snapshot
        if snapshot is not None and snapshot.own is not None:
            return snapshot.own
        doc = self.state.read(SELF)
        body = doc.body if doc else {}
        if snapshot is not None:
            snapshot.own = body
        return body

    def _update_own(self, change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
        for _ in range(10):
            doc = self.state.read(SELF)
            body = change(json.loads(json.dumps(doc.body)) if doc else {})
            if body is None:
                return doc.body if doc else {}
            try:
                if doc is None:
                    self.state.create(SELF, body)
                else:
                    self.state.replace(SELF, body, doc.etag)
                snapshot = self.snapshot  # once: a tick on another thread may end it meanwhile
                if snapshot is not None:
                    snapshot.own = body
                return body
            except ConflictError:
                continue
        raise TransientError("consortium state kept changing under this deployment")

    # --- the chain ----------------------------------------------------------------------------

    def verified(self) -> list[chain.Trusted]:
        """This member's verified chain (empty before it has the genesis it was given)."""
        snapshot = self.snapshot
        if snapshot is not None and snapshot.chain_listed and self.memory.trusted:
            return self.memory.trusted  # listed once this tick; _adopt keeps memory current
        paths = self.state.list_paths("chain/")
        if snapshot is not None:
            snapshot.chain_listed = True
        known = self.memory.trusted
        if len(known) == len(paths) and known:
            return known
        trusted: list[chain.Trusted] = list(known[: len(paths)])
        for path in paths[len(trusted) :]:
            doc = self.state.read(path)
            if doc is None:
                break
            if trusted:
                trusted.append(chain.verify_next(trusted[-1], doc.body))
            else:
                trusted.append(chain.verify_genesis(self.genesis, doc.body))
        self.memory.trusted = trusted
        return trusted

    def head(self) -> chain.Trusted | None:
        trusted = self.verified()
        return trusted[-1] if trusted else None

    def _adopt(self, trusted: chain.Trusted) -> None:
        """Store a version that verified against our head, publish it, announce it."""
        try:
            self.state.create(chain_path(trusted.version), dict(trusted.raw))
        except ConflictError:
            stored = self.state.read(chain_path(trusted.version))
            if stored is not None and chain.document_hash(stored.body) != trusted.hash:
                raise Forked(f"version {trusted.version}: another document is already stored") from None
        self.public.put(chain_path(trusted.version), trusted.published())
        self.memory.trusted = [*self.memory.trusted[: trusted.version], trusted]
        self._hand_to_nodes(trusted)
        change = trusted.document.change
        self.events.emit(
            "consortium.version_adopted", change.member_id, ("version", trusted.version, trusted.hash),
            version=trusted.version, hash=trusted.hash, change=change.model_dump(mode="json"),
        )  # fmt: skip
        if change.member_id == self.me and change.kind != chain.Kind.GENESIS:
            self.on_membership(CHANGE_OF_KIND[change.kind], trusted)

    def pin_genesis(self, raw: Mapping[str, Any]) -> chain.Trusted:
        """Store version 0 once it verifies against the pinned hash (the founders' ceremony, or a join)."""
        trusted = chain.verify_genesis(self.genesis, raw)
        try:
            self.state.create(chain_path(0), dict(raw))
        except ConflictError:
            pass
        self.public.put(chain_path(0), trusted.published())
        self.memory.trusted = self.memory.trusted or [trusted]
        self._hand_to_nodes(trusted)
        return trusted

    def _hand_to_nodes(self, trusted: chain.Trusted) -> None:
        """What this member's own nodes read (``membership.json`` beside the chain in its own container):
        the verified head's members. A node's agent verifies the chain itself from the genesis
        (``chain.NodeTrust``) and uses this only as the index of what that chain admits."""
        members = [m.model_dump(mode="json", exclude_none=True) for m in trusted.document.members]
        self.public.put(MEMBERSHIP, chain.canonical({"version": trusted.version, "hash": trusted.hash,
                                                      "genesis": self.genesis, "members": members}))  # fmt: skip

    # --- reading the others -------------------------------------------------------------------

    def _refuse(self, source: str, data: bytes, error: Exception, member_id: str | None = None) -> None:
        """Record a document from another member that does not verify, once per source and content."""
        marker = hashlib.sha256(source.encode() + data).hexdigest()
        if marker in self.memory.refused:
            return
        self.memory.refused.add(marker)
        log.warning("refused %s: %s", source, error)
        text = str(error)
        message = text if text.startswith(source) else f"{source}: {text}"
        who = member_id or (source.rsplit(" ", 1)[-1] if " from " in source or source.startswith("head of") else None)
        reason = getattr(error, "rule", None) or getattr(error, "reason", None) or "head"
        rejection = Rejection(reason=str(reason), message=message, member_id=who)
        self.rejections.record(PEER_REJECTIONS, data, rejection)

    def endpoints(self, head: chain.Trusted | None) -> dict[str, str]:
        """Everyone to read: the chain's members (at their listed endpoints) and the introduced."""
        found = dict(self.peers.introduced())
        if head is not None:
            found.update({m.member_id: m.endpoint for m in head.document.members})
        found.pop(self.me, None)
        return found

    def _keys_for(self, member_id: str, head: chain.Trusted | None, raw: Mapping[str, Any]) -> list[chain.KeyRef]:
        if head is not None and (entry := head.document.member(member_id)) is not None:
            return [entry.governance_key]
        # Not a member (yet): a newcomer signs its head with the key its own admission proposal
        # carries, which the chain will require it to prove again when it is admitted.
        keys = []
        for p in raw.get("proposals") or []:
            if isinstance(p, dict) and p.get("kind") == "admit" and p.get("member_id") == member_id:
                try:
                    keys.append(rules.Proposal.model_validate(p).entry.governance_key)  # type: ignore[union-attr]
                except (ValueError, AttributeError):
                    continue
        return keys

    def read_heads(self, head: chain.Trusted | None) -> dict[str, rules.Head]:
        for member_id, endpoint in self.endpoints(head).items():
            source = f"head of {member_id}"
            try:
                fetched = self.peers.fetch(
                    endpoint, HEAD, etag=self.memory.peer_etags.get(member_id), limit=rules.MAX_HEAD_BYTES
                )
            except TransientError as error:
                log.info("%s unreachable: %s", source, error)
                continue
            except PermanentError as error:
                # nothing was downloaded: the refusal itself is the record (one per source and reason)
                self._refuse(source, f"{source}: {error}".encode(), error)
                continue
            if fetched is None or fetched.data is None:
                continue
            try:
                raw = rules.parse_head(fetched.data)
                keys = self._keys_for(member_id, head, raw)
                if not keys:
                    continue  # neither a member we know nor an applicant: nothing to believe or refuse yet
                try:
                    verified = rules.verify_head(raw, member_id=member_id, keys=keys)
                except rules.HeadError:
                    # A member whose rotate version we have not adopted yet signs with its new key:
                    # adopt the versions it holds (each verified against ours), then check again.
                    if not self._catch_up_from(member_id, endpoint, raw):
                        raise
                    head = self.head()
                    verified = rules.verify_head(raw, member_id=member_id, keys=self._keys_for(member_id, head, raw))
            except (chain.ChainError, rules.HeadError) as error:
                self._refuse(source, fetched.data, error)
                continue
            previous = self.memory.heads.get(member_id)
            if previous is not None and verified.seq < previous.seq:
                continue  # an older head than one already read: never go back
            self.memory.heads[member_id] = verified
            self.memory.peer_etags[member_id] = fetched.etag
            self._store_head(member_id, raw)
        return self.memory.heads

    def _catch_up_from(self, member_id: str, endpoint: str, raw: Mapping[str, Any]) -> bool:
        """Adopt the versions up to the one ``raw`` (an unverified head) names, read from its member and
        each verified against our head; whether any was adopted. The head's claim is only a hint."""
        claimed = (raw.get("chain") or {}).get("version") if isinstance(raw.get("chain"), dict) else None
        adopted = False
        while isinstance(claimed, int) and self.verified() and len(self.verified()) <= claimed:
            document = self._fetch_version(member_id, endpoint, len(self.verified()))
            if document is None:
                break
            try:
                self._adopt(chain.verify_next(self.verified()[-1], document))
            except chain.ChainError as error:
                self._refuse(f"version {len(self.verified())} from {member_id}", chain.canonical(document), error)
                break
            except Forked:
                break  # recorded where the fork is checked; the tick stops there
            adopted = True
        return adopted

    def _store_head(self, member_id: str, raw: Mapping[str, Any]) -> None:
        """Keep the verified head in our own storage, so any instance, the CLI and status see it."""
        path = f"peers/{member_id}.json"
        doc = self.state.read(path)
        try:
            if doc is None:
                self.state.create(path, dict(raw))
            elif int(doc.body.get("seq", -1)) < int(raw.get("seq", 0)):
                self.state.replace(path, dict(raw), doc.etag)
        except ConflictError:
            pass  # another instance stored a head at the same time; the next tick reads again

    def stored_heads(self) -> dict[str, rules.Head]:
        """The others' heads as this member last verified and stored them (checked again on the way in)."""
        heads = dict(self.memory.heads)
        if heads:
            return heads
        head = self.head()
        for doc in self.state.read_all("peers/"):
            member_id = doc.path.rsplit("/", 1)[-1].removesuffix(".json")
            try:
                heads[member_id] = rules.verify_head(
                    doc.body, member_id=member_id, keys=self._keys_for(member_id, head, doc.body)
                )
            except rules.HeadError:
                continue
        return heads

    def _fetch_version(self, member_id: str, endpoint: str, version: int) -> dict[str, Any] | None:
        source = f"version {version} from {member_id}"
        try:
            fetched = self.peers.fetch(endpoint, chain_path(version), limit=chain.MAX_DOCUMENT_BYTES)
        except TransientError as error:
            log.info("%s: %s", source, error)
            return None
        except PermanentError as error:  # too large to read, or refused by the storage: never retried as is
            self._refuse(source, f"{source}: {error}".encode(), error)
            return None
        if fetched is None or fetched.data is None:
            return None
        try:
            return chain.parse_published(fetched.data)
        except chain.ChainError as error:
            self._refuse(source, fetched.data, error)
            return None

    def catch_up(self, heads: Mapping[str, rules.Head]) -> None:
        """Adopt versions the others hold once each verifies; detect a different valid document."""
        endpoints = self.endpoints(self.head())
        trusted = self.verified()
        if not trusted:
            for member_id, endpoint in endpoints.items():
                raw = self._fetch_version(member_id, endpoint, 0)
                if raw is None:
                    continue
                try:
                    self.pin_genesis(raw)
                    break
                except chain.ChainError as error:
                    self._refuse(f"genesis from {member_id}", chain.canonical(raw), error)
            trusted = self.verified()
            if not trusted:
                return
        # ``trusted`` as just listed and verified, plus what ``_adopt`` adds to ``memory.trusted`` below:
        # listing our own chain again for every member would cost a request per member per tick.
        for member_id, peer in sorted(heads.items(), key=lambda kv: -(kv[1].chain.version if kv[1].chain else -1)):
            if peer.chain is None or member_id not in endpoints:
                continue
            ours = self.memory.trusted
            if peer.chain.version < len(ours) and ours[peer.chain.version].hash != peer.chain.hash:
                self._check_fork(member_id, endpoints[member_id], peer.chain.version)
                continue
            while len(self.memory.trusted) <= peer.chain.version:
                raw = self._fetch_version(member_id, endpoints[member_id], len(self.memory.trusted))
                if raw is None:
                    break
                try:
                    self._adopt(chain.verify_next(self.memory.trusted[-1], raw))
                except chain.ChainError as error:
                    self._refuse(f"version {len(self.memory.trusted)} from {member_id}", chain.canonical(raw), error)
                    break

    def _check_fork(self, member_id: str, endpoint: str, version: int) -> None:
        ours = self.verified()
        raw = self._fetch_version(member_id, endpoint, version)
        if raw is None:
            return
        try:
            # version 0 is the genesis this deployment was given, or nothing: never a fork, refused
            theirs = chain.verify_next(ours[version - 1], raw) if version else chain.verify_genesis(self.genesis, raw)
        except chain.ChainError as error:
            self._refuse(f"version {version} from {member_id}", chain.canonical(raw), error)
            return
        if theirs.hash != ours[version].hash:
            self.report_fork(ours[version], theirs, seen_at=member_id)

    def report_fork(self, ours: chain.Trusted, theirs: chain.Trusted, *, seen_at: str) -> None:
        culprits = chain.equivocators(ours, theirs)
        hashes = sorted([ours.hash, theirs.hash])
        fork = {
            "version": ours.version, "hashes": hashes, "signed_both": culprits,
            "seen_at": seen_at, "at": iso(self.clock), "documents": [dict(ours.raw), dict(theirs.raw)],
        }  # fmt: skip

        def record(body: dict[str, Any]) -> dict[str, Any] | None:
            if body.get("fork"):
                return None
            return {**body, "fork": fork}

        self._update_own(record)
        self.events.emit(
            "consortium.fork", culprits[0] if culprits else None, ("fork", ours.version, *hashes),
            version=ours.version, hashes=hashes, signed_both=culprits, seen_at=seen_at,
        )  # fmt: skip

    # --- proposals and decisions --------------------------------------------------------------

    def known_proposals(self, heads: Mapping[str, rules.Head] | None = None) -> dict[str, rules.Proposal]:
        found: dict[str, rules.Proposal] = {}
        for p in self.own().get("proposals", []):
            proposal = rules.Proposal.model_validate(p)
            found[proposal.proposal_id] = proposal
        for head in (heads if heads is not None else self.memory.heads).values():
            for proposal in head.proposals:
                if rules.counts_from(proposal, head.member_id).counts:
                    found.setdefault(proposal.proposal_id, proposal)
        return found

    def decisions(self, proposal_id: str, heads: Mapping[str, rules.Head]) -> dict[str, str]:
        found: dict[str, str] = {m: h.approvals[proposal_id] for m, h in heads.items() if proposal_id in h.approvals}
        mine = self.own().get("approvals", {}).get(proposal_id)
        if mine:
            found[self.me] = mine
        return found

    def judge(self, heads: Mapping[str, rules.Head]) -> dict[str, rules.Eligibility]:
        base = self.head()
        if base is None:
            return {}
        done = {t.document.change.proposal_id for t in self.verified()}
        judged = {}
        own, published = self._own_presigned_all(), {m: h.presigned for m, h in heads.items()}
        for proposal_id, proposal in self.known_proposals(heads).items():
            presigned = rules.presignature(proposal, me=self.me, own=own, published=published).presigned
            judged[proposal_id] = rules.eligibility(
                proposal, base, decisions=self.decisions(proposal_id, heads), presigned=presigned,
                done=proposal_id in done, now=self.clock.now(), lifetime=self.lifetime,
            )  # fmt: skip
        return judged

    def _own_presigned_all(self) -> list[rules.Presigned]:
        return [rules.Presigned.model_validate(p) for p in self.own().get("presigned", [])]

    def _own_presigned(self, proposal_id: str) -> rules.Presigned | None:
        for p in self.own().get("presigned", []):
            if p.get("proposal_id") == proposal_id:
                return rules.Presigned.model_validate(p)
        return None

    def propose(self, proposal: rules.Proposal) -> rules.Proposal:
        """Publish a proposal of this member (idempotent by proposal id)."""

        def add(body: dict[str, Any]) -> dict[str, Any] | None:
            proposals = body.get("proposals", [])
            if any(p["proposal_id"] == proposal.proposal_id for p in proposals):
                return None
            approvals = dict(body.get("approvals", {}))
            if proposal.kind == chain.Kind.REMOVE:
                approvals[proposal.proposal_id] = rules.Vote.APPROVE  # proposing a removal is approving it
            return {**body, "proposals": [*proposals, proposal.model_dump(mode="json")], "approvals": approvals}

        self._update_own(add)
        self.events.emit("proposal.received", proposal.member_id, ("proposal", proposal.proposal_id),
                         proposal_id=proposal.proposal_id, kind=proposal.kind.value, proposer=self.me)  # fmt: skip
        return proposal

    def decide(self, proposal_id: str, decision: str) -> str:
        """This member's operator's decision; the same decision twice changes nothing."""

        def record(body: dict[str, Any]) -> dict[str, Any] | None:
            approvals = dict(body.get("approvals", {}))
            if approvals.get(proposal_id) == decision:
                return None
            if proposal_id in approvals:
                raise PermanentError(
                    f"{proposal_id}: this member already decided {approvals[proposal_id]}", reason=Reason.DECIDED
                )
            approvals[proposal_id] = decision
            return {**body, "approvals": approvals}

        self._update_own(record)
        return str(decision)

    def follow(self) -> chain.Trusted | None:
        """Read the others and adopt what verifies, without agreeing or publishing: the head after it."""
        with self.lock:
            try:
                self.catch_up(self.read_heads(self.head()))
            except Forked as error:
                log.error("fork: %s", error)
        return self.head()

    # --- the tick -----------------------------------------------------------------------------

    def tick(self) -> dict[str, Any]:
        """One round of following, agreeing and publishing; returns what it did, for logs and tests:
        ``adopted`` (the version this tick adopted, if any), ``moved`` (another member's head changed or
        a version was adopted) and ``in_flight`` (a change on the next version is under way: see
        ``FastFollow``)."""
        with self.lock:
            self.snapshot = Snapshot()
            try:
                return self._tick()
            finally:
                self.snapshot = None

    def _tick(self) -> dict[str, Any]:
        """The body of ``tick``, under its lock and with its ``Snapshot``."""
        if self.own().get("fork"):
            self.publish_head()
            return {"fork": True}
        seen = {m: h.seq for m, h in self.memory.heads.items()}
        before = self.head()
        heads = self.read_heads(before)
        moved = {m: h.seq for m, h in heads.items()} != seen
        try:
            self.catch_up(heads)
        except Forked as error:
            log.error("fork: %s", error)
            return {"fork": True}
        if self.own().get("fork"):
            self.publish_head()
            return {"fork": True}
        base = self.head()
        outcome: dict[str, Any] = {"version": base.version if base else None, "in_flight": False}
        if base is not None:
            judged = self.judge(heads)
            self._presign(base)
            outcome["agreement"] = self._agree(base, heads, judged)
            assembled = self._assemble(base, heads, judged)
            outcome["in_flight"] = assembled is not None or self._in_flight(self.head() or base, heads, judged)
        after = self.head()
        if after is not None and (before is None or after.version > before.version):
            outcome["adopted"] = after.version  # assembled here or caught up from the others
        self.publish_head()
        self._reconcile()
        if base is not None:
            outcome["in_flight"] = outcome["in_flight"] or self._says_in_flight(self.head() or base)
        # what we publish ourselves does not count: a lone leader retrying its ballot is not a conversation
        outcome["moved"] = moved or "adopted" in outcome
        if outcome["moved"]:
            self.memory.moved_at = self.clock.now().timestamp()
        return outcome

    def _reconcile(self) -> None:
        """Check, once per head version (and until it holds), that this member's own record shows what
        the chain says about it; a change whose step was lost is handed on again (``reconcile``)."""
        head = self.head()
        if head is None or self.memory.settled == head.version:
            return
        try:
            if self.reconcile(self.verified()) is None:
                self.memory.settled = head.version
        except (TransientError, ConflictError) as error:  # the next tick tries again
            log.info("membership not reconciled yet: %s", error)

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

    def follow_closely(
        self, active: Callable[[], bool], *, sleep: Callable[[float], None] = time.sleep
    ) -> dict[str, Any]:
        """What the timer runs: a tick, then more ticks ``fast.interval`` apart while a change is in
        flight and the conversation moved within ``fast.quiet`` seconds, for at most ``fast.budget``
        seconds, and only while ``active()`` (this deployment still coordinates). Returns the last tick's
        outcome with ``ticks`` (how many ran) and the last version adopted in any of them."""
        started = self.clock.now().timestamp()
        outcome = self.tick()
        adopted, ticks = outcome.get("adopted"), 1
        while self.fast.quiet > 0 and outcome.get("in_flight") and not outcome.get("fork"):
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
            adopted, ticks = outcome.get("adopted", adopted), ticks + 1
        return {**outcome, "adopted": adopted, "ticks": ticks}

    def _presign(self, base: chain.Trusted) -> None:
        """Sign, with its own keys, the document each of this member's own changes makes over ``base``.

        A change a version already carries is never signed again: a member that left would otherwise sign
        its old admission over the base without it (found by the chaos suite)."""
        done = {t.document.change.proposal_id for t in self.verified()}
        for p in self.own().get("proposals", []):
            proposal = rules.Proposal.model_validate(p)
            if proposal.member_id != self.me or proposal.kind == chain.Kind.REMOVE or proposal.proposal_id in done:
                continue
            existing = self._own_presigned(proposal.proposal_id)
            if existing is not None and existing.base == base.hash:
                continue
            try:
                needed = rules.presigners(proposal, base)
            except chain.ChainError:
                continue
            document = proposal.document(base)
            digest = chain.document_hash(document)
            signatures = [self._sign(kid, bytes.fromhex(digest)) for member_id, kid in needed if member_id == self.me]
            entry = rules.Presigned(proposal_id=proposal.proposal_id, base=base.hash, hash=digest,
                                    signatures=tuple(signatures)).model_dump(mode="json")  # fmt: skip

            def store(body: dict[str, Any], entry: dict[str, Any] = entry) -> dict[str, Any]:
                others = [x for x in body.get("presigned", []) if x["proposal_id"] != entry["proposal_id"]]
                return {**body, "presigned": [*others, entry]}

            self._update_own(store)

    def _sign(self, kid: str, digest: bytes) -> chain.Signature:
        raw = self.keys.sign(kid, digest)
        return chain.Signature(member_id=self.me, kid=kid, sig=chain.b64u(raw))

    def _record(self, base: chain.Trusted) -> agreement.Record:
        stored = self.own().get("record")
        if stored and stored.get("version") == base.version + 1 and stored.get("base") == base.hash:
            published = {k: v for k, v in stored.items() if k not in PRIVATE_RECORD_FIELDS}
            record = rules.record_of(self.me, rules.RecordModel.model_validate(published))
            return replace(
                record,
                moved_at=float(stored.get("moved_at", 0.0)),
                signed=stored.get("signed"),
                engaged=bool(stored.get("engaged", False)),
            )
        return agreement.Record(self.me, base.version + 1, base.hash, moved_at=self.clock.now().timestamp())

    def _agree(self, base: chain.Trusted, heads: Mapping[str, rules.Head], judged: Mapping[str, Any]) -> str:
        electorate = list(base.document.member_ids)
        if self.me not in electorate:
            return "not a member"
        others = {m: rules.record_of(m, h.record) for m, h in heads.items() if h.record is not None and m in electorate}
        eligible = [
            agreement.Value(pid, e.hash, self.known_proposals(heads)[pid].proposed_at)
            for pid, e in judged.items()
            if e.standing == rules.Standing.ELIGIBLE
        ]
        mine = self._record(base)
        round_ = max([b[0] for r in [mine, *others.values()] for b in (r.promised, r.leading) if b], default=0)
        timing = agreement.Timing(self.timing.timeout, self.timing.jitter * self.jitter(round_))
        result = agreement.step(
            mine, others, electorate=electorate, version=base.version + 1, base=base.hash, eligible=eligible,
            now=self.clock.now().timestamp(), timing=timing,
        )  # fmt: skip
        record = result.record
        if record.signed and not mine.signed:
            self._sign_final(base, record.signed, judged)
        stored = self.own().get("record") or {}
        if record != mine or (stored.get("version"), stored.get("base")) != (record.version, record.base):
            body = {
                **rules.record_json(record),
                "moved_at": record.moved_at,
                "signed": record.signed,
                "engaged": record.engaged,
            }
            self._update_own(lambda own: {**own, "record": body})
        return result.reason.value

    def _sign_final(self, base: chain.Trusted, digest_hex: str, judged: Mapping[str, Any]) -> None:
        """Sign the chosen document: recorded in our own storage first, once per version, ever."""
        version = base.version + 1
        try:
            self.state.create(signed_path(version), {"version": version, "hash": digest_hex, "at": iso(self.clock)})
        except ConflictError:
            stored = self.state.read(signed_path(version))
            if stored is None or stored.body.get("hash") != digest_hex:
                raise PermanentError(
                    f"version {version}: this member already signed another document; refusing to sign {digest_hex}",
                    reason=Reason.DOUBLE_SIGN,
                ) from None
        entry = base.document.member(self.me)
        if entry is None:  # agreement.step signs only for a member of the electorate
            raise PermanentError(
                f"version {version}: {self.me} is not in version {base.version}", reason=Reason.NOT_A_MEMBER
            )
        signature = self._sign(entry.governance_key.kid, bytes.fromhex(digest_hex))
        final = rules.Final(version=version, hash=digest_hex, signature=signature).model_dump(mode="json")
        self._update_own(lambda own: {**own, "final": final})

    def _assemble(
        self, base: chain.Trusted, heads: Mapping[str, rules.Head], judged: Mapping[str, rules.Eligibility]
    ) -> chain.Trusted | None:
        """Adopt the next version once the final signatures published make it verify."""
        version = base.version + 1
        finals: dict[str, list[chain.Signature]] = {}
        own_final = self.own().get("final")
        for final in [rules.Final.model_validate(own_final)] if own_final else []:
            if final.version == version:
                finals.setdefault(final.hash, []).append(final.signature)
        for head in heads.values():
            if head.final is not None and head.final.version == version:
                finals.setdefault(head.final.hash, []).append(head.final.signature)
        if not finals:
            return None
        proposals = self.known_proposals(heads)
        own, published = self._own_presigned_all(), {m: h.presigned for m, h in heads.items()}
        for digest_hex, signatures in finals.items():
            for proposal_id, eligibility in judged.items():
                if eligibility.hash != digest_hex or eligibility.document is None:
                    continue
                presigned = rules.presignature(
                    proposals[proposal_id], me=self.me, own=own, published=published, digest=digest_hex
                ).signatures
                raw = chain.with_signatures(
                    eligibility.document, [s.model_dump(mode="json") for s in [*signatures, *presigned]]
                )
                try:
                    trusted = chain.verify_next(base, raw)
                except chain.SignatureError:
                    continue  # not enough final signatures yet
                self._adopt(trusted)
                return trusted
        return None

    # --- publishing ---------------------------------------------------------------------------

    def signing_key(self) -> str:
        """The kid this member signs its head with: the one its verified chain lists, else its newest."""
        head = self.head()
        entry = head.document.member(self.me) if head else None
        if entry is not None:
            return entry.governance_key.kid
        key = self.keys.get_key(self.identity.governance_key)
        if key is None:
            raise TransientError("the governance key is not created yet")
        if not key.enabled:  # out of the chain, its keys disabled (never deleted): nothing more to sign
            raise TransientError("the governance key is disabled: this member left or was removed")
        return key.kid

    def publish(self) -> dict[str, Any] | None:
        """``publish_head`` under the service's lock: what a step that changed this member's own
        statements (a decision, a proposal) calls on the coordinator, so they need not wait for a tick."""
        with self.lock:
            return self.publish_head()

    def publish_head(self) -> dict[str, Any] | None:
        own = self.own()
        head = self.head()
        try:
            kid = self.signing_key()
        except TransientError:
            return None
        record = own.get("record")
        body: dict[str, Any] = {
            "member_id": self.me,
            "kid": kid,
            "chain": {"version": head.version, "hash": head.hash} if head else None,
            "proposals": own.get("proposals", [])[-20:],
            "approvals": own.get("approvals", {}),
            "presigned": own.get("presigned", [])[-20:],
            "record": {k: v for k, v in record.items() if k not in PRIVATE_RECORD_FIELDS} if record else None,
            "final": own.get("final"),
        }
        self.memory.says = rules.Says(
            rules.RecordModel.model_validate(body["record"]) if body["record"] else None,
            rules.Final.model_validate(body["final"]) if body["final"] else None,
        )
        fingerprint = hashlib.sha256(chain.canonical(body)).hexdigest()
        if own.get("published_fingerprint") == fingerprint:
            return None
        seq = int(own.get("seq", 0)) + 1
        body = {**body, "seq": seq, "updated_at": iso(self.clock)}
        digest = hashlib.sha256(rules.head_signing_bytes(body)).digest()
        body["sig"] = chain.b64u(self.keys.sign(kid, digest))
        # the state first: a head is never published with a seq that a restart could hand out again
        self._update_own(lambda o: {**o, "seq": seq, "published_fingerprint": fingerprint})
        self.public.put(HEAD, chain.canonical(body))
        return body

    # --- what status shows --------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """The member's view of the consortium for ``status``, the CLI and the dashboard."""
        trusted = self.verified()
        head = trusted[-1] if trusted else None
        heads = self.stored_heads()
        judged = self.judge(heads) if head else {}
        proposals = []
        for proposal_id, proposal in sorted(self.known_proposals(heads).items()):
            e = judged.get(proposal_id)
            signed_by = sorted(e.approvals) if e else []
            status = "open"
            if e is not None:
                status = {
                    rules.Standing.DONE: "done", rules.Standing.REJECTED: "rejected",
                    rules.Standing.EXPIRED: "expired", rules.Standing.DOES_NOT_APPLY: "closed",
                }.get(e.standing, "open")  # fmt: skip
            proposals.append({
                "proposal_id": proposal_id, "change": {"kind": proposal.kind.value, "member_id": proposal.member_id},
                "base_version": head.version if head else None, "signed_by": signed_by, "status": status,
                "standing": e.standing.value if e else None, "message": e.message if e else "",
                "proposer": proposal.proposer, "proposed_at": proposal.proposed_at,
                "rejected_by": list(e.rejections) if e else [],
                "decision": self.own().get("approvals", {}).get(proposal_id),
            })  # fmt: skip
        own = self.own()
        return {
            "chain": {
                "version": head.version if head else None,
                "head": head.hash if head else None,
                "genesis": self.genesis,
                "fork": own.get("fork") and {k: v for k, v in own["fork"].items() if k != "documents"},
            },
            "members": [
                {"member_id": m.member_id, "status": "active", "endpoint": m.endpoint, "legal_name": m.legal_name}
                for m in (head.document.members if head else ())
            ],
            "proposals": proposals,
            "agreement": own.get("record"),
            "peers": {
                m: {"seq": h.seq, "updated_at": h.updated_at, "version": h.chain.version if h.chain else None}
                for m, h in heads.items()
            },
        }


def now_iso(clock: Clock) -> str:
    return iso_time(clock.now())
