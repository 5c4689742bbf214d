"""Carry the other members' node infos to this member's own nodes: a verified mirror, not a source of trust.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shared.decisions import chain, node_infos
from shared.decisions.node_infos import NodeInfoError
from shared.errors import PermanentError, TransientError
from shared.messages import Rejection
from shared.ports.published import PeerReader, PublicStore
from shared.services.consortium import PEER_REJECTIONS
from shared.services.records import Rejections

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

    def after_tick(self, outcome: Mapping[str, Any], head: chain.Trusted | None) -> dict[str, Mirrored]:
        """What the consortium timer runs after its ticks: ``mirror`` when a version was adopted, or when
        ``MIRROR_SECONDS`` have passed since the last; nothing on a fork or before the genesis."""
        if head is None or outcome.get("fork"):
            return {}
        now = self.monotonic()
        if outcome.get("adopted") is None and self.last_at is not None and now - self.last_at < MIRROR_SECONDS:
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
