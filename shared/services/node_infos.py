"""Publish this member's own nodes' node infos, and carry the other members' to its nodes.

``NodeInfoPublisher`` (the member's own). Each of its nodes' agents offers the ``NodeInfo`` file Corda
wrote in the member's private ``node-infos-inbox`` (``nodeagent.inbox``) and refreshes it while the
node lives. At most once a minute, the timer lists the inbox, sorts it by one rule
(``node_infos.sort_inbox``: a file is current while its node refreshes it), reads only files it has
not published yet, checks each (``node_infos.check_offered``: size, hash, Corda's header; it cannot
parse Corda's AMQP), and, only when the set of current files differs from the index it published
(or that index was signed with a key the verified chain no longer lists for it), publishes the new
files, then ``nodes/{me}/index.json`` with ``seq`` one above any it used, signed with the governance
key the verified chain lists for this member. The same set writes nothing. A member the chain does
not list publishes nothing. Refused files are recorded as rejections (``node-infos-inbox``), once.

``NodeInfoMirror`` (the others'): a verified mirror, not a source of trust.

A member's Corda nodes read only their own member's ``consortium-public`` container (the nodes'
identity holds Storage Blob Data Reader there and nowhere else; the other members grant their read
access to this member's app registration, not to its VMs). So, once per consortium tick, this
member's coordinator copies, for every other member its verified head admits, that member's signed
node-info index and the files it lists (``nodes/{member_id}/...``, ``shared.decisions.node_infos``)
from that member's container into its own, at the same paths and byte for byte.

It copies only what verifies (the index signed with the governance key the verified head lists for
that member, no older than the copy it holds; each file's bytes the ones the index lists), files
before the index that lists them, and records what it refuses as it records any other member's bad
document (``peer-documents`` rejections). The nodes' agent does not rely on any of this: it verifies
the index and every file again itself, from the chain it verified itself; the mirror is transport.
What a member no longer admitted published stays where it is, and no agent reads it.

Node infos change when a member adds or replaces nodes, far less often than heads: so the timer
mirrors at most every ``MIRROR_SECONDS`` (one conditional read per member), and at once after a tick
adopted a version (a member just admitted is copied without waiting). Following 49 members, that keeps
the mirror to about a sixth of what one read per member per tick would add at Azure's 10 s schedule.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from shared.decisions import chain, node_infos
from shared.decisions.node_infos import NodeInfoError
from shared.errors import ConflictError, PermanentError, TransientError
from shared.messages import Rejection
from shared.ports.clock import Clock
from shared.ports.inbox import NodeInfoInbox
from shared.ports.keys import KeyStore
from shared.ports.published import PeerReader, PublicStore
from shared.ports.state import StateStore
from shared.services.consortium import PEER_REJECTIONS, TickOutcome
from shared.services.records import Rejections, iso

log = logging.getLogger(__name__)
#: How often, at most, the timer mirrors the others' node infos when no version was adopted.
MIRROR_SECONDS = 60.0


class Mirrored(StrEnum):
    COPIED = "copied"  # a newer verified index and its files are now in this member's container
    UNCHANGED = "unchanged"  # the member's index is the one already copied (or unchanged since last read)
    NONE = "none"  # the member has published no index (yet)
    UNREACHABLE = "unreachable"  # its container could not be read now; the next tick tries again
    REFUSED = "refused"  # its index or a file it lists does not verify; recorded, nothing copied


@dataclass
class NodeInfoMirror:
    me: str
    public: PublicStore
    peers: PeerReader
    rejections: Rejections
    #: member id -> ETag of its index as last read (an unchanged index costs one request, no download)
    etags: dict[str, str] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)
    monotonic: Callable[[], float] = time.monotonic
    last_at: float | None = None

    def due(self) -> None:
        """Mirror on the next ``after_tick`` whatever it brings (this tick's turn was given up)."""
        self.last_at = None

    def after_tick(self, outcome: TickOutcome, head: chain.Trusted | None) -> dict[str, Mirrored]:
        """What the consortium timer runs after its ticks: ``mirror`` when a version was adopted, or when
        ``MIRROR_SECONDS`` have passed since the last; nothing on a fork or before the genesis."""
        if head is None or outcome.fork:
            return {}
        now = self.monotonic()
        if outcome.adopted is None and self.last_at is not None and now - self.last_at < MIRROR_SECONDS:
            return {}
        self.last_at = now
        return self.mirror(head)

    def mirror(self, head: chain.Trusted) -> dict[str, Mirrored]:
        """Copy every other admitted member's verified node infos into this member's container."""
        return {m.member_id: self._one(m) for m in head.document.members if m.member_id != self.me}

    def _one(self, member: chain.Member) -> Mirrored:
        path = node_infos.index_path(member.member_id)
        fetched = None
        try:
            fetched = self.peers.fetch(
                member.endpoint, path, etag=self.etags.get(member.member_id), limit=node_infos.MAX_INDEX_BYTES
            )
            if fetched is None:
                return Mirrored.NONE
            if fetched.data is None:
                return Mirrored.UNCHANGED
            own = self.public.get(path)
            if own == fetched.data:
                self.etags[member.member_id] = fetched.etag
                return Mirrored.UNCHANGED
            accepted = node_infos.verify_index(fetched.data, member=member, last=self._copied(own, member))
            for entry in accepted.index.node_infos:
                self._copy_file(member, entry)
            self.public.put(path, fetched.data)  # the index last: it never lists a file not there yet
        except TransientError as error:
            log.info("node infos of %s: %s", member.member_id, error)
            return Mirrored.UNREACHABLE
        except (NodeInfoError, PermanentError) as error:
            self._refuse(member.member_id, path, fetched.data if fetched and fetched.data else b"", error)
            return Mirrored.REFUSED
        self.etags[member.member_id] = fetched.etag
        return Mirrored.COPIED

    def _copied(self, own: bytes | None, member: chain.Member) -> tuple[int, str] | None:
        """The copy this member holds, as the replay check's baseline (none if it no longer verifies, e.g.
        after the member rotated its governance key: a newer index replaces it)."""
        if own is None:
            return None
        try:
            accepted = node_infos.verify_index(own, member=member)
        except NodeInfoError:
            return None
        return accepted.index.seq, accepted.fingerprint

    def _copy_file(self, member: chain.Member, entry: node_infos.NodeInfoEntry) -> None:
        path = node_infos.node_info_path(member.member_id, entry.sha256)
        own = self.public.get(path)
        if own is not None and hashlib.sha256(own).hexdigest() == entry.sha256:
            return  # content-addressed: already copied
        fetched = self.peers.fetch(member.endpoint, path, limit=node_infos.MAX_NODE_INFO_BYTES)
        if fetched is None or fetched.data is None:
            raise TransientError(f"{path}: listed by the index of {member.member_id}, not published yet")
        self.public.put(path, node_infos.verify_file(fetched.data, member_id=member.member_id, entry=entry))

    def _refuse(self, member_id: str, path: str, data: bytes, error: Exception) -> None:
        marker = hashlib.sha256(path.encode() + data + str(error).encode()).hexdigest()
        if marker in self.refused:
            return
        self.refused.add(marker)
        log.warning("refused %s from %s: %s", path, member_id, error)
        reason = str(getattr(error, "rule", None) or getattr(error, "reason", None) or "node_infos")
        message = f"{path} from {member_id}: {error}"
        self.rejections.record(
            PEER_REJECTIONS, data or message.encode(), Rejection(reason, message, member_id=member_id)
        )


# --- this member's own nodes ----------------------------------------------------------------------

#: How often, at most, the timer publishes this member's own node infos.
PUBLISH_SECONDS = 60.0
#: What the publisher remembers: the highest ``seq`` it signed (written before the index is published).
PUBLISHED_STATE = "node-infos/published.json"
#: Where refused inbox files are recorded (``consortium rejections``).
INBOX_REJECTIONS = node_infos.INBOX_CONTAINER


class Publication(StrEnum):
    PUBLISHED = "published"  # a new signed index (and the files it adds) is in this member's container
    UNCHANGED = "unchanged"  # the current files are the ones the published index lists: nothing written
    NOTHING = "nothing"  # no current file and no index published yet: nothing to say
    NOT_A_MEMBER = "not_a_member"  # the verified chain does not list this member: it signs nothing
    UNREACHABLE = "unreachable"  # the inbox or the container could not be read or written now
    FAILED = "failed"  # refused by storage or the vault, or the index signed would not verify: logged


@dataclass
class NodeInfoPublisher:
    me: str
    inbox: NodeInfoInbox
    public: PublicStore
    keys: KeyStore
    state: StateStore
    rejections: Rejections
    clock: Clock
    #: inbox blob name -> why it was refused (each refused file is read and recorded once per process)
    refused: set[str] = field(default_factory=set)
    monotonic: Callable[[], float] = time.monotonic
    last_at: float | None = None
    #: Since when (monotonic) the inbox has been listed at every run without a failure: ``sort_inbox``
    #: drops a published file only after a whole refresh interval of watching (None: not watching).
    watching_since: float | None = None

    def due(self) -> None:
        """Publish on the next ``after_tick`` whatever it brings (this tick's turn was given up)."""
        self.last_at = None

    def after_tick(self, outcome: TickOutcome, head: chain.Trusted | None) -> Publication | None:
        """What the consortium timer runs after its ticks: ``publish`` at most every ``PUBLISH_SECONDS``
        (at once after an adoption, which may have admitted this member); nothing on a fork or before
        the genesis."""
        if head is None or outcome.fork:
            return None
        now = self.monotonic()
        if outcome.adopted is None and self.last_at is not None and now - self.last_at < PUBLISH_SECONDS:
            return None
        self.last_at = now
        try:
            return self.publish(head)
        except TransientError as error:
            log.info("own node infos not published: %s", error)
            return Publication.UNREACHABLE
        except (PermanentError, NodeInfoError) as error:
            # a role missing, a key the vault will not use: the operator's to fix; the tick's work stands
            log.error("own node infos not published: %s", error)
            return Publication.FAILED

    def publish(self, head: chain.Trusted) -> Publication:
        entry = head.document.member(self.me)
        if entry is None:
            return Publication.NOT_A_MEMBER
        try:
            listing = self.inbox.list()
        except TransientError:
            self.watching_since = None
            raise
        watched = self.monotonic()
        self.watching_since = self.watching_since if self.watching_since is not None else watched
        may_drop = watched - self.watching_since >= node_infos.INBOX_REFRESH_SECONDS + PUBLISH_SECONDS
        published = self._published(entry)
        listed = {e.sha256: e.size for e in published.index.node_infos} if published else {}
        view = node_infos.sort_inbox(listing, now=self.clock.now(), may_drop=may_drop, published=listed)
        for blob, error in view.refused:
            self._refuse(blob.name, b"", error)
        wanted: dict[str, int] = {}
        new: dict[str, bytes] = {}
        for blob in view.current:
            if blob.name in listed:
                wanted[blob.name] = listed[blob.name]  # published before, after the same checks
            elif blob.name not in self.refused and (data := self._read(blob.name)) is not None:
                wanted[blob.name], new[blob.name] = len(data), data
        kid = entry.governance_key.kid
        if published and wanted == listed and published.index.kid == kid:
            outcome = Publication.UNCHANGED
        elif not published and not wanted:
            outcome = Publication.NOTHING
        else:
            self._publish(entry, wanted, new, published)
            outcome = Publication.PUBLISHED
        if may_drop:
            for blob in view.stale:
                self.inbox.delete(blob.name)  # out of the index now; a node still alive offers it again
        return outcome

    def _published(self, entry: chain.Member) -> node_infos.Accepted | None:
        """The index this member published, if it verifies with the key its verified chain lists now."""
        raw = self.public.get(node_infos.index_path(self.me))
        if raw is None:
            return None
        try:
            return node_infos.verify_index(raw, member=entry)
        except NodeInfoError:
            return None  # e.g. signed with a governance key rotated out since: a new one replaces it

    def _read(self, name: str) -> bytes | None:
        try:
            data = self.inbox.get(name, limit=node_infos.MAX_NODE_INFO_BYTES)
        except PermanentError as error:
            self._refuse(name, b"", error)
            return None
        if data is None:
            return None  # gone since the listing: the next listing decides
        try:
            return node_infos.check_offered(name, data)
        except NodeInfoError as error:
            self._refuse(name, data, error)
            return None

    def _publish(
        self, entry: chain.Member, wanted: dict[str, int], new: dict[str, bytes], published: node_infos.Accepted | None
    ) -> None:
        for sha256, data in sorted(new.items()):
            self.public.put(node_infos.node_info_path(self.me, sha256), data)  # the files first
        stored = self.state.read(PUBLISHED_STATE)
        seq = max(int(stored.body.get("seq", 0)) if stored else 0, published.index.seq if published else 0) + 1
        kid = entry.governance_key.kid
        document = node_infos.index_document(self.me, wanted, seq=seq, issued_at=iso(self.clock), kid=kid)
        sig = chain.b64u(self.keys.sign(kid, hashlib.sha256(chain.own_signing_bytes(document)).digest()))
        raw = node_infos.signed_bytes(document, sig)
        node_infos.verify_index(raw, member=entry)  # what every agent will check: never publish less
        # the state first: an index is never published with a seq that a restart could hand out again
        body = {"seq": seq, "kid": kid, "node_infos": sorted(wanted), "at": iso(self.clock)}
        try:
            if stored is None:
                self.state.create(PUBLISHED_STATE, body)
            else:
                self.state.replace(PUBLISHED_STATE, body, stored.etag)
        except ConflictError:
            raise TransientError(f"{PUBLISHED_STATE}: written by another run meanwhile") from None
        self.public.put(node_infos.index_path(self.me), raw)
        log.info("published own node infos: seq %d, %d file(s), %d new", seq, len(wanted), len(new))

    def _refuse(self, name: str, data: bytes, error: Exception) -> None:
        if name in self.refused:
            return
        self.refused.add(name)
        where = f"{node_infos.INBOX_CONTAINER}/{name}"
        log.warning("refused %s: %s", where, error)
        reason = str(getattr(error, "rule", None) or getattr(error, "reason", None) or "node_infos")
        message = f"{where} offered by a node of {self.me}: {error}"
        self.rejections.record(
            INBOX_REJECTIONS, data or message.encode(), Rejection(reason, message, member_id=self.me)
        )
