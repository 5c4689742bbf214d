"""The status endpoint and the dashboard end to end: the real app on the local host, seen by a browser.

Founders are onboarded and put under load, a message sits in a poison queue, and then:
- ``GET /api/status`` answers without a function key (as under Core Tools) with the status model,
  the same keys ``build_status`` gives;
- ``GET /api/dashboard`` is one page that names nothing outside the app;
- headless Debian Chromium, driven by playwright-core (``tests/e2e/browser/dashboard_check.mjs``),
  shows the members with their status, the coordinator, the poison count highlighted and a chart
  with data points, says STALE when a poll fails and recovers by itself. Its screenshot is saved to
  ``.local/screenshots/dashboard.png`` (git-ignored).
The browser test skips, saying why, where Chromium, node or playwright-core is missing
(``tools/ensure_chromium.sh`` installs Chromium; ``make bootstrap`` installs playwright-core).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import string
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from shared.bootstrap import Platform
from shared.services import onboarding as ob
from shared.services.status import build_status
from shared.settings import Settings
from tests.conftest import admin
from tests.e2e.test_onboarding import Consortium, wait_until
from tests.unit.onboarding_world import request

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCRIPT = ROOT / "tests" / "e2e" / "browser" / "dashboard_check.mjs"
SCREENSHOTS = ROOT / ".local" / "screenshots"
POISON_QUEUE = f"{ob.OFFBOARDING}-poison"


def prefix() -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))


def host_url(log: Path) -> str:
    """The local host prints ``HTTP on http://localhost:<port>`` in its banner; the fixture picks the port."""
    match = wait_until("the host's HTTP banner", lambda: re.search(r"HTTP on (http://localhost:\d+)", log.read_text()))
    return str(match.group(1))


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, dict(response.headers.items()), response.read()


@contextlib.contextmanager
def consortium(
    run_app: Any, azure_settings: Settings, emulator_instance: Any, tmp_path: Path, name: str
) -> Iterator[tuple[str, Consortium, list[str]]]:
    """Two founders onboarded and active under load on a host with a fast autoscale tick, and the host's URL.

    They are offboarded afterwards: the test Azurite lives for the whole session, and members left
    active would change the quorum that later tests' votes must reach.
    """
    p = prefix()
    founders = [f"{p}-a", f"{p}-b"]
    values = {
        **azure_settings.values, "CONSORTIUM_FOUNDERS": ",".join(founders), "ONBOARDING_POLL_SECONDS": "1",
        "AUTOSCALE_SCHEDULE": "*/2 * * * * *", "AUTOSCALE_BOOT_SECONDS": "0",
    }  # fmt: skip
    run_app(name, **values)
    world = Consortium(Platform(Settings(values)))
    try:
        for member, tpm in zip(founders, (1300, 2600), strict=True):
            world.p.queues.send(ob.REQUESTS, request(member, node_count=2, scale={"min_nodes": 1, "max_nodes": 6}))
            admin(emulator_instance, "PUT", f"/_admin/load/vmss-{member}", {"tpm": tpm})
        for member in founders:
            world.wait_status(member, "active")
        yield host_url(tmp_path / f"{name}.log"), world, founders
    finally:
        for member in founders:
            if world.status(member) is not None:
                body = {"request_id": f"off-{member}", "member_id": member, "reason": "end of the dashboard test"}
                world.p.queues.send(ob.OFFBOARDING, json.dumps(body))
        for member in founders:
            if world.status(member) is not None:
                world.wait_status(member, "offboarded")


class PoisonMessage:
    """One message of ours in a watched poison queue (naming no member), removed again afterwards."""

    def __init__(self, connection_string: str):
        self.client = QueueClient.from_connection_string(connection_string, POISON_QUEUE)
        self.marker = f"dashboard-test-{uuid.uuid4().hex}"

    def __enter__(self) -> PoisonMessage:
        try:
            self.client.create_queue()
        except Exception:  # already there
            pass
        self.client.send_message(json.dumps({"note": self.marker}))
        return self

    def __exit__(self, *exc: object) -> None:
        for _ in range(20):  # others' messages may hide ours for a moment
            for message in self.client.receive_messages(max_messages=32, visibility_timeout=1):
                if self.marker in str(message.content):
                    self.client.delete_message(message)
                    return
            time.sleep(0.5)


def test_the_status_endpoint_serves_the_status_model_without_a_key_and_the_page_is_self_contained(
    run_app, azure_settings: Settings, emulator_instance, tmp_path: Path
) -> None:
    with consortium(run_app, azure_settings, emulator_instance, tmp_path, "status-e2e") as (url, world, founders):
        check_status_and_page(url, world, founders)


