"""The status HTTP functions and the dashboard page, on the fakes: what they answer, without a host.

The functions are called as the worker calls them, with ``platform()`` swapped for one built on the
in-memory fakes; the local host's routing is exercised through ``tools.funchost.http.HttpRoutes``
to show that FUNCTION-level routes answer locally without a key, as under Core Tools.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest

from functions import status_http
from shared.errors import TransientError
from shared.fakes.clock import FakeClock
from shared.fakes.leases import FakeLeaseStore
from shared.fakes.queues import FakeQueues
from shared.fakes.state import FakeStateStore
from shared.services.autoscale import STATE_PATH
from shared.services.dashboard import scaling_view
from shared.services.leadership import COORDINATOR
from shared.services.status import build_status
from shared.settings import local_defaults

ROOT = Path(__file__).resolve().parents[2]


def decision(member: str, at: str, before: int, after: int, reason: str, tpm: float | None) -> dict[str, Any]:
    return {
        "at": at, "member_id": member, "action": "scale_out" if after > before else "hold", "capacity": after,
        "target": after, "reason": reason, "message": f"{reason} for {member}", "desired": after,
        "inputs": {"capacity": before, "cpu_percent": 80.0, "tpm": tpm, "partial": tpm is None, "protected": None,
                   "warming": 0},
        "applied": after != before,
    }  # fmt: skip


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    clock = FakeClock()
    w = SimpleNamespace(state=FakeStateStore(), leases=FakeLeaseStore(clock.now), queues=FakeQueues(), clock=clock)
    for member, status in (("bank-a", "active"), ("bank-b", "failed")):
        w.state.create(
            f"members/{member}.json",
            {"member_id": member, "status": status, "legal_name": f"O={member}, L=Oslo, C=NO",
             "scale": {"min_nodes": 1, "max_nodes": 6}, "keys": {}},
        )  # fmt: skip
    w.leases.try_acquire(COORDINATOR, "local/vm-0", 15)
    change = decision("bank-a", "2025-01-01T10:00:00Z", 2, 4, "scale_out", 3600.0)
    hold = decision("bank-a", "2025-01-01T10:00:10Z", 4, 4, "within_tolerance", 3500.0)
    w.state.create(STATE_PATH, {"updated_at": hold["at"], "last": {"vmss-bank-a": hold}, "recent": [change]})
    w.queues.send("onboarding-keys-poison", "{}")
    monkeypatch.setattr(status_http, "platform", lambda: w)
    return w


def get(function: Any, route: str) -> func.HttpResponse:
    response = function(func.HttpRequest("GET", f"http://localhost/api/{route}", body=b""))
    assert isinstance(response, func.HttpResponse)
    return response


def test_the_status_function_serves_the_status_model_as_build_status_makes_it(world: SimpleNamespace) -> None:
    response = get(status_http.status, "status")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    served = json.loads(response.get_body())
    expected = build_status(world.state, world.leases, world.queues.count)
    assert set(served) == set(expected)
    assert served["members"] == expected["members"]
    assert served["coordinator"]["holder"] == "local/vm-0"
    assert served["poison"]["onboarding-keys-poison"] == 1


def test_a_storage_outage_answers_503_with_the_reason_for_the_banner(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(path: str) -> None:
        raise TransientError("storage is throttling", retry_after=7)

    monkeypatch.setattr(world.state, "list_paths", down)
    monkeypatch.setattr(world.state, "read", down)
    for function, route in ((status_http.status, "status"), (status_http.status_autoscale, "status/autoscale")):
        response = get(function, route)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "7"
        assert "storage is throttling" in json.loads(response.get_body())["error"]


def test_the_autoscale_view_flattens_each_decision_with_its_inputs(world: SimpleNamespace) -> None:
    view = json.loads(get(status_http.status_autoscale, "status/autoscale").get_body())
    assert view == scaling_view(world.state)
    last = view["sets"]["vmss-bank-a"]
    assert (last["capacity"], last["before"], last["tpm"], last["cpu_percent"]) == (4, 4, 3500.0, 80.0)
    assert last["reason"] == "within_tolerance" and last["applied"] is False
    [change] = view["recent"]
    assert (change["scale_set"], change["before"], change["capacity"], change["tpm"]) == ("vmss-bank-a", 2, 4, 3600.0)


def test_the_autoscale_view_of_an_empty_state_is_empty() -> None:
    assert scaling_view(FakeStateStore()) == {"updated_at": None, "sets": {}, "recent": []}


def test_recorded_changes_come_newest_first_and_odd_inputs_become_none() -> None:
    state = FakeStateStore()
    old = decision("bank-a", "2025-01-01T10:00:00Z", 2, 3, "scale_out", 100.0)
    new = {**decision("bank-a", "2025-01-01T10:01:00Z", 3, 4, "saturated", None), "inputs": {"cpu_percent": True}}
    state.create(STATE_PATH, {"recent": [old, new], "last": {}})
    view = scaling_view(state)
    assert [r["at"] for r in view["recent"]] == [new["at"], old["at"]]
    assert view["recent"][0]["cpu_percent"] is None and view["recent"][0]["before"] == 4


def test_the_dashboard_is_one_page_whose_inline_script_and_style_the_policy_allows_by_hash() -> None:
    status_http.page.cache_clear()
    response = get(status_http.dashboard, "dashboard")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_body().decode()
    csp = response.headers["Content-Security-Policy"]
    [script] = re.findall(r"<script>(.*?)</script>", html, re.S)
    [style] = re.findall(r"<style>(.*?)</style>", html, re.S)

    def sha(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert f"script-src {sha(script)}" in csp and f"style-src {sha(style)}" in csp
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "{{" not in html, "every placeholder is filled"


def test_the_dashboard_names_nothing_outside_the_app() -> None:
    status_http.page.cache_clear()
    html = get(status_http.dashboard, "dashboard").get_body().decode()
    assert re.findall(r"https?://(?!www\.w3\.org/2000/svg)", html) == []
    assert re.findall(r"(?:src|href)\s*=\s*[\"'](?!#|data:)", html) == []
    assert "@import" not in html and "@font-face" not in html


def test_the_local_host_serves_the_function_level_routes_without_a_key(world: SimpleNamespace, tmp_path: Path) -> None:
    from tools.funchost.http import HttpRoutes
    from tools.funchost.indexing import index_app

    # An app of this blueprint alone, as function_app.py registers it (indexing the shared app twice fails).
    (tmp_path / "status_only_app.py").write_text(
        "import azure.functions as func\nfrom functions import status_http\n"
        "app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)\napp.register_functions(status_http.bp)\n"
    )
    specs = index_app("status_only_app", tmp_path, local_defaults())
    assert {s.name: s.trigger["authLevel"] for s in specs} == dict.fromkeys(
        ("status", "status_autoscale", "dashboard"), "FUNCTION"
    )
    routes = HttpRoutes(specs, str(ROOT), lambda: {"state": "Running"})
    for path, kind in (("/api/status", "application/json"), ("/api/status/autoscale", "application/json"),
                       ("/api/dashboard", "text/html")):  # fmt: skip
        status, headers, body = routes.handle("GET", path, "", {}, b"")
        assert status == 200, (path, body[:200])
        assert headers["Content-Type"].startswith(kind)
    assert routes.handle("POST", "/api/status", "", {}, b"")[0] == 405
