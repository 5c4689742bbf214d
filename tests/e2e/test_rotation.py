"""Key rotation end to end: `consortium rotate-keys` through the queue to the real app on the local host.

A founder is onboarded; the CLI asks for a forced rotation of its keys and follows the request until
the coordinator has taken it; the daily timer (every 2 s here) retires the old versions once the
overlap (4 s here) is over. Key Vault is the emulator's, reached through the real SDK.
"""

from __future__ import annotations

import os
import secrets
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.bootstrap import Platform
from shared.naming import key_name
from shared.services import onboarding as ob
from shared.settings import Settings
from tests.e2e.test_onboarding import Consortium, wait_until
from tests.unit.onboarding_world import request

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def cli(values: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "consortium"), *argv], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, **values},
    )  # fmt: skip


def test_rotate_keys_from_the_cli_rotates_then_the_timer_retires(run_app, azure_settings: Settings) -> None:
    member = "r" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))
    values = {
        **azure_settings.values, "CONSORTIUM_FOUNDERS": member, "KEY_ROTATION_SCHEDULE": "*/2 * * * * *",
        "KEY_ROTATION_TLS": "rotate=P90D overlap=PT4S warn=P14D",
        "KEY_ROTATION_GOVERNANCE": "rotate=P365D overlap=PT4S warn=P30D",
    }  # fmt: skip
    run_app("rotation-e2e", **values)
    world = Consortium(Platform(Settings(values)))
    world.p.queues.send(ob.REQUESTS, request(member, node_count=1))
    before = world.wait_status(member, "active")["keys"]

    done = cli(values, "rotate-keys", "--member", member, "--force", "--request-id", f"rot-{member}", "--wait", "60")
    assert done.returncode == 0, done.stderr
    assert f"rotated  {key_name(member, 'tls')}" in done.stdout and "done: 1 none, 2 rotated" in done.stdout

    def entry(kind: str) -> dict[str, Any]:
        record = world.record(member) or {}
        return dict(record["keys"][kind])

    assert entry("tls")["version"] != before["tls"]["version"]
    assert entry("identity")["version"] == before["identity"]["version"], "identity keys are not rotated"
    wait_until("both old versions retired", lambda: all(len(entry(k).get("rotations") or []) == 1
                                                        for k in ("tls", "governance")), timeout=60)  # fmt: skip
    for kind in ("tls", "governance"):
        versions = world.p.keys.list_versions(key_name(member, kind))
        assert [v.enabled for v in versions] == [False, True], f"{kind}: the old version disabled, never deleted"
        shown = next(m for m in world.network_map()["members"] if m["member_id"] == member)["keys"][kind]
        assert shown["version"] == entry(kind)["version"] and "previous" not in shown

    again = cli(values, "rotate-keys", "--member", member, "--force", "--request-id", f"rot-{member}", "--wait", "60")
    assert again.returncode == 0 and "done: 3 none" in again.stdout, "the same request rotates once"

    status = cli(values, "status", "--json")
    assert status.returncode == 0, status.stderr
    refused = cli(values, "rotate-keys", "--member", "Not_A_Member")
    assert refused.returncode == 2 and "--member" in refused.stderr
    stranger = cli(values, "rotate-keys", "--member", "no-such-bank", "--wait", "30")
    assert stranger.returncode == 1 and "rejected: not_active" in stranger.stderr, stranger.stderr
