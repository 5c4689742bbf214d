"""Key rotation end to end, on two members' own deployments: `consortium --member bank-a rotate-keys`.

bank-a and bank-b (the founders) go active; bank-a's operator asks for a forced rotation of bank-a's
keys through bank-a's own queue. The TLS key gets a new version in bank-a's own vault; the new
governance key goes through a `rotate` version of the chain, which both deployments adopt (bank-b
signs it without its operator); only once a verified version lists the new key, and the overlap
(4 s here) is over, does the timer (every 2 s here) disable the old versions, never deleting them.
bank-b's keys never change. Key Vault is the emulator's, each member's own, through the real SDK.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.naming import key_name
from shared.services import onboarding as ob
from tests.e2e.conftest import MemberStack
from tests.support.onboarding_world import request
from tools.harness.wait import wait_until

pytestmark = pytest.mark.e2e
MEMBERS = ("bank-a", "bank-b")
FAST = {
    "KEY_ROTATION_SCHEDULE": "*/2 * * * * *",
    "KEY_ROTATION_TLS": "rotate=P90D overlap=PT4S warn=P14D",
    "KEY_ROTATION_GOVERNANCE": "rotate=P365D overlap=PT4S warn=P30D",
}


@pytest.fixture(scope="module")
def founded(member_stack_factory) -> Iterator[MemberStack]:
    s = member_stack_factory(MEMBERS, values=FAST)
    for member in MEMBERS:
        s.send(member, ob.REQUESTS, request(member, node_count=1))
    for member in MEMBERS:
        s.wait_status(member, "active", timeout=90)
    yield s


def cli(s: MemberStack, *argv: str) -> subprocess.CompletedProcess[str]:
    """The operator's command line, run from the stack's folder (it finds `.local/members/M/...` there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSORTIUM_", "AZURE_", "AzureWebJobs"))}
    return subprocess.run(
        [str(Path(sys.executable).parent / "consortium"), *argv], cwd=s.paths.root, capture_output=True, text=True,
        timeout=120, env=env,
    )  # fmt: skip


def test_a_forced_rotation_goes_through_the_chain_and_retires_the_old_versions_after_it(founded: MemberStack) -> None:
    s = founded
    before = (s.own_record("bank-a") or {})["keys"]
    others_before = [v.version for v in s.platform("bank-b").keys.list_versions(key_name("bank-b", "governance"))]

    done = cli(s, "--member", "bank-a", "rotate-keys", "--force", "--request-id", "rot-e2e-1", "--wait", "90")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rotated  {key_name('bank-a', 'tls')}" in done.stdout

    def entry(kind: str) -> dict[str, Any]:
        return dict((s.own_record("bank-a") or {})["keys"][kind])

    assert entry("tls")["version"] != before["tls"]["version"]
    assert entry("identity")["version"] == before["identity"]["version"], "identity keys are not rotated"

    def rotated_everywhere() -> bool:
        heads = [s.platform(m).consortium.verified() for m in MEMBERS]
        return all(len(h) == 2 and h[-1].document.change.kind.value == "rotate" for h in heads)

    wait_until("a rotate version of bank-a adopted by both deployments", rotated_everywhere, timeout=90)
    version = s.platform("bank-b").consortium.verified()[-1]
    listed = version.document.member("bank-a")
    assert listed is not None and listed.governance_key.kid.rsplit("/", 1)[-1] == entry("governance")["version"]
    assert {sig.member_id for sig in version.document.signatures} == set(MEMBERS), "bank-b signed it by itself"

    vault = s.platform("bank-a").keys
    wait_until(
        "the old versions disabled once the overlap is over",
        lambda: all([v.enabled for v in vault.list_versions(key_name("bank-a", k))] == [False, True]
                    for k in ("tls", "governance")),
        timeout=90,
    )  # fmt: skip
    # the member still signs: its head is signed with the key the chain now lists
    wait_until(
        "bank-b reads bank-a's head signed with its new key",
        lambda: (
            (h := s.platform("bank-b").consortium.stored_heads().get("bank-a")) is not None
            and h.kid == listed.governance_key.kid
        ),
        timeout=60,
    )
    after = [v.version for v in s.platform("bank-b").keys.list_versions(key_name("bank-b", "governance"))]
    assert after == others_before, "bank-a's rotation never touches bank-b's keys"

    kept = {k: [v.version for v in vault.list_versions(key_name("bank-a", k))] for k in ("tls", "governance")}
    again = cli(s, "--member", "bank-a", "rotate-keys", "--force", "--request-id", "rot-e2e-1", "--wait", "60")
    assert again.returncode == 0, again.stderr
    assert {k: [v.version for v in vault.list_versions(key_name("bank-a", k))] for k in kept} == kept, (
        "the same request again rotates nothing"
    )
