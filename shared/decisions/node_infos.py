"""What a member's Corda nodes may be told about the others: signed node-info indexes and flag days.

The membership chain lists who is in the consortium and each member's governance key; what changes
with capacity (which nodes a member runs, their ``NodeInfo`` files) is not in the chain (docs/contract.md).
Each member publishes it beside the chain, signed with the governance key the chain lists for it:

- ``nodes/{member_id}/index.json``: the SHA-256 (and size) of each of the member's current
  ``NodeInfo`` files, a sequence number that only grows, signed like a head (``kid``, ``sig`` over
  ``chain.own_signing_bytes``);
- ``nodes/{member_id}/nodeInfo-{sha256}``: the files themselves, each believed only if its bytes hash
  to a value a verified index lists;
- ``flag-day.json`` (a member's own, for its own nodes): a network-parameters change its operator
  accepted, with the time it switches. A node restarts for it once, after that time, and never
  otherwise.

This module is the only place that decides whether such a document verifies, in the chain's style:
a strict model, one function per document (``own_documents.verify_own``, as every member's own
document) that raises a ``NodeInfoError`` carrying the ``signed.Rule`` broken, and pure helpers
(the file names on disk, what to write and remove, whether to restart).
The node's agent (``nodeagent``) runs it with the member entry of a chain version that verified from
the pinned genesis: nothing from another member is believed before that.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator, model_validator

from shared.decisions import chain
from shared.decisions.own_documents import Model, verify_own
from shared.decisions.signed import DocumentError, Strict, parse_instant
from shared.decisions.signed import Rule as Rule  # re-exported: the node agent and tests name node_infos.Rule
from shared.naming import MEMBER_ID

#: An index is small (a member runs at most a few dozen nodes); refused unread above this.
MAX_INDEX_BYTES = 64 * 1024
#: A ``NodeInfo`` file (a serialized ``SignedNodeInfo``) is a few KiB; refused above this.
MAX_NODE_INFO_BYTES = 1024 * 1024
MAX_NODE_INFOS = 100
MAX_FLAG_DAY_BYTES = 16 * 1024
#: The network parameters file a flag day installs (a serialized ``SignedNetworkParameters``).
MAX_NETWORK_PARAMETERS_BYTES = 1024 * 1024
SHA256_PATTERN = r"^[0-9a-f]{64}$"
FLAG_DAY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
FLAG_DAY = "flag-day.json"
#: The private container (in the member's own storage account) where its nodes' agents offer the
#: ``NodeInfo`` file Corda wrote, each blob named by the SHA-256 of its bytes; the control plane signs
#: and publishes what is current there (``shared.services.node_infos.NodeInfoPublisher``).
INBOX_CONTAINER = "node-infos-inbox"
#: An agent refreshes its file's blob (its Last-Modified, set by the storage service) this often...
INBOX_REFRESH_SECONDS = 600
#: ... and a file whose blob was not refreshed for this long is no longer current: its node is gone
#: (deleted, deallocated, or it wrote a new file). Three refreshes missed, so one slow run drops nothing.
INBOX_CURRENT_SECONDS = 1800
#: Corda's serialization header: ``corda`` then two version bytes (``amqpMagic``; the version varies).
CORDA_MAGIC = b"corda"
#: On disk, a member's node-info file is ``nodeInfo-{member_id}-{sha256}`` (see ``disk_name``).
_DISK_NAME = re.compile(r"^nodeInfo-(" + MEMBER_ID.pattern.strip("^$") + r")-([0-9a-f]{64})$")


def index_path(member_id: str) -> str:
    """Where a member's signed node-info index is, in a ``consortium-public`` container."""
    return f"nodes/{member_id}/index.json"


def node_info_path(member_id: str, sha256: str) -> str:
    """Where one of a member's node-info files is, named by the SHA-256 of its bytes."""
    return f"nodes/{member_id}/nodeInfo-{sha256}"


def network_parameters_path(sha256: str) -> str:
    """Where the network parameters a flag day installs are, named by the SHA-256 of their bytes."""
    return f"network-parameters/{sha256}"


class NodeInfoError(DocumentError):
    """A node-info index, file or flag day that does not verify; ``str()`` names where and the rule
    (a ``signed.Rule``, re-exported here as ``Rule``)."""

    def __init__(self, rule: Rule, where: str, message: str):
        self.rule = rule
        self.where = where
        self.message = message
        super().__init__(f"{where}: {rule.value}: {message}")


class NodeInfoEntry(Strict):
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=1, le=MAX_NODE_INFO_BYTES)


