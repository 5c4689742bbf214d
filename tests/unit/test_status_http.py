"""The status HTTP functions and the dashboard page, on the fakes: what they answer, without a host.

The functions are called as the worker calls them, with ``platform()`` swapped for bank-a's own
deployment on the fakes of a four-member consortium (``consortium_world``: each member its own vault,
storage and published container); the status is the real ``Platform.status()`` over those fakes. The
local host's routing is exercised through ``tools.funchost.http.HttpRoutes`` to show that
FUNCTION-level routes answer locally without a key, as under Core Tools.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from functions import status_http
from shared.bootstrap import Platform
from shared.decisions import chain
from shared.errors import TransientError
from shared.fakes.leases import FakeLeaseStore
from shared.fakes.state import FakeStateStore
from shared.services.autoscale import STATE_PATH
from shared.services.dashboard import scaling_view
from shared.services.identities import STATE_PATH as PROTECTION_PATH
from shared.services.leadership import COORDINATOR
from shared.services.records import key_entry
from shared.settings import Settings, local_defaults
from tests.support.consortium_world import World, chain_time, endpoint

ROOT = Path(__file__).resolve().parents[2]


def decision(member: str, at: str, before: int, after: int, reason: str, tpm: float | None) -> dict[str, Any]:
    return {
        "at": at, "member_id": member, "action": "scale_out" if after > before else "hold", "capacity": after,
        "target": after, "reason": reason, "message": f"{reason} for {member}", "desired": after,
        "inputs": {"capacity": before, "cpu_percent": 80.0, "tpm": tpm, "partial": tpm is None, "protected": None,
                   "warming": 0},
        "applied": after != before,
    }  # fmt: skip


def deployment(world: World, member_id: str) -> Platform:
    """``member_id``'s own deployment: the real Platform over that member's fakes in ``world``."""
    m = world.members[member_id]
    platform = Platform(Settings({**local_defaults(), "CONSORTIUM_MEMBER_ID": member_id}))
    vars(platform).update(
        state=m.state, queues=m.queues, keys=m.keys, consortium=m.service, leases=FakeLeaseStore(world.clock.now),
        identity_leases=FakeLeaseStore(world.clock.now),
    )  # fmt: skip
    return platform


@pytest.fixture
def consortium() -> World:
    """bank-a and bank-b founded it; bank-c asks to join and bank-a has approved; bank-d is outside."""
    world = World()
    world.found("bank-a", "bank-b")
    world.run(3)
    world.members["bank-a"].service.decide(world.propose_admission("bank-c"), "approve")
    world.run(4)
    return world


@pytest.fixture
def bank_a(consortium: World, monkeypatch: pytest.MonkeyPatch) -> Platform:
    """bank-a's deployment, active with its scale set and keys, a coordinator, scaling history and a poison message."""
    p = deployment(consortium, "bank-a")
    key = consortium.members["bank-a"].keys.get_key("bank-a-governance")
    assert key is not None
    p.state.create(
        "members/bank-a.json",
        {"member_id": "bank-a", "status": "active", "legal_name": "O=Bank A, L=City, C=GB", "request_id": "req-a-1",
         "scale": {"min_nodes": 1, "max_nodes": 6}, "scale_set_id": "/subscriptions/s/vmss-bank-a",
         "scale_set": {"capacity": 2}, "keys": {"governance": key_entry(key, "2026-11-25T09:00:00Z")}},
    )  # fmt: skip
    p.leases.try_acquire(COORDINATOR, "bank-a-local/vm-0", 15)
    p.identity_leases.try_acquire("bank-a", "vmss-bank-a/1", 30)  # its identity keeper on instance 1
    p.identity_leases.try_acquire("bank-a-notary", "vmss-bank-a/0", 30)
    p.state.create(PROTECTION_PATH, {"vmss-bank-a": {"running": ["0", "1"], "ours": ["1"]}})
    change = decision("bank-a", "2025-01-01T10:00:00Z", 2, 4, "scale_out", 3600.0)
    hold = decision("bank-a", "2025-01-01T10:00:10Z", 4, 4, "within_tolerance", 3500.0)
    p.state.create(STATE_PATH, {"updated_at": hold["at"], "last": {"vmss-bank-a": hold}, "recent": [change]})
    p.queues.send("onboarding-keys-poison", "{}")
    p.consortium.memory.heads.clear()  # what a fresh process sees: the heads bank-a stored, verified again
    monkeypatch.setattr(status_http, "platform", lambda: p)
    return p


def get(function: Any, route: str) -> func.HttpResponse:
    response = function(func.HttpRequest("GET", f"http://localhost/api/{route}", body=b""))
    assert isinstance(response, func.HttpResponse)
    return response


