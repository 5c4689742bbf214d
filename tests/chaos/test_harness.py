"""The harness's own judgements, without a stack: what counts as a fork, a change, and which reason is due."""

from __future__ import annotations

import json
import time
from pathlib import Path

from shared.services import onboarding as ob
from shared.services import rotation
from tools.chaos import MemberStack, Observer, changed_between, expected_reason, good_message


def test_two_documents_of_one_version_anywhere_are_a_fork_and_so_is_a_deployment_reporting_one(tmp_path: Path) -> None:
    observer = Observer(MemberStack(tmp_path), time.monotonic())
    observer.documents = {0: {"g": {"bank-a", "bank-b"}}, 1: {"x": {"bank-a"}, "y": {"bank-c"}}}
    observer.forks = {"bank-d": '{"version": 1}'}
    found = observer.violations()
    assert len(found) == 2
    assert "version 1 exists as 2 different documents" in found[0] and "bank-c" in found[0]
    assert found[1].startswith("fork: bank-d's deployment reports a fork")
    observer.documents, observer.forks = {0: {"g": {"bank-a"}}, 1: {"x": {"bank-a", "bank-c"}}}, {}
    assert observer.violations() == []


def test_a_change_names_the_member_and_what_changed() -> None:
    before = {"bank-a": {"chain": ["g"], "capacity": 2}, "bank-c": {"chain": ["g"], "capacity": None}}
    after = {"bank-a": {"chain": ["g"], "capacity": 2}, "bank-c": {"chain": ["g", "h"], "capacity": None}}
    assert changed_between(before, after) == ["bank-c: chain changed from ['g'] to ['g', 'h']"]


def test_the_reason_due_depends_on_the_member_whose_queue_it_is() -> None:
    leave = json.dumps({"request_id": "off-1", "reason": "r"})
    assert expected_reason(ob.OFFBOARDING, leave, "bank-a") is None, "a founder's own leave is good input"
    assert expected_reason(ob.OFFBOARDING, leave, "bank-c") == "not_a_member"
    rotate = json.dumps({"request_id": "rot-1", "force": True})
    assert expected_reason(rotation.REQUESTS, rotate, "bank-a") is None
    assert expected_reason(rotation.REQUESTS, rotate, "bank-d") == "not_active"
    own = json.dumps({**good_message(ob.REQUESTS), "member_id": "bank-c"})
    assert expected_reason(ob.REQUESTS, own, "bank-c") is None
    assert expected_reason(ob.REQUESTS, own, "bank-d") == "not_this_member"
    assert expected_reason(ob.APPROVALS, json.dumps(good_message(ob.APPROVALS)), "bank-b") == "unknown_proposal"
    assert expected_reason(ob.APPROVALS, "not json", "bank-b") == "not_json"
    step = json.dumps({"request_id": "r", "member_id": "bank-a", "step": "keys"})
    assert expected_reason(ob.STEP_QUEUES["keys"], step, "bank-a") is None
    assert expected_reason(ob.STEP_QUEUES["provision"], step, "bank-a") == "wrong_queue"
    assert expected_reason(ob.STEP_QUEUES["keys"], step, "bank-b") == "wrong_queue"
