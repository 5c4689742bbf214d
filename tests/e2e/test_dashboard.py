"""One member's status endpoint and dashboard end to end: its own deployment, seen by a browser.

The test starts three deployments (bank-a and bank-b, the founders, and bank-c) the way `make up`
does (``tools.stack.up_members``: one Azurite with an account each, the Azure emulator, the founders'
ceremony, one local Functions host each) but on free ports in a temporary folder. The founders join;
bank-c asks to join and bank-a approves, so its admission stays open (two of two approvals are
needed) signed by bank-a; bank-a's nodes are under load and one message sits in bank-a's poison
queue. Then, on bank-a's own deployment:
- ``GET /api/status`` answers without a function key (as under Core Tools) with what
  ``consortium --member bank-a status --json`` prints (the same keys, the same chain and proposals);
- ``GET /api/dashboard`` is one page that names nothing outside the app;
- headless Debian Chromium, driven by playwright-core (``tests/e2e/browser/dashboard_check.mjs``),
  shows bank-a's own view (its status, nodes, chart, keys, coordinator, the poison count highlighted)
  and the consortium's as bank-a verified it (chain version, head and genesis, no fork, the members
  with their heads, the open admission of bank-c with who signed it and bank-a's own decision); it
  says STALE when a poll fails and recovers by itself. Its screenshot is saved to
  ``.local/screenshots/dashboard.png`` (git-ignored).
The browser test skips, saying why, where Chromium, node or playwright-core is missing
(``tools/ensure_chromium.sh`` installs Chromium; ``make bootstrap`` installs playwright-core).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from shared.services import onboarding as ob
from tools import azurite
from tools.ceremony import LEGAL_NAMES
from tools.harness.stack import LocalStack
from tools.harness.wait import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCRIPT = ROOT / "tests" / "e2e" / "browser" / "dashboard_check.mjs"
SCREENSHOTS = ROOT / ".local" / "screenshots"
CLI = Path(sys.executable).parent / "consortium"
MEMBERS = ("bank-a", "bank-b", "bank-c")
POISON_QUEUE = f"{ob.OFFBOARDING}-poison"


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, dict(response.headers.items()), response.read()


@dataclass
class Deployments(LocalStack):
    """The module's local stack (``tools.harness.stack``), read through each member's HTTP API and CLI."""

    proposal_id: str = ""

    def status(self, member: str) -> dict[str, Any]:
        return dict(json.loads(get(f"{self.url(member)}/api/status")[2]))

    def cli(self, member: str, *argv: str) -> subprocess.CompletedProcess[str]:
        """The operator's command, in the stack's folder, so it finds the member's settings there."""
        done = subprocess.run([str(CLI), "--member", member, *argv], cwd=self.root, capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert done.returncode == 0, f"consortium --member {member} {' '.join(argv)}: {done.stderr}"
        return done


@pytest.fixture(scope="module")
def deployments(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployments]:
    world = Deployments.start(tmp_path_factory.mktemp("dashboard-stack"), MEMBERS)
    try:
        for founder in ("bank-a", "bank-b"):  # under the names the stack's genesis lists for them
            world.cli(founder, "join", "--legal-name", LEGAL_NAMES[founder], "--wait", "90")
        world.cli("bank-a", "load", "--tpm", "1300")
        world.cli("bank-c", "join", "--legal-name", "O=Bank C, L=Amsterdam, C=NL")

        def admission() -> str | None:
            wanted = {"kind": "admit", "member_id": "bank-c"}
            found = [p for p in world.status("bank-a")["proposals"] if p["change"] == wanted]
            return found[0]["proposal_id"] if found else None

        world.proposal_id = wait_until("bank-c's admission in bank-a's view", admission, 90)
        world.cli("bank-a", "approve", world.proposal_id)
        wait_until("bank-a's approval of bank-c in its own view", lambda: any(
            p["proposal_id"] == world.proposal_id and p["signed_by"] == ["bank-a"]
            for p in world.status("bank-a")["proposals"]), 90)  # fmt: skip
        yield world
    finally:
        world.stop()


def test_the_status_endpoint_serves_the_members_status_without_a_key_and_the_page_is_self_contained(
    deployments: Deployments,
) -> None:
    url = deployments.url("bank-a")
    status, headers, body = get(f"{url}/api/status")
    served = json.loads(body)
    printed = json.loads(deployments.cli("bank-a", "status", "--json").stdout)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert set(served) == set(printed)
    assert served["member_id"] == "bank-a" and served["status"] == "active"
    assert served["chain"]["genesis"] == printed["chain"]["genesis"] and served["chain"]["version"] == 0
    assert [(m["member_id"], m["status"]) for m in served["members"]] == [("bank-a", "active"), ("bank-b", "active")]
    admission = next(p for p in served["proposals"] if p["proposal_id"] == deployments.proposal_id)
    assert admission["status"] == "open" and admission["signed_by"] == ["bank-a"]
    assert served["coordinator"]["holder"].startswith("bank-a-local/"), "bank-a's own deployment coordinates bank-a"
    # bank-b's deployment serves bank-b, not bank-a
    assert deployments.status("bank-b")["member_id"] == "bank-b"

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


class PoisonMessage:
    """One message of ours in a watched poison queue of bank-a's own account, removed again afterwards."""

    def __init__(self, connection_string: str):
        self.client = QueueClient.from_connection_string(connection_string, POISON_QUEUE)

    def __enter__(self) -> PoisonMessage:
        self.sent = self.client.send_message(json.dumps({"note": "dashboard test"}))
        return self

    def __exit__(self, *exc: object) -> None:
        for message in self.client.receive_messages(max_messages=32, visibility_timeout=1):
            if message.id == self.sent.id:
                self.client.delete_message(message)


def test_one_members_dashboard_shows_its_own_view_and_the_consortiums_in_headless_chromium(
    deployments: Deployments,
) -> None:
    missing = browser_missing()
    if missing:
        pytest.skip(f"dashboard browser test skipped: {missing}")
    with PoisonMessage(deployments.az.connection_string_for(azurite.account_for("bank-a"))):
        wait_until("the poison message counted", lambda: deployments.status("bank-a")["poison"][POISON_QUEUE] >= 1, 90)
        report = look_at(f"{deployments.url('bank-a')}/api/dashboard", deployments.proposal_id)
        model = deployments.status("bank-a")
    check_what_a_person_sees(report, model, deployments.proposal_id)


def look_at(url: str, proposal_id: str) -> dict[str, Any]:
    """What the browser script saw, with screenshots of the page and of its stale banner."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        ["node", str(SCRIPT), "--url", url, "--screenshot", str(SCREENSHOTS / "dashboard.png"),
         "--stale-screenshot", str(SCREENSHOTS / "dashboard-stale.png"), "--expect-members", "bank-a",
         "--expect-proposal", proposal_id, "--chromium", str(CHROMIUM)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.stdout, f"the browser script printed nothing; stderr:\n{run.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(run.stdout)
    assert report["ok"], report.get("error")
    assert report["ready"], f"the page never showed bank-a active with chart data and the proposal: {report['seen']}"
    return report


def check_what_a_person_sees(report: dict[str, Any], model: dict[str, Any], proposal_id: str) -> None:
    seen = report["seen"]

    # nothing from outside the app, no script errors
    assert [r["url"] for r in report["requests"] if not r["same_origin"]] == []
    assert [e for e in report["console_errors"] if e["phase"] != "outage"] == [] and report["page_errors"] == []
    assert "default-src 'none'" in report["csp"]

    # the member's own view: its row, its nodes, its chart, its keys, its coordinator
    assert seen["tiles"]["member"]["text"] == "bank-a · active"
    rows = {m["member_id"]: m for m in seen["members"]}
    assert list(rows) == ["bank-a"], "the dashboard of bank-a shows bank-a's own nodes only"
    assert rows["bank-a"]["status"] == "active" and "active" in rows["bank-a"]["status_text"]
    assert rows["bank-a"]["nodes"].startswith(tuple("123456")), rows["bank-a"]
    assert rows["bank-a"]["tpm"] != "—", "the load of an active member is shown"
    chart = next(c for c in seen["charts"] if c["member_id"] == "bank-a")
    assert chart["points"] > 1 and chart["load_points"] > 0 and chart["has_capacity_line"] and chart["has_load_line"]
    assert {k["key"] for k in seen["keys"] if k["member_id"] == "bank-a"} == set(model["keys"])
    assert model["coordinator"]["holder"] and seen["coordinator"]["holder"] == model["coordinator"]["holder"]
    assert "in " in seen["coordinator"]["expiry"], seen["coordinator"]

    # the consortium as bank-a verified it: chain version, head, genesis, no fork
    chain = model["chain"]
    assert seen["chain"]["version"] == "0" and seen["tiles"]["chain"]["text"] == "v0"
    assert seen["chain"]["head_title"] == chain["head"] and seen["chain"]["head"] == chain["head"][:16] + "…"
    assert seen["chain"]["genesis_title"] == chain["genesis"]
    assert seen["chain"]["fork"] == "none" and "bad" not in seen["tiles"]["chain"]["state"]
    assert [(m["member_id"], m["status"], m["head"]) for m in seen["chain_members"]] == [
        ("bank-a", "active", "0"), ("bank-b", "active", "0")]  # fmt: skip
    assert all(m["endpoint"].endswith("/consortium-public") for m in seen["chain_members"])

    # the open admission of bank-c: who signed it, and bank-a's own decision
    proposals = {p["proposal_id"]: p for p in seen["proposals"]}
    admission = proposals[proposal_id]
    assert admission["status"] == "open" and admission["change"] == "admit bank-c"
    assert admission["signed_by"] == "bank-a" and admission["mine"] == "approve" and admission["base"] == "0"
    assert seen["tiles"]["proposals"]["text"] == "1" and "warn" in seen["tiles"]["proposals"]["state"]

    # the poison count of bank-a's own queues, the non-zero one highlighted
    poison = {p["queue"]: p for p in seen["poison"]}
    assert set(poison) == set(model["poison"])
    assert poison[POISON_QUEUE]["count"] >= 1 and poison[POISON_QUEUE]["highlighted"]
    assert all(p["highlighted"] == (p["count"] > 0) for p in seen["poison"])
    assert seen["poison_tile"]["highlighted"]

    # freshness, then a failed poll: a STALE banner with the reason; then it recovers by itself
    assert seen["updated"] != "never" and not seen["banner"]["visible"]
    assert report["stale_shown"], report["stale"]
    assert report["stale"]["banner"]["text"].startswith("STALE")
    assert "injected by the browser test" in report["stale"]["banner"]["text"]
    assert report["stale"]["proposals"], "the last data stays on screen while stale"
    assert report["recovered"] and not report["after_recovery"]["banner"]["visible"]
    assert (SCREENSHOTS / "dashboard.png").stat().st_size > 10_000
