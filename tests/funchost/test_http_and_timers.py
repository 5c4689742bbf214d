"""HTTP routes and timers on the local host: routes with parameters, one timer listener across instances."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from .conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("clean_queues")]
NEVER = "0 0 0 1 1 *"


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_an_http_route_passes_route_and_query_parameters(start_host) -> None:
    host = start_host("basic", settings={"TICK_SCHEDULE": NEVER})
    status, body = get(host.port, "/api/echo/bank-a?q=1")
    assert status == 200 and json.loads(body) == {"name": "bank-a", "q": "1"}


def test_an_http_route_refuses_other_methods_and_unknown_paths(start_host) -> None:
    host = start_host("basic", settings={"TICK_SCHEDULE": NEVER})
    request = urllib.request.Request(f"http://127.0.0.1:{host.port}/api/echo/x", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 405
    assert get(host.port, "/api/nowhere")[0] == 404
    status, body = get(host.port, "/admin/host/status")
    assert status == 200 and json.loads(body)["state"] == "Running"


def test_a_timer_runs_on_one_instance_only_when_the_app_is_scaled_out(start_host) -> None:
    host = start_host("basic", instances=2, settings={"TICK_SCHEDULE": "* * * * * *"})
    ticks = wait_for(lambda: [o for o in host.observed() if o["fn"] == "tick"][3:], timeout=30, what="several ticks")
    assert len({t["instance"] for t in ticks}) == 1, "two instances ran the same timer"


def test_a_failing_timer_is_retried_by_its_retry_policy_then_given_up(start_host) -> None:
    host = start_host("basic", settings={"TICK_SCHEDULE": "*/30 * * * * *", "TICK_FAILS": "1"})

    def ticks() -> list[dict[str, object]]:
        return [o for o in host.observed() if o["fn"] == "tick"]

    attempts = wait_for(lambda: len(ticks()) >= 3 and ticks(), timeout=45, what="three attempts")
    assert [a["retry_count"] for a in attempts[:3]] == [0, 1, 2]