def test_the_status_function_serves_the_contracts_object_for_the_deployments_own_member(
    bank_a: Platform, consortium: World
) -> None:
    response = get(status_http.status, "status")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    served = json.loads(response.get_body())
    assert (served["member_id"], served["status"]) == ("bank-a", "active")
    assert served["coordinator"]["holder"] == "bank-a-local/vm-0" and served["coordinator"]["fencing_token"] == 1
    running = served["identities"]["running"]
    identities = {(i["identity"], i["holder"], i["fencing_token"], i["protected"]) for i in running}
    assert identities == {("bank-a", "vmss-bank-a/1", 1, True), ("bank-a-notary", "vmss-bank-a/0", 1, False)}
    assert served["identities"]["protected"] == {"vmss-bank-a": ["1"]} and served["identities"]["error"] is None
    assert served["chain"] == {"version": 0, "head": consortium.genesis, "genesis": consortium.genesis, "fork": None}
    assert [{k: m[k] for k in ("member_id", "status", "endpoint")} for m in served["members"]] == [
        {"member_id": "bank-a", "status": "active", "endpoint": endpoint("bank-a")},
        {"member_id": "bank-b", "status": "active", "endpoint": endpoint("bank-b")},
    ]
    [proposal] = served["proposals"]
    assert {k: proposal[k] for k in ("proposal_id", "change", "base_version", "signed_by", "status")} == {
        "proposal_id": "prop-admit-bank-c", "change": {"kind": "admit", "member_id": "bank-c"},
        "base_version": 0, "signed_by": ["bank-a"], "status": "open",
    }  # fmt: skip
    assert served["scale_set"] == {"id": "/subscriptions/s/vmss-bank-a", "capacity": 4, "min_nodes": 1, "max_nodes": 6}
    key = served["keys"]["bank-a-governance"]
    assert key["version"] and key["rotated_at"] == "2026-11-25T09:00:00Z"
    assert served["poison"]["onboarding-keys-poison"] == 1
    assert all(q.endswith("-poison") and n == 0 for q, n in served["poison"].items() if q != "onboarding-keys-poison")
    assert set(served["peers"]) == {"bank-b", "bank-c"}, "the others' heads as bank-a stored them"
    assert served == json.loads(json.dumps(bank_a.status())), "the CLI's status --json is the same object"


def test_a_deployed_member_that_has_not_asked_is_outside_and_still_sees_the_consortium(consortium: World) -> None:
    served = deployment(consortium, "bank-d").status()
    assert (served["member_id"], served["status"]) == ("bank-d", "outside")
    assert served["scale_set"] == {"id": None, "capacity": 0, "min_nodes": 1, "max_nodes": 1}
    assert served["keys"] == {} and served["coordinator"]["holder"] is None
    assert served["chain"]["version"] == 0 and [m["member_id"] for m in served["members"]] == ["bank-a", "bank-b"]


def test_a_fork_shows_in_the_chain_naming_who_signed_both_without_the_documents(consortium: World) -> None:
    world = consortium
    world.members["bank-b"].service.decide("prop-admit-bank-c", "approve")
    world.run(20, until=lambda: all(v == 1 for v in world.versions().values()))
    ours = world.members["bank-a"].service.verified()
    assert len(ours) == 2, "bank-c is admitted in version 1"
    d = world.members["bank-d"]
    unsigned = chain.unsigned_next(
        ours[0], {"kind": "admit", "member_id": "bank-d", "proposal_id": "prop-other"},
        issued_at=chain_time(world.clock), entry=d.entry(),
    )  # fmt: skip
    digest = bytes.fromhex(chain.document_hash(unsigned))
    signatures = []
    for m in ("bank-a", "bank-b", "bank-d"):
        kid = world.members[m].keys.get_key(f"{m}-governance").kid  # type: ignore[union-attr]
        signatures.append({"member_id": m, "kid": kid, "sig": chain.b64u(world.members[m].keys.sign(kid, digest))})
    theirs = chain.verify_next(ours[0], chain.with_signatures(unsigned, signatures))
    world.members["bank-c"].service.report_fork(world.members["bank-c"].service.verified()[1], theirs, seen_at="bank-d")
    fork = deployment(world, "bank-c").status()["chain"]["fork"]
    assert fork["version"] == 1 and fork["signed_both"] == ["bank-a", "bank-b"] and fork["seen_at"] == "bank-d"
    assert "documents" not in fork


def test_a_storage_outage_answers_503_with_the_reason_for_the_banner(
    bank_a: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(path: str) -> None:
        raise TransientError("storage is throttling", retry_after=7)

    monkeypatch.setattr(bank_a.state, "list_paths", down)
    monkeypatch.setattr(bank_a.state, "read", down)
    monkeypatch.setattr(bank_a.state, "read_all", down)
    for function, route in ((status_http.status, "status"), (status_http.status_autoscale, "status/autoscale")):
        response = get(function, route)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "7"
        assert "storage is throttling" in json.loads(response.get_body())["error"]


def test_the_autoscale_view_flattens_each_decision_with_its_inputs(bank_a: Platform) -> None:
    view = json.loads(get(status_http.status_autoscale, "status/autoscale").get_body())
    assert view == scaling_view(bank_a.state)
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


def test_the_local_host_serves_the_function_level_routes_without_a_key(bank_a: Platform, tmp_path: Path) -> None:
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