class NodeInfoIndex(Strict):
    member_id: str = Field(pattern=MEMBER_ID.pattern)
    #: Grows with every index the member publishes: an older index read again is refused.
    seq: int = Field(ge=1, le=2**53 - 1)
    issued_at: str = Field(pattern=chain.TIMESTAMP_PATTERN)
    node_infos: tuple[NodeInfoEntry, ...] = Field(max_length=MAX_NODE_INFOS, strict=False)  # a JSON array
    kid: str = Field(pattern=chain.KID_PATTERN, max_length=512)
    sig: str = Field(pattern=chain.B64U_PATTERN, min_length=86, max_length=86)

    @model_validator(mode="after")
    def _each_file_once(self) -> NodeInfoIndex:
        hashes = [e.sha256 for e in self.node_infos]
        if hashes != sorted(set(hashes)):
            raise ValueError("node_infos must be in sha256 order, each file once")
        return self


class FlagDay(Strict):
    member_id: str = Field(pattern=MEMBER_ID.pattern)
    flag_day_id: str = Field(pattern=FLAG_DAY_ID_PATTERN)
    #: SHA-256 of the raw network parameters file the nodes switch to (published beside it).
    network_parameters_sha256: str = Field(pattern=SHA256_PATTERN)
    switch_at: str = Field(pattern=chain.TIMESTAMP_PATTERN)
    kid: str = Field(pattern=chain.KID_PATTERN, max_length=512)
    sig: str = Field(pattern=chain.B64U_PATTERN, min_length=86, max_length=86)

    @field_validator("switch_at")
    @classmethod
    def _a_real_time(cls, value: str) -> str:
        parse_instant(value)
        return value

    @property
    def switch_time(self) -> datetime:
        return parse_instant(self.switch_at)


def _read(raw: bytes, where: str, limit: int) -> dict[str, Any]:
    try:
        return chain.parse_published(raw, limit=limit)
    except chain.ChainError as error:
        raise NodeInfoError(Rule.SHAPE, where, str(error)) from None


def _member_signed(
    raw: bytes, where: str, limit: int, model: type[Model], member: chain.Member
) -> tuple[dict[str, Any], Model]:
    """A document ``member`` signed: canonical JSON of ``model``, naming ``member``, signed with the
    governance key ``member`` (an entry of a verified chain version) lists; else ``NodeInfoError``."""
    document = _read(raw, where, limit)

    def refuse(rule: Rule, detail: str) -> NodeInfoError:
        if rule == Rule.MEMBER:
            return NodeInfoError(rule, where, f"names {detail}, not {member.member_id}")
        if rule == Rule.SIGNATURE:
            return NodeInfoError(rule, where, f"{detail} (the governance key of {member.member_id})")
        return NodeInfoError(rule, where, detail)

    parsed = verify_own(document, model, member_id=member.member_id, keys=[member.governance_key], refuse=refuse)
    return document, parsed


@dataclass(frozen=True)
class Accepted:
    """An index that verified: its content, and the fingerprint that tells a reused ``seq`` apart."""

    index: NodeInfoIndex
    fingerprint: str


def verify_index(raw: bytes, *, member: chain.Member, last: tuple[int, str] | None = None) -> Accepted:
    """``member``'s node-info index, if its bytes are canonical JSON of the model, it names ``member``,
    it is signed with the governance key ``member`` (an entry of a verified chain version) lists, and
    its ``seq`` is not below ``last`` (the ``(seq, fingerprint)`` accepted before; the same ``seq``
    only for the same content). Otherwise ``NodeInfoError`` with the rule."""
    where = index_path(member.member_id)
    document, index = _member_signed(raw, where, MAX_INDEX_BYTES, NodeInfoIndex, member)
    fingerprint = hashlib.sha256(chain.own_signing_bytes(document)).hexdigest()
    if last is not None:
        seq, seen = last
        if index.seq < seq:
            raise NodeInfoError(Rule.REPLAYED, where, f"seq {index.seq} is older than {seq}, already accepted")
        if index.seq == seq and fingerprint != seen:
            raise NodeInfoError(Rule.REPLAYED, where, f"seq {index.seq} was accepted before with other content")
    return Accepted(index, fingerprint)


def verify_file(data: bytes, *, member_id: str, entry: NodeInfoEntry) -> bytes:
    """A node-info file's bytes, if they are the ones the verified index lists for it."""
    where = node_info_path(member_id, entry.sha256)
    if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
        actual = hashlib.sha256(data).hexdigest()
        raise NodeInfoError(
            Rule.HASH, where, f"{len(data)} bytes hashing to {actual[:12]}, not the file the verified index lists"
        )
    return data