def check_status_and_page(url: str, world: Consortium, founders: list[str]) -> None:
    status, headers, body = get(f"{url}/api/status")
    served = json.loads(body)
    model = build_status(world.p.state, world.p.leases, world.p.queues.count)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert set(served) == set(model)
    ours = [m for m in served["members"] if m["member_id"] in founders]
    assert [(m["member_id"], m["status"]) for m in ours] == [(f, "active") for f in founders]
    assert all(set(m) == set(model["members"][0]) for m in served["members"])
    assert set(served["poison"]) == set(model["poison"])
    assert served["coordinator"]["holder"], "the host's coordinator timer runs on startup"

    wait_until("an autoscale tick for both founders", lambda: all(
        f"vmss-{f}" in json.loads(get(f"{url}/api/status/autoscale")[2])["sets"] for f in founders
    ))  # fmt: skip
    scaling = json.loads(get(f"{url}/api/status/autoscale")[2])
    assert scaling["sets"][f"vmss-{founders[1]}"]["tpm"] is not None

    status, headers, body = get(f"{url}/api/dashboard")
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert re.findall(r"(?:src|href)\s*=\s*[\"'](?!#|data:)", page) == [], "the page loads no files"
    assert re.findall(r"https?://(?!www\.w3\.org/2000/svg)", page) == [], "the page names no other origin"
    assert "@import" not in page and "url(" not in page


def browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (run tools/ensure_chromium.sh, as .ci/run does)"
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not (ROOT / "node_modules" / "playwright-core" / "package.json").exists():
        return "playwright-core is not installed (make bootstrap runs npm ci from package-lock.json)"
    return None


def test_the_dashboard_shows_members_coordinator_poison_and_a_chart_in_headless_chromium(
    run_app, azure_settings: Settings, emulator_instance, storage_connection_string: str, tmp_path: Path
) -> None:
    missing = browser_missing()
    if missing:
        pytest.skip(f"dashboard browser test skipped: {missing}")
    with (
        consortium(run_app, azure_settings, emulator_instance, tmp_path, "dashboard-e2e") as (url, world, founders),
        PoisonMessage(storage_connection_string),
    ):
        model = build_status(world.p.state, world.p.leases, world.p.queues.count)
        report = look_at(f"{url}/api/dashboard", founders)
        check_what_a_person_sees(report, model, founders)


def look_at(url: str, founders: list[str]) -> dict[str, Any]:
    """What the browser script saw, with screenshots of the page and of its stale banner."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        ["node", str(SCRIPT), "--url", url, "--screenshot", str(SCREENSHOTS / "dashboard.png"),
         "--stale-screenshot", str(SCREENSHOTS / "dashboard-stale.png"), "--expect-members", ",".join(founders),
         "--chromium", str(CHROMIUM)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.stdout, f"the browser script printed nothing; stderr:\n{run.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(run.stdout)
    assert report["ok"], report.get("error")
    assert report["ready"], f"the page never showed both founders active with chart data: {report['seen']}"
    return report


def check_what_a_person_sees(report: dict[str, Any], model: dict[str, Any], founders: list[str]) -> None:
    seen = report["seen"]

    # nothing from outside the app, no script errors
    assert [r["url"] for r in report["requests"] if not r["same_origin"]] == []
    assert [e for e in report["console_errors"] if e["phase"] != "outage"] == [] and report["page_errors"] == []
    assert "default-src 'none'" in report["csp"]

    # members with their status
    rows = {m["member_id"]: m for m in seen["members"]}
    for founder in founders:
        assert rows[founder]["status"] == "active" and "active" in rows[founder]["status_text"]
        assert rows[founder]["nodes"].startswith(tuple("123456")), rows[founder]
    assert rows[founders[1]]["tpm"] != "—", "the load of an active member is shown"

    # the coordinator: the holder the lease names (it renews, it does not change hands here)
    assert model["coordinator"]["holder"] and seen["coordinator"]["holder"] == model["coordinator"]["holder"]
    assert "in " in seen["coordinator"]["expiry"], seen["coordinator"]

    # poison counts, the non-zero one highlighted
    poison = {p["queue"]: p for p in seen["poison"]}
    assert set(poison) == set(model["poison"])
    assert poison[POISON_QUEUE]["count"] >= 1 and poison[POISON_QUEUE]["highlighted"]
    assert all(p["highlighted"] == (p["count"] > 0) for p in seen["poison"])
    assert seen["poison_tile"]["highlighted"]

    # a chart per founder with capacity and load points
    charts = {c["member_id"]: c for c in seen["charts"]}
    for founder in founders:
        chart = charts[founder]
        assert chart["points"] > 1 and chart["load_points"] > 0, chart
        assert chart["has_capacity_line"] and chart["has_load_line"]

    # each founder's keys, whatever fields the model gives them
    for member in (m for m in model["members"] if m["member_id"] in founders):
        assert {k["key"] for k in seen["keys"] if k["member_id"] == member["member_id"]} == set(member["keys"])

    # freshness, then a failed poll: a STALE banner with the reason; then it recovers by itself
    assert seen["updated"] != "never" and not seen["banner"]["visible"]
    assert report["stale_shown"], report["stale"]
    assert report["stale"]["banner"]["text"].startswith("STALE")
    assert "injected by the browser test" in report["stale"]["banner"]["text"]
    assert report["stale"]["members"], "the last data stays on screen while stale"
    assert report["recovered"] and not report["after_recovery"]["banner"]["visible"]
    assert (SCREENSHOTS / "dashboard.png").stat().st_size > 10_000
