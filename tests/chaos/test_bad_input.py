"""Bad input through each member's own queues, every deployment's HTTP port and the command line.

Queues: at least 200 messages, hand-written and drawn by hypothesis, on every queue the app reads,
spread over the four members; each must end as one recorded rejection with the reason the contract
gives, in that member's own storage; none may reach a poison queue; nothing may change (each member's
chain, proposals, approvals, record, vault and scale set). HTTP: malformed methods, paths, query
strings, headers and lengths get an answer (4xx, or 501 for a method nobody serves) and every
deployment keeps serving (the short run: one deployment of each member). CLI: bad arguments exit 2
with a one-line reason naming the field or the rule.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.chaos.conftest import ChaosSession
from tools.chaos import CLI_CASES, MEMBERS, QUEUE_MODELS, queue_corpus, run_cli_cases, run_http_cases, run_queue_corpus

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_corpus_covers_every_queue_and_member_hand_written_and_generated() -> None:
    cases = queue_corpus(80)
    assert len(cases) >= 200
    assert set(Counter(q for _, q, _, _ in cases)) == set(QUEUE_MODELS)
    assert set(Counter(m for m, _, _, _ in cases)) == set(MEMBERS)
    reasons = Counter(reason for *_, reason in cases)
    assert {"not_json", "schema", "oversize", "wrong_queue", "not_this_member", "unknown_proposal", "not_a_member",
            "not_active"} <= set(reasons)  # fmt: skip
    assert queue_corpus(80) == cases, "the generated part is the same on every run (seeded)"


def test_every_bad_message_is_refused_once_with_its_reason_and_changes_nothing(chaos: ChaosSession) -> None:
    cases = queue_corpus(chaos.generated)
    result = run_queue_corpus(chaos.stack, cases)
    assert result.tried == len(cases) >= 200
    assert result.lost == [], "bad messages that left no rejection record"
    assert result.wrong_reason == []
    assert result.poisoned == []
    assert result.changed == []
    assert chaos.stack.host_crashes() == []


def test_malformed_http_gets_an_answer_and_every_deployment_keeps_serving(chaos: ChaosSession) -> None:
    result = run_http_cases(chaos.stack, every_deployment=chaos.long)
    assert result.tried >= 30 * len(MEMBERS)
    assert result.lost == []
    assert result.wrong_reason == []
    assert chaos.stack.host_crashes() == []


def test_bad_command_lines_exit_2_naming_the_field_or_rule(chaos: ChaosSession) -> None:
    cases = CLI_CASES if chaos.long else CLI_CASES[::3]
    result = run_cli_cases(chaos.stack, cases)
    assert result.tried == len(cases)
    assert result.wrong_reason == []
    assert result.changed == []