def verify_flag_day(raw: bytes, *, member: chain.Member) -> FlagDay:
    """The member's own flag day, if canonical, of the model, naming ``member`` and signed with the
    governance key ``member`` (an entry of a verified chain version) lists."""
    return _member_signed(raw, FLAG_DAY, MAX_FLAG_DAY_BYTES, FlagDay, member)[1]


def verify_network_parameters(data: bytes, *, flag_day: FlagDay) -> bytes:
    """The network parameters' bytes, if they are the ones the verified flag day names."""
    if hashlib.sha256(data).hexdigest() != flag_day.network_parameters_sha256:
        raise NodeInfoError(
            Rule.HASH,
            network_parameters_path(flag_day.network_parameters_sha256),
            f"the bytes are not the network parameters flag day {flag_day.flag_day_id} names",
        )
    return data


# --- the directory ------------------------------------------------------------------------------


def disk_name(member_id: str, sha256: str) -> str:
    """The file's name in ``additional-node-infos``: its member and its content, so two members' files
    never collide and a file never changes in place (Corda reads every regular file there)."""
    return f"nodeInfo-{member_id}-{sha256}"


def member_of(name: str) -> str | None:
    """The member a file in ``additional-node-infos`` was written for (``None``: not one of ours)."""
    found = _DISK_NAME.match(name)
    return found.group(1) if found else None


@dataclass(frozen=True)
class Plan:
    """What to do to ``additional-node-infos`` so that it holds exactly ``wanted``."""

    write: tuple[str, ...]
    remove: tuple[str, ...]
    unchanged: tuple[str, ...]


def plan(wanted: Iterable[str], present: Iterable[str]) -> Plan:
    """Absolute, not incremental: the directory is the agent's and ends holding exactly ``wanted``."""
    want, have = set(wanted), set(present)
    return Plan(tuple(sorted(want - have)), tuple(sorted(have - want)), tuple(sorted(want & have)))


def kept_for(member_id: str, present: Iterable[str]) -> set[str]:
    """A member's files as they are: what stays when its index cannot be read or does not verify this
    time (it is still admitted; only what verified before is on disk)."""
    return {name for name in present if member_of(name) == member_id}


# --- flag days ----------------------------------------------------------------------------------


class RestartReason(StrEnum):
    NO_FLAG_DAY = "no_flag_day"  # no verified flag day: the node keeps running, whatever else changed
    NOT_YET_DUE = "not_yet_due"  # a verified flag day whose switch time is still ahead
    ALREADY_APPLIED = "already_applied"  # this node restarted for it before
    DUE = "due"  # a verified flag day whose switch time has passed and that this node has not applied
    PARAMETERS_NOT_READY = "parameters_not_ready"  # due, but the parameters it names are missing or not its bytes


@dataclass(frozen=True)
class RestartDecision:
    restart: bool
    reason: RestartReason
    message: str
    flag_day_id: str | None = None


def decide_restart(flag_day: FlagDay | None, *, applied: Iterable[str], now: datetime) -> RestartDecision:
    """Restart the node only for a verified flag day whose time has come, once; never for anything else
    (a new version, a member admitted or gone, node-info files written or removed)."""
    if flag_day is None:
        return RestartDecision(False, RestartReason.NO_FLAG_DAY, "no flag day")
    fid = flag_day.flag_day_id
    if fid in set(applied):
        return RestartDecision(False, RestartReason.ALREADY_APPLIED, f"flag day {fid} already applied", fid)
    if now < flag_day.switch_time:
        return RestartDecision(
            False, RestartReason.NOT_YET_DUE, f"flag day {fid} switches at {flag_day.switch_at}", fid
        )
    return RestartDecision(True, RestartReason.DUE, f"flag day {fid} switched at {flag_day.switch_at}", fid)


def not_ready(decision: RestartDecision, problem: NodeInfoError) -> RestartDecision:
    """A due flag day whose network parameters cannot be installed yet: no restart this time."""
    return RestartDecision(
        False, RestartReason.PARAMETERS_NOT_READY, f"{decision.message}; waiting: {problem}", decision.flag_day_id
    )


# --- building (the publishing side and the tests) -----------------------------------------------


def unsigned_index(member_id: str, files: Iterable[bytes], *, seq: int, issued_at: str, kid: str) -> dict[str, Any]:
    """The index of ``files`` before the member signs it (``sig`` over ``chain.own_signing_bytes``)."""
    entries = {hashlib.sha256(f).hexdigest(): len(f) for f in files}
    return index_document(member_id, entries, seq=seq, issued_at=issued_at, kid=kid)


