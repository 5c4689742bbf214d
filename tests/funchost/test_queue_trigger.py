"""Queue triggers on the local host behave as the Storage queues extension does, against Azurite."""

from __future__ import annotations

import base64
import itertools
import json

import pytest

from .conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_queues")]


def test_a_message_that_succeeds_is_deleted_and_its_output_binding_sent(start_host) -> None:
    host = start_host("basic")
    host.send("in-ok", "hello")
    outputs = wait_for(lambda: host.drain("out-ok"), what="the output message")
    assert [json.loads(o) for o in outputs] == [{"echo": "hello"}]
    seen = wait_for(lambda: [o for o in host.observed() if o["fn"] == "ok"], what="the invocation")
    assert seen[0]["dequeue_count"] == 1 and seen[0]["id"] and seen[0]["inserted"]
    wait_for(lambda: host.count("in-ok") == 0, what="the message to be deleted")


def test_a_failing_message_reappears_after_the_visibility_timeout_and_is_poisoned_after_max_dequeue(start_host) -> None:
    host = start_host("basic")
    host.send("in-fail", "doomed")
    poisoned = wait_for(lambda: host.drain("in-fail-poison"), timeout=45, what="the poison message")
    assert poisoned == ["doomed"]
    attempts = [o for o in host.observed() if o["fn"] == "fail"]
    assert [a["dequeue_count"] for a in attempts] == [1, 2, 3]  # maxDequeueCount is 3 in the test host.json
    assert len({a["id"] for a in attempts}) == 1
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    assert all(gap >= 0.9 for gap in gaps), f"a retry came before visibilityTimeout (1 s): {gaps}"
    assert host.count("in-fail") == 0
    assert host.drain("out-fail") == [], "outputs of a failed invocation must never be sent"
    assert '"outcome": "Poisoned"' in host.log_text()


def test_a_return_value_output_is_sent_only_when_the_function_succeeds(start_host) -> None:
    host = start_host("basic")
    host.send("in-ret", "shout")
    host.send("in-ret", "boom")
    assert wait_for(lambda: host.drain("out-ret"), what="the return output") == ["SHOUT"]
    wait_for(lambda: host.drain("in-ret-poison"), timeout=45, what="the failing message in poison")
    assert host.drain("out-ret") == []


def test_base64_messages_are_decoded_and_outputs_encoded_by_default(start_host) -> None:
    host = start_host("b64")
    host.send("in-b64", base64.b64encode(b"caf\xc3\xa9").decode())
    out = wait_for(lambda: host.drain("out-b64"), what="the base64 output")
    assert base64.b64decode(out[0]).decode() == "got café"


def test_a_message_that_is_not_base64_goes_straight_to_poison_without_running(start_host) -> None:
    host = start_host("b64")
    host.send("in-b64", "{not base64!}")
    assert wait_for(lambda: host.drain("in-b64-poison"), what="the undecodable message in poison") == ["{not base64!}"]
    assert host.drain("out-b64") == []
    assert "Message decoding has failed" in host.log_text()


def test_a_graceful_stop_lets_a_running_invocation_finish(start_host) -> None:
    host = start_host("basic")
    host.send("in-slow", "2")
    wait_for(lambda: any(o.get("phase") == "started" for o in host.observed()), what="the slow function to start")
    assert host.stop() == 0
    assert any(o.get("phase") == "finished" for o in host.observed())
    assert host.count("in-slow") == 0, "a finished invocation's message is deleted before the host exits"
