"""A consortium on the fakes: each member its own vault, state and published container, as in Azure.

Every member's ``Consortium`` service has its own ``FakeKeyStore`` (its vault), its own
``FakeStateStore`` (its storage account) and writes only its own container of a shared
``PublishedWorld``, which every member reads. Nothing here decides: the services do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.decisions import agreement, chain
from shared.decisions import consortium as rules
from shared.decisions.onboarding import change_about
from shared.fakes.clock import FakeClock
from shared.fakes.keys import FakeKeyStore
from shared.fakes.published import FakePeerReader, FakePublicStore, PublishedWorld
from shared.fakes.queues import FakeQueues
from shared.fakes.state import FakeStateStore
from shared.services.consortium import Consortium, Identity, VersionAdopted
from shared.services.records import Events, Rejections
from tools.ceremony import LEGAL_NAMES

COUNTRY = {"bank-a": "GB", "bank-b": "FR", "bank-c": "NL", "bank-d": "DE", "bank-e": "IT"}


def endpoint(member_id: str) -> str:
    return f"https://st{member_id.replace('-', '')}.blob.core.windows.net/consortium-public"


def legal_name(member_id: str) -> str:
    """The legal name a world's genesis (and a member's own request) gives ``member_id``: the local stack's
    table (``tools.ceremony.LEGAL_NAMES``) for bank-a..bank-d, so a request made for a world also suits the
    stack's genesis (the e2e suites post the same requests)."""
    return LEGAL_NAMES.get(member_id) or f"O=Bank {member_id[-1].upper()}, L=City, C={COUNTRY.get(member_id, 'LU')}"


@dataclass
class Member:
    member_id: str
    service: Consortium
    keys: FakeKeyStore
    state: FakeStateStore
    queues: FakeQueues
    membership: list[tuple[str, int]] = field(default_factory=list)

    def adopted(self, event: VersionAdopted) -> None:
        """What its consortium announced about this member: each change, with the version that made it."""
        change = change_about(self.member_id, event.version)
        if change is not None:
            self.membership.append((change, event.version.version))

    def entry(self) -> dict[str, Any]:
        key = self.keys.get_key(f"{self.member_id}-governance")
        assert key is not None
        return {
            "member_id": self.member_id,
            "legal_name": legal_name(self.member_id),
            "governance_key": {"kid": key.kid, "jwk": key.public_jwk},
            "endpoint": endpoint(self.member_id),
        }

    @property
    def version(self) -> int | None:
        head = self.service.head()
        return head.version if head else None

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.queues.events() if e["type"] == type_]


class World:
    def __init__(
        self,
        ids: tuple[str, ...] = ("bank-a", "bank-b", "bank-c", "bank-d"),
        timeout: float = 3.0,
        clock: FakeClock | None = None,
    ):
        """``clock``: the world's own, a fixed day by default; a world whose storage real code reads
        afterwards on the system clock (the CLI's, an agent's) passes one that starts now."""
        self.clock = clock or FakeClock()
        self.published = PublishedWorld()
        self.members: dict[str, Member] = {}
        self.genesis = ""
        self.timeout = timeout
        for member_id in ids:
            keys = FakeKeyStore(now=self.clock.now)
            keys.create_key(f"{member_id}-governance", "EC", tags={"kind": "governance"})
            self.members[member_id] = self._member(member_id, keys, FakeStateStore(), FakeQueues())

    def _member(self, member_id: str, keys: FakeKeyStore, state: FakeStateStore, queues: FakeQueues) -> Member:
        events = Events(queues, self.clock)
        introductions = {m: endpoint(m) for m in self.members_ids() if m != member_id}
        service = Consortium(
            identity=Identity(member_id, f"{member_id}-governance", endpoint(member_id)),
            genesis=self.genesis, state=state, public=FakePublicStore(self.published, endpoint(member_id)),
            peers=FakePeerReader(self.published, introductions), keys=keys, clock=self.clock, events=events,
            rejections=Rejections(state, events, self.clock), lifetime=timedelta(days=7),
            timing=agreement.Timing(timeout=self.timeout, jitter=self.timeout),
            jitter=lambda round_, m=member_id: agreement.digest_ballot(m, round_),
        )  # fmt: skip
        member = Member(member_id, service, keys, state, queues)
        service.bus.subscribe(VersionAdopted, member.adopted)
        return member

    def members_ids(self) -> list[str]:
        return sorted(self.members) if hasattr(self, "members") else []

    def found(self, *founders: str) -> chain.Trusted:
        """The ceremony: each founder signs one genesis listing them all, with its own vault's key."""
        entries = [self.members[f].entry() for f in founders]
        unsigned = chain.unsigned_genesis(
            "credit-consortium", entries, convener=founders[0], issued_at=chain_time(self.clock)
        )
        digest = bytes.fromhex(chain.document_hash(unsigned))
        signatures = []
        for f in founders:
            m = self.members[f]
            key = m.keys.get_key(f"{f}-governance")
            assert key is not None
            signatures.append({"member_id": f, "kid": key.kid, "sig": chain.b64u(m.keys.sign(key.kid, digest))})
        genesis = chain.with_signatures(unsigned, signatures)
        self.genesis = chain.document_hash(genesis)
        for m in self.members.values():
            m.service.genesis = self.genesis
            m.service.peers = FakePeerReader(self.published, {o: endpoint(o) for o in self.members if o != m.member_id})
        for f in founders:
            self.members[f].service.pin_genesis(genesis)
        return chain.verify_genesis(self.genesis, genesis)

    def propose_admission(self, member_id: str) -> str:
        m = self.members[member_id]
        proposal_id = f"prop-admit-{member_id}"
        m.service.propose(rules.Proposal(
            proposal_id=proposal_id, kind=chain.Kind.ADMIT, member_id=member_id,
            entry=chain.Member.model_validate(m.entry()), proposer=member_id,
            proposed_at=chain_time(self.clock),
        ))  # fmt: skip
        return proposal_id

    def tick(self, *only: str, seconds: float = 0.5) -> None:
        for member_id in only or sorted(self.members):
            if member_id in self.down:
                continue
            self.members[member_id].service.tick()
        self.clock.advance(seconds)

    down: set[str] = set()  # noqa: RUF012 - replaced per instance by tests that take members down

    def run(self, rounds: int = 20, until: Any = None) -> int:
        for i in range(rounds):
            self.tick()
            if until is not None and until():
                return i + 1
        return rounds

    def versions(self) -> dict[str, int | None]:
        return {m: member.version for m, member in self.members.items()}


def chain_time(clock: FakeClock) -> str:
    return clock.now().isoformat(timespec="seconds").replace("+00:00", "Z")
