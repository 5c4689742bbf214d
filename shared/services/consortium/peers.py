"""The other members' heads: whom to read, with which key, and what was read.

Each head is read with one conditional request (an unchanged head costs no download) and believed
only once ``consortium.verify_head`` has checked it with the key this member's verified chain lists
for its member (for a newcomer, the key its own admission proposal carries). A verified head is kept
in this member's own storage (``peers/``), so any instance, the CLI and status see it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.decisions import chain
from shared.decisions import consortium as rules
from shared.errors import ConflictError, PermanentError, TransientError
from shared.ports.published import PeerReader
from shared.ports.state import StateStore
from shared.services.consortium.catch_up import CatchUp
from shared.services.consortium.memory import Follow
from shared.services.consortium.paths import HEAD, peer_path
from shared.services.consortium.refusals import Refusals
from shared.services.consortium.store import ChainStore

log = logging.getLogger(__name__)


@dataclass
class PeerHeads:
    me: str
    peers: PeerReader
    state: StateStore
    memory: Follow
    refusals: Refusals
    store: ChainStore
    catch_up: CatchUp

    def endpoints(self, head: chain.Trusted | None) -> dict[str, str]:
        """Everyone to read: the chain's members (at their listed endpoints) and the introduced."""
        found = dict(self.peers.introduced())
        if head is not None:
            found.update({m.member_id: m.endpoint for m in head.document.members})
        found.pop(self.me, None)
        return found

    def keys_for(self, member_id: str, head: chain.Trusted | None, raw: Mapping[str, Any]) -> list[chain.KeyRef]:
        if head is not None and (entry := head.document.member(member_id)) is not None:
            return [entry.governance_key]
        # Not a member (yet): a newcomer signs its head with the key its own admission proposal
        # carries, which the chain will require it to prove again when it is admitted.
        keys = []
        for p in raw.get("proposals") or []:
            if isinstance(p, dict) and p.get("kind") == chain.Kind.ADMIT and p.get("member_id") == member_id:
                try:
                    keys.append(rules.Proposal.model_validate(p).entry.governance_key)  # type: ignore[union-attr]
                except (ValueError, AttributeError):
                    continue
        return keys

    def read(self, head: chain.Trusted | None) -> dict[str, rules.Head]:
        """Read every other member's head; the verified ones, newest seen of each."""
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
                self.refusals.refuse(source, f"{source}: {error}".encode(), error, member_id)
                continue
            if fetched is None or fetched.data is None:
                continue
            try:
                raw = rules.parse_head(fetched.data)
                keys = self.keys_for(member_id, head, raw)
                if not keys:
                    continue  # neither a member we know nor an applicant: nothing to believe or refuse yet
                try:
                    verified = rules.verify_head(raw, member_id=member_id, keys=keys)
                except rules.HeadError:
                    # A member whose rotate version we have not adopted yet signs with its new key:
                    # adopt the versions it holds (each verified against ours), then check again.
                    if not self.catch_up.catch_up_from(member_id, endpoint, raw):
                        raise
                    head = self.store.head()
                    verified = rules.verify_head(raw, member_id=member_id, keys=self.keys_for(member_id, head, raw))
            except (chain.ChainError, rules.HeadError) as error:
                self.refusals.refuse(source, fetched.data, error, member_id)
                continue
            previous = self.memory.heads.get(member_id)
            if previous is not None and verified.seq < previous.seq:
                continue  # an older head than one already read: never go back
            self.memory.heads[member_id] = verified
            self.memory.peer_etags[member_id] = fetched.etag
            self.keep(member_id, raw)
        return self.memory.heads

    def keep(self, member_id: str, raw: Mapping[str, Any]) -> None:
        """Keep the verified head in our own storage, so any instance, the CLI and status see it."""
        path = peer_path(member_id)
        doc = self.state.read(path)
        try:
            if doc is None:
                self.state.create(path, dict(raw))
            elif int(doc.body.get("seq", -1)) < int(raw.get("seq", 0)):
                self.state.replace(path, dict(raw), doc.etag)
        except ConflictError:
            pass  # another instance stored a head at the same time; the next tick reads again

    def stored(self) -> dict[str, rules.Head]:
        """The others' heads as this member last verified and stored them (checked again on the way in)."""
        heads = dict(self.memory.heads)
        if heads:
            return heads
        head = self.store.head()
        for doc in self.state.read_all("peers/"):
            member_id = doc.path.rsplit("/", 1)[-1].removesuffix(".json")
            try:
                heads[member_id] = rules.verify_head(
                    doc.body, member_id=member_id, keys=self.keys_for(member_id, head, doc.body)
                )
            except rules.HeadError:
                continue
        return heads
