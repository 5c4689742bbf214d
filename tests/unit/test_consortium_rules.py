"""The consortium service's small rules, one named row per boundary: which head a proposal counts
from, where a subject's pre-signature is read, and whether a change on the next version is under way."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shared.decisions import chain
from shared.decisions import consortium as rules

AT = "2026-11-28T10:00:00Z"
H0, H1, H2 = "0" * 64, "1" * 64, "2" * 64


def proposal(kind: str, member_id: str, proposer: str, proposal_id: str = "prop-1") -> rules.Proposal:
    return rules.Proposal(
        proposal_id=proposal_id, kind=chain.Kind(kind), member_id=member_id, proposer=proposer, proposed_at=AT
    )


# --- which head a proposal counts from ----------------------------------------------------------


@dataclass(frozen=True)
class CountsRow:
    why: str
    proposal: rules.Proposal
    publisher: str
    counts: bool
    reason: rules.Source


COUNTS = [
    CountsRow("an admission counts from the head of the newcomer who asks", proposal("admit", "bank-c", "bank-c"),
              "bank-c", True, rules.Source.OWN_CHANGE),
    CountsRow("a leave counts from the head of the member leaving", proposal("leave", "bank-b", "bank-b"),
              "bank-b", True, rules.Source.OWN_CHANGE),
    CountsRow("a rotate counts from the head of the member rotating", proposal("rotate", "bank-b", "bank-b"),
              "bank-b", True, rules.Source.OWN_CHANGE),
    CountsRow("a removal counts from the head of the member proposing it", proposal("remove", "bank-c", "bank-a"),
              "bank-a", True, rules.Source.REMOVAL),
    CountsRow("a proposal copied into another member's head is not that member's to make",
              proposal("admit", "bank-c", "bank-c"), "bank-a", False, rules.Source.NOT_PROPOSER),
    CountsRow("no one asks for another's admission", proposal("admit", "bank-c", "bank-a"), "bank-a", False,
              rules.Source.ON_BEHALF),
    CountsRow("no one leaves on another's behalf (that is a removal)", proposal("leave", "bank-c", "bank-a"),
              "bank-a", False, rules.Source.ON_BEHALF),
    CountsRow("a member never removes itself (it leaves)", proposal("remove", "bank-a", "bank-a"), "bank-a", False,
              rules.Source.SELF_REMOVAL),
]  # fmt: skip


@pytest.mark.parametrize("row", COUNTS, ids=[r.why for r in COUNTS])
def test_which_head_a_proposal_counts_from(row: CountsRow) -> None:
    counted = rules.counts_from(row.proposal, row.publisher)
    assert (counted.counts, counted.reason) == (row.counts, row.reason)
    assert counted.message


# --- where a subject's pre-signature is read ----------------------------------------------------


def presigned(proposal_id: str = "prop-1", digest: str = H1) -> rules.Presigned:
    return rules.Presigned(proposal_id=proposal_id, base=H0, hash=digest, signatures=())


@dataclass(frozen=True)
class PresignRow:
    why: str
    subject: str
    own: tuple[rules.Presigned, ...]
    published: dict[str, tuple[rules.Presigned, ...]]
    digest: str | None
    reason: rules.Presign
    found: bool


PRESIGN = [
    PresignRow("this member's own change: its own stored pre-signature", "bank-a", (presigned(),),
               {"bank-a": ()}, None, rules.Presign.OWN, True),
    PresignRow("this member's own change it has not pre-signed: none, whatever its head says", "bank-a", (),
               {"bank-a": (presigned(),)}, None, rules.Presign.NONE, False),
    PresignRow("another member's change: what its verified head publishes", "bank-c", (),
               {"bank-c": (presigned(),)}, None, rules.Presign.PUBLISHED, True),
    PresignRow("a subject whose head is not read yet has nothing to use", "bank-c", (presigned(),), {}, None,
               rules.Presign.NO_HEAD, False),
    PresignRow("a head with pre-signatures of other proposals only has none for this one", "bank-c", (),
               {"bank-c": (presigned("prop-2"),)}, None, rules.Presign.NONE, False),
    PresignRow("assembling: a pre-signature of the very document chosen is used", "bank-c", (),
               {"bank-c": (presigned(digest=H1),)}, H1, rules.Presign.PUBLISHED, True),
    PresignRow("assembling: a pre-signature of another document (another base) is not", "bank-c", (),
               {"bank-c": (presigned(digest=H2),)}, H1, rules.Presign.OTHER_DOCUMENT, False),
    PresignRow("assembling this member's own change: its own, of the document chosen", "bank-a",
               (presigned(digest=H2),), {}, H1, rules.Presign.OTHER_DOCUMENT, False),
]  # fmt: skip


@pytest.mark.parametrize("row", PRESIGN, ids=[r.why for r in PRESIGN])
def test_where_a_subjects_presignature_is_read(row: PresignRow) -> None:
    found = rules.presignature(
        proposal("admit", row.subject, row.subject), me="bank-a", own=row.own, published=row.published,
        digest=row.digest,
    )  # fmt: skip
    assert found.reason is row.reason
    assert (found.presigned is not None) == row.found
    assert found.signatures == (found.presigned.signatures if found.presigned else ())


# --- whether a change is under way --------------------------------------------------------------


def record(version: int = 4, base: str = H0, *, accepted: bool = False, leading: bool = False) -> rules.RecordModel:
    ballot = rules.Ballot(round=1, member_id="bank-a")
    value = rules.Value(proposal_id="prop-1", hash=H1, proposed_at=AT)
    return rules.RecordModel(
        version=version, base=base, accepted=rules.Accepted(ballot=ballot, value=value) if accepted else None,
        leading=ballot if leading else None,
    )  # fmt: skip


def final(version: int = 4) -> rules.Final:
    return rules.Final(
        version=version,
        hash=H1,
        signature=chain.Signature(
            member_id="bank-a", kid="https://vault.example/keys/bank-a-governance/" + "0" * 32, sig="A" * 86
        ),
    )


@dataclass(frozen=True)
class FlightRow:
    why: str
    says: tuple[rules.Says, ...]
    standings: tuple[rules.Standing, ...]
    reason: rules.Flight


FLIGHT = [
    FlightRow("nothing said and nothing proposed: idle", (), (), rules.Flight.IDLE),
    FlightRow("an eligible proposal is under way", (), (rules.Standing.ELIGIBLE,), rules.Flight.OPEN_PROPOSAL),
    FlightRow("a proposal gathering approvals is under way (the decisions come while others move)", (),
              (rules.Standing.AWAITING_APPROVALS,), rules.Flight.OPEN_PROPOSAL),
    FlightRow("a proposal waiting for its subject's signature is under way", (),
              (rules.Standing.AWAITING_SIGNATURE,), rules.Flight.OPEN_PROPOSAL),
    FlightRow("rejected, expired, inapplicable and done proposals are not",  (),
              (rules.Standing.REJECTED, rules.Standing.EXPIRED, rules.Standing.DOES_NOT_APPLY, rules.Standing.DONE),
              rules.Flight.IDLE),
    FlightRow("an accepted ballot on the next version over this base", (rules.Says(record(accepted=True)),), (),
              rules.Flight.BALLOT),
    FlightRow("a leader's ballot on the next version over this base", (rules.Says(record(leading=True)),), (),
              rules.Flight.BALLOT),
    FlightRow("a record that only promised has no ballot under way", (rules.Says(record()),), (),
              rules.Flight.IDLE),
    FlightRow("a ballot over another base is not this version's", (rules.Says(record(base=H2, accepted=True)),),
              (), rules.Flight.IDLE),
    FlightRow("a ballot on an older version is over", (rules.Says(record(version=3, accepted=True)),), (),
              rules.Flight.IDLE),
    FlightRow("a final signature of the next version", (rules.Says(final=final()),), (),
              rules.Flight.FINAL_SIGNATURE),
    FlightRow("a final signature of the version already adopted is over", (rules.Says(final=final(3)),), (),
              rules.Flight.IDLE),
]  # fmt: skip


@pytest.mark.parametrize("row", FLIGHT, ids=[r.why for r in FLIGHT])
def test_whether_a_change_on_the_next_version_is_under_way(row: FlightRow) -> None:
    decided = rules.in_flight(4, H0, row.says, row.standings)
    assert decided.reason is row.reason
    assert decided.in_flight == (row.reason is not rules.Flight.IDLE)
