"""The onboarding steps' rules on the member record, one named row per boundary: where a setup
resumes, whether a poisoned message fails the member, and what a verified version's kind means."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from shared.decisions import chain
from shared.decisions.onboarding import (
    CHANGE_OF_KIND,
    Change,
    Poison,
    Resume,
    Status,
    decide_poison,
    decide_resume,
    status_of,
)

KEYS = {"keys": "t"}
SET_UP = {"keys": "t", "provision": "t", "propose": "t"}


def member(status: str, steps: dict[str, str] | None = None, request_id: str = "r1") -> dict[str, Any]:
    return {"member_id": "bank-c", "status": status, "steps": steps or {}, "request_id": request_id}


@dataclass(frozen=True)
class ResumeRow:
    why: str
    record: dict[str, Any]
    arrived: str | None
    action: Resume
    step: str | None
    reopen: bool


RESUME = [
    ResumeRow("a request again while pending posts the first step not done", member("pending", KEYS), None,
              Resume.AT_STEP, "provision", False),
    ResumeRow("a request again with every setup step done proposes again and waits", member("pending", SET_UP),
              None, Resume.WAITING, "propose", False),
    ResumeRow("a request again for a failed member reopens it where its record stands", member("failed", KEYS),
              None, Resume.AT_STEP, "provision", True),
    ResumeRow("a request again for an active member repairs nothing", member("active", SET_UP), None,
              Resume.NOTHING, None, False),
    ResumeRow("a request again for a member that left repairs nothing", member("left", SET_UP), None,
              Resume.NOTHING, None, False),
    ResumeRow("a step for a member not failed runs as it came", member("pending", KEYS), "provision",
              Resume.GOES_ON, "provision", False),
    ResumeRow("a late copy of a done step resumes a failed member at the first step not done (issue 19)",
              member("failed", KEYS), "keys", Resume.AT_STEP, "provision", True),
    ResumeRow("a failed member whose steps are all done resumes at propose", member("failed", SET_UP), "provision",
              Resume.AT_STEP, "propose", True),
    ResumeRow("the step that is the first not done runs, the member reopened", member("failed", KEYS), "provision",
              Resume.GOES_ON, "provision", True),
    ResumeRow("a propose step for a failed member runs (it follows no other step)", member("failed", KEYS),
              "propose", Resume.GOES_ON, "propose", True),
]  # fmt: skip


@pytest.mark.parametrize("row", RESUME, ids=[r.why for r in RESUME])
def test_where_a_setup_resumes(row: ResumeRow) -> None:
    decision = decide_resume(row.record, arrived=row.arrived)
    assert (decision.action, decision.step, decision.reopen) == (row.action, row.step, row.reopen)
    assert decision.message


@dataclass(frozen=True)
class PoisonRow:
    why: str
    record: dict[str, Any] | None
    governance: bool
    request_id: str | None
    reason: Poison


POISON = [
    PoisonRow("a setup step of the current request fails a pending member", member("pending"), False, "r1",
              Poison.FAILS),
    PoisonRow("a failed member stays failed, with the newer reason", member("failed"), False, "r1", Poison.FAILS),
    PoisonRow("a message without a readable request id fails the member it is on", member("pending"), False, None,
              Poison.FAILS),
    PoisonRow("without a member record there is nothing to fail", None, False, "r1", Poison.NO_RECORD),
    PoisonRow("a decision or an offboarding request fails no setup", member("pending"), True, "r1",
              Poison.GOVERNANCE),
    PoisonRow("a message of an older request leaves the current one alone", member("pending"), False, "r0",
              Poison.OTHER_REQUEST),
    PoisonRow("an active member is not failed by a late poisoned step", member("active"), False, "r1",
              Poison.MOVED_ON),
    PoisonRow("a member that left is not failed either", member("left"), False, "r1", Poison.MOVED_ON),
]  # fmt: skip


@pytest.mark.parametrize("row", POISON, ids=[r.why for r in POISON])
def test_whether_a_poisoned_message_fails_the_member(row: PoisonRow) -> None:
    decision = decide_poison(row.record, governance=row.governance, request_id=row.request_id)
    assert decision.reason is row.reason
    assert decision.fails == (row.reason is Poison.FAILS)


@pytest.mark.parametrize(
    ("kind", "change"),
    [(chain.Kind.GENESIS, Change.GENESIS), (chain.Kind.ADMIT, Change.ADMITTED), (chain.Kind.LEAVE, Change.LEFT),
     (chain.Kind.REMOVE, Change.REMOVED), (chain.Kind.ROTATE, Change.ROTATED)],
)  # fmt: skip
def test_every_kind_of_version_names_one_change_for_its_member(kind: chain.Kind, change: Change) -> None:
    assert CHANGE_OF_KIND[kind] is change


def test_a_record_status_this_code_does_not_know_is_no_status() -> None:
    assert status_of({"status": "active"}) is Status.ACTIVE
    assert status_of({"status": "dormant"}) is None
    assert status_of(None) is None
    assert status_of({"status": 3}) is None