def index_document(member_id: str, entries: Mapping[str, int], *, seq: int, issued_at: str, kid: str) -> dict[str, Any]:
    """The index listing ``entries`` (SHA-256 -> size), before the member signs it."""
    return {
        "member_id": member_id,
        "seq": seq,
        "issued_at": issued_at,
        "node_infos": [{"sha256": h, "size": entries[h]} for h in sorted(entries)],
        "kid": kid,
    }


def signed_bytes(document: Mapping[str, Any], sig: str) -> bytes:
    """How an index or a flag day is published: RFC 8785 of the document with its signature."""
    return chain.canonical({**document, "sig": sig})


# --- the member's own nodes: what its inbox offers ------------------------------------------------


@dataclass(frozen=True)
class InboxBlob:
    """A file a node's agent offered in the member's private inbox, as listed (nothing read yet):
    its name (the SHA-256 its agent says its bytes have), size, and Last-Modified, which the storage
    service sets when the agent uploads or refreshes it (``nodeagent.inbox``)."""

    name: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class InboxView:
    """What the member publishes from its inbox, by the one rule of ``sort_inbox``."""

    #: Current: listed in the next index (each still checked by ``check_offered`` once read).
    current: tuple[InboxBlob, ...]
    #: No longer current: left out of the index, then removed from the inbox.
    stale: tuple[InboxBlob, ...]
    #: Not a node-info file whatever its bytes (named otherwise, empty or too large): refused unread.
    refused: tuple[tuple[InboxBlob, NodeInfoError], ...]


_SHA256 = re.compile(SHA256_PATTERN)


def sort_inbox(blobs: Iterable[InboxBlob], *, now: datetime, may_drop: bool, published: Iterable[str]) -> InboxView:
    """The rule: a file is current while its node refreshes it, that is while its blob was modified less
    than ``INBOX_CURRENT_SECONDS`` before ``now`` (the newest ``MAX_NODE_INFOS`` of them). A node that is
    deleted or stopped, or that wrote a new file, stops refreshing the old one, which drops out.

    ``may_drop`` is false while the control plane cannot tell that the nodes had the chance to refresh
    (it has not watched the inbox without a gap for a refresh interval: a cold start, or after the
    inbox could not be read): then a file already ``published`` stays current, however old, and only
    new files are added. An outage of the account never empties the member's index."""
    keep = set(published)
    current: list[InboxBlob] = []
    stale: list[InboxBlob] = []
    refused: list[tuple[InboxBlob, NodeInfoError]] = []
    for blob in blobs:
        where = f"{INBOX_CONTAINER}/{blob.name}"
        if not _SHA256.fullmatch(blob.name):
            refused.append((blob, NodeInfoError(Rule.SHAPE, where, "not named by the SHA-256 of its bytes")))
        elif not 1 <= blob.size <= MAX_NODE_INFO_BYTES:
            refused.append((blob, NodeInfoError(Rule.SHAPE, where, f"{blob.size} bytes: not a NodeInfo file")))
        elif (now - blob.modified).total_seconds() < INBOX_CURRENT_SECONDS or (not may_drop and blob.name in keep):
            current.append(blob)
        else:
            stale.append(blob)
    current.sort(key=lambda b: (b.modified, b.name), reverse=True)
    return InboxView(tuple(current[:MAX_NODE_INFOS]), tuple(stale), tuple(refused))


def check_offered(name: str, data: bytes) -> bytes:
    """An offered file's bytes, if they are well-formed enough to publish: at most
    ``MAX_NODE_INFO_BYTES``, hashing to the name they were offered under, and starting with Corda's
    serialization header (``corda`` and two version bytes). Nothing more can be checked here: a
    ``NodeInfo`` file is a ``SignedNodeInfo`` in Corda's AMQP serialization, which this code does not
    parse (nor verify its node's signature over it); Corda does, on every node that reads it."""
    where = f"{INBOX_CONTAINER}/{name}"
    if not 1 <= len(data) <= MAX_NODE_INFO_BYTES:
        raise NodeInfoError(Rule.SHAPE, where, f"{len(data)} bytes: not a NodeInfo file")
    actual = hashlib.sha256(data).hexdigest()
    if actual != name:
        raise NodeInfoError(Rule.HASH, where, f"its bytes hash to {actual[:12]}, not to its name")
    if not data.startswith(CORDA_MAGIC) or len(data) <= len(CORDA_MAGIC) + 2:
        raise NodeInfoError(Rule.SHAPE, where, "does not start with Corda's serialization header")
    return data
