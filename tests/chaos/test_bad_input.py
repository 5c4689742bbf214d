"""Bad input through the queues, the HTTP port and the command line of the live stack.

Queues: at least 200 messages, hand-written and drawn by hypothesis, on every queue the app reads; each
must end as one recorded rejection with the reason the contract gives, none may reach a poison queue,
and good requests posted among them still finish. HTTP: malformed methods, paths, query strings,
headers and lengths get an answer (4xx, or 501 for a method nobody serves) and every instance keeps
serving. CLI: bad arguments exit 2 with a one-line reason naming the field or the rule.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.chaos.conftest import ChaosSession
from tools.chaos import (
    CLI_CASES,
    QUEUE_MODELS,
    queue_corpus,
    run_cli_cases,
    run_http_cases,
    run_queue_corpus,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_corpus_has_200_cases_on_every_queue_hand_written_and_generated() -> None:
    cases = queue_corpus()
    assert len(cases) >= 200
    assert set(Counter(q for q, _, _ in cases)) == set(QUEUE_MODELS)
    reasons = Counter(reason for _, _, reason in cases)
    assert {"not_json", "schema", "oversize", "wrong_queue", "unknown_request", "unknown_member", "not_active"} <= set(
        reasons
    )
    assert queue_corpus() == cases, "the generated part is the same on every run (seeded)"


def test_every_bad_message_is_rejected_once_with_its_reason_and_nothing_is_poisoned(chaos: ChaosSession) -> None:
    cases = queue_corpus()
    result = run_queue_corpus(chaos.stack, cases, chaos.good)
    assert result.tried == len(cases) >= 200
    assert result.lost == [], "bad messages that left no rejection record"
    assert result.wrong_reason == []
    assert result.poisoned == []
    platform = chaos.stack.platform
    for member in chaos.good:
        wait_until(f"{member} active", lambda m=member: (d := platform.state.read(f"members/{m}.json")) and
                   d.body["status"] == "active", timeout=90)  # fmt: skip
    assert chaos.stack.host_crashes() == []


def test_malformed_http_gets_an_answer_and_every_instance_keeps_serving(chaos: ChaosSession) -> None:
    result = run_http_cases(chaos.stack)
    assert result.tried >= 30 * len(chaos.stack.instances)
    assert result.lost == []
    assert result.wrong_reason == []
    assert chaos.stack.host_crashes() == []


def test_bad_command_lines_exit_2_naming_the_field_or_rule(chaos: ChaosSession) -> None:
    cases = CLI_CASES if chaos.long else CLI_CASES[::2]
    result = run_cli_cases(chaos.stack, cases)
    assert result.tried == len(cases)
    assert result.wrong_reason == []
