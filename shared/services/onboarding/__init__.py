"""One member's own onboarding and offboarding, as small idempotent steps, each one queue message.

    onboarding-requests  → intake    validate (this deployment's member only), dedupe by request_id
    onboarding-keys      → keys      identity, TLS and governance keys in this member's own vault
    onboarding-provision → provision this member's own scale set, at capacity 0 until it is admitted
    onboarding-propose   → propose   ask the consortium: an ``admit`` proposal in its published head
                                     (a founder that the genesis lists goes straight on to activate)
    onboarding-activate  → activate  a verified version admits it: capacity to node_count, active
    onboarding-approvals → decide    this member's operator's decision on a proposal, signed by the
                                     member's deployment with its own key in its head
    offboarding-requests → offboard  a ``leave`` (this member) or ``remove`` (another) proposal
    onboarding-retire    → retire    a verified version takes this member out: capacity 0, keys
                                     disabled (never deleted)

Every step first looks whether its effect is there, acts, records on the member record (If-Match),
then emits the next step; a crash between any two is repaired by redelivery. The chain, not this
deployment, decides membership: activate and retire are posted by the consortium tick when it adopts
a version about this member. Bad input returns after recording a rejection; transient faults raise so
the host retries and finally poisons; ``record_poison`` marks the member failed, and a replayed message
resumes the workflow where its record says it stands.

``Onboarding`` is a thin front over parts with one job each: ``intake`` (requests taken in or
resumed), ``steps`` (the setup steps, activate and retire), ``governance`` (decisions and offboarding)
and ``poison`` (``shared/services/poison.py``: every poison rule in one place); all of them work on the
member record through ``shared/services/member_record.py``. What a version adopted means here is the
membership sync's (``shared/services/membership_sync.py``), which the consortium service's announcements
reach without either service knowing the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.ports.clock import Clock
from shared.ports.keys import KeyStore
from shared.ports.leases import LeaseStore
from shared.ports.queues import MessageSender
from shared.ports.scalesets import ScaleSets
from shared.ports.state import StateStore
from shared.services.consortium import Consortium
from shared.services.member_record import (
    APPROVALS,
    FOLLOWS,
    OFFBOARDING,
    QUEUES,
    REQUESTS,
    STEP_QUEUES,
    STEPS,
    Action,
    MemberRecord,
    Outcome,
)
from shared.services.membership_sync import RECHECK_MAX_SECONDS, RECHECK_SECONDS, MembershipSync
from shared.services.onboarding.governance import Governance
from shared.services.onboarding.intake import RequestIntake
from shared.services.onboarding.steps import MAX_POLLS, SetupSteps
from shared.services.poison import PoisonRecorder
from shared.services.records import Events, Rejections

__all__ = [
    "APPROVALS", "FOLLOWS", "MAX_POLLS", "OFFBOARDING", "QUEUES", "RECHECK_MAX_SECONDS", "RECHECK_SECONDS",
    "REQUESTS", "STEPS", "STEP_QUEUES", "Action", "Onboarding", "Outcome",
]  # fmt: skip


@dataclass
class Onboarding:
    member_id: str
    state: StateStore
    keys: KeyStore
    scalesets: ScaleSets
    queues: MessageSender
    leases: LeaseStore
    clock: Clock
    consortium: Consortium
    template: str
    holder: str
    lease_seconds: int = 15
    poll_seconds: int = 10
    #: The private ``node-infos-inbox`` container's URL, for the node agents' config (``node_config``).
    inbox_url: str = ""
    events: Events = field(init=False)
    rejections: Rejections = field(init=False)
    records: MemberRecord = field(init=False, repr=False)
    requests: RequestIntake = field(init=False, repr=False)
    steps: SetupSteps = field(init=False, repr=False)
    governance: Governance = field(init=False, repr=False)
    poison: PoisonRecorder = field(init=False, repr=False)
    #: What a version adopted about this member means here; ``shared/bootstrap.py`` subscribes it to
    #: the consortium's announcements.
    membership: MembershipSync = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.events = Events(self.queues, self.clock)
        self.rejections = Rejections(self.state, self.events, self.clock)
        me = self.member_id
        self.records = MemberRecord(me, self.state, self.queues, self.clock, self.events, self.rejections)
        self.requests = RequestIntake(me, self.state, self.clock, self.records, self._listed_name)
        self.steps = SetupSteps(
            me, self.records, self.keys, self.scalesets, self.leases, self.clock, self.consortium, self.template,
            self.holder, self.lease_seconds, self.poll_seconds, self.inbox_url,
        )  # fmt: skip
        self.governance = Governance(me, self.records, self.clock, self.consortium)
        self.poison = PoisonRecorder(me, self.state, self.clock, self.records)
        self.membership = MembershipSync(me, self.records, self.clock)

    def record(self) -> dict[str, Any] | None:
        return self.records.read()

    def _listed_name(self, member_id: str) -> str | None:
        """The legal name this deployment's verified head lists for ``member_id`` (None: not listed, no head)."""
        head = self.consortium.head()
        entry = head.document.member(member_id) if head else None
        return entry.legal_name if entry else None

    def entry(self, record: dict[str, Any]) -> dict[str, Any]:
        """This member's entry in the chain: its legal name, governance key and published container."""
        return self.steps.entry(record)

    def intake(self, raw: str | bytes) -> Outcome:
        return self.requests.intake(raw)

    def step(self, raw: str | bytes, expected: str) -> Outcome:
        return self.steps.step(raw, expected)

    def decide(self, raw: str | bytes) -> Outcome:
        """This member's operator approves or refuses a proposal it knows and that is still open."""
        return self.governance.decide(raw)

    def offboard(self, raw: str | bytes) -> Outcome:
        return self.governance.offboard(raw)

    def note_failure(self, raw: str | bytes, error: Exception) -> None:
        return self.poison.note_failure(raw, error)

    def record_poison(self, queue: str, raw: str | bytes, message_id: str, dequeue_count: int) -> Outcome:
        return self.poison.record_poison(queue, raw, message_id, dequeue_count)
