"""A step's next message goes to its function's queue output binding; anything else by the SDK."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from azure.functions.queue import QueueMessage

import functions.onboarding as handlers
from shared.errors import TransientError
from shared.fakes.queues import FakeQueues
from shared.services import onboarding as ob
from shared.services import outbox
from tools.funchost.invoke import Out


@pytest.fixture
def queues(monkeypatch: pytest.MonkeyPatch) -> FakeQueues:
    fake = FakeQueues()
    monkeypatch.setattr(handlers, "platform", lambda: SimpleNamespace(queues=fake))
    return fake


def message() -> QueueMessage:
    return QueueMessage(id="m1", body=b'{"request_id":"r1","member_id":"bank-a","step":"keys"}', dequeue_count=1)


def test_the_next_step_goes_to_the_binding_and_other_queues_by_the_sdk(queues: FakeQueues) -> None:
    def work(body: bytes) -> ob.Outcome:
        assert outbox.offer(handlers.PROVISION, "next")
        assert outbox.offer(handlers.PROPOSE, "elsewhere")  # e.g. a resumed member's later step
        return ob.Outcome("keys", "done", "bank-a")

    next_step: Out[list[str]] = Out()
    handlers._handle(message(), handlers.KEYS, work, next_step, handlers.PROVISION)
    assert next_step.get() == ["next"]
    assert [(s.queue, s.body) for s in queues.sent] == [(handlers.PROPOSE, "elsewhere")]


def test_a_step_that_fails_posts_nothing_and_its_redelivery_posts_again(queues: FakeQueues) -> None:
    def work(body: bytes) -> ob.Outcome:
        outbox.offer(handlers.PROVISION, "next")
        raise TransientError("storage is throttling")

    next_step: Out[list[str]] = Out()
    with pytest.raises(TransientError):
        handlers._handle(message(), handlers.KEYS, work, next_step, handlers.PROVISION)
    assert next_step.get() is None and queues.sent == []


def test_outside_a_function_the_service_sends_itself() -> None:
    assert not outbox.offer(handlers.PROVISION, "x")
    with outbox.collecting() as box:
        assert outbox.offer(handlers.PROVISION, "x")
    assert box == [(handlers.PROVISION, "x")] and not outbox.offer(handlers.PROVISION, "y")
