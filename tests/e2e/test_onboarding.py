"""Onboarding end to end on the four-deployment local stack: one local host per member, each on its own
storage account in Azurite, its own vault and subscription in the emulator, its own settings.

The founders (bank-a, bank-b) post their requests to their own queues and go active; bank-c posts
its request to its own queue, its deployment proposes its admission, the founders approve through
their own queues, every deployment (bank-d too, deployed but outside) adopts version 1 from its own
verification and bank-c goes active; a request naming another member and a decision on an unknown
proposal are refused at once, recorded where they were posted; bank-c leaves: out of the chain at
every member, its scale set at 0 and its keys disabled, by its own deployment; one member's identity
is refused (403) on another member's vault and scale set; bad input on a member's queue is recorded,
never poisoned; and an ARM outage that poisons a newcomer's provision step is finished by
``replay-poison``. Every check reads a member's own storage, vault or subscription, through its own
identity.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from shared.adapters.compute import ArmScaleSets
from shared.adapters.keyvault import KeyVaultKeyStore
from shared.decisions import chain
from shared.errors import ForbiddenError
from shared.naming import KEY_KINDS, key_name, scale_set_name
from shared.services import onboarding as ob
from shared.services.poison import replay
from tests.e2e.conftest import MemberStack
from tests.support.onboarding_world import request
from tests.unit.test_onboarding_properties import HANDWRITTEN
from tools.harness.wait import wait_until

pytestmark = pytest.mark.e2e

FOUNDERS = ("bank-a", "bank-b")
MEMBERS = ("bank-a", "bank-b", "bank-c", "bank-d")


def queue_can_carry(raw: str) -> bool:
    """Storage queues carry XML 1.0 text: Azure refuses control characters such as NUL on send (Azurite
    accepts them and then returns an unreadable batch), so such bodies never reach a function."""
    return not any(ord(ch) < 0x20 and ch not in "\t\n\r" for ch in raw)


@pytest.fixture(scope="module")
def consortium(member_stack_factory) -> Iterator[MemberStack]:
    yield member_stack_factory(MEMBERS)


def verified_chain(s: MemberStack, member: str) -> list[chain.Trusted]:
    """``member``'s chain as stored in its own storage, verified here from the genesis it was given."""
    return s.platform(member).consortium.verified()


def chain_of(s: MemberStack, member: str) -> list[tuple[int, str, str | None]]:
    """Each version's number and change (a genesis names its convener: left out)."""
    return [
        (t.version, t.document.change.kind.value, None if t.version == 0 else t.document.change.member_id)
        for t in verified_chain(s, member)
    ]


def proposals(s: MemberStack, member: str) -> dict[str, dict]:
    return {p["proposal_id"]: p for p in s.platform(member).consortium_view()["proposals"]}


def capacity(s: MemberStack, member: str) -> int:
    current = s.platform(member).scalesets.get(scale_set_name(member))
    assert current is not None
    return current.capacity


def test_founders_go_active_on_their_own_resources(consortium: MemberStack) -> None:
    s = consortium
    for founder in FOUNDERS:
        s.send(founder, ob.REQUESTS, request(founder))
    for founder in FOUNDERS:
        record = s.wait_status(founder, "active")
        assert set(record["keys"]) == set(KEY_KINDS)
        subscription = s.values(founder)["AZURE_SUBSCRIPTION_ID"]
        assert record["scale_set_id"].startswith(f"/subscriptions/{subscription}/")
        assert record["scale_set_id"].endswith(f"/virtualMachineScaleSets/vmss-{founder}")
        assert capacity(s, founder) == 2  # node_count, in its own subscription
        # the founder's governance key in its own vault is the one the genesis lists for it
        genesis = verified_chain(s, founder)[0]
        entry = genesis.document.member(founder)
        assert entry is not None and entry.governance_key.kid == record["keys"]["governance"]["kid"]
    assert s.status("bank-c") == "outside" and s.status("bank-d") == "outside"


def test_a_newcomer_is_voted_in_and_every_deployment_adopts_the_version(consortium: MemberStack) -> None:
    s = consortium
    if s.status("bank-a") != "active":
        pytest.skip("needs the founders active (the previous test)")
    # bank-c's operator posts its request to bank-c's own queue, twice: one proposal, one set of keys
    s.send("bank-c", ob.REQUESTS, request("bank-c"))
    s.send("bank-c", ob.REQUESTS, request("bank-c"))
    wait_until("bank-c proposed", lambda: (s.own_record("bank-c") or {}).get("proposal_id"))
    pid = (s.own_record("bank-c") or {})["proposal_id"]
    assert s.status("bank-c") == "pending" and capacity(s, "bank-c") == 0
    # each founder's deployment has read the proposal from bank-c's published head
    for founder in FOUNDERS:
        wait_until(f"{founder} knows {pid}", lambda f=founder: pid in proposals(s, f), timeout=30)
        assert proposals(s, founder)[pid]["change"] == {"kind": "admit", "member_id": "bank-c"}
    # each founder's operator approves through its own queue
    for founder in FOUNDERS:
        s.send(founder, ob.APPROVALS, {"proposal_id": pid, "decision": "approve"})
    record = s.wait_status("bank-c", "active", timeout=60)
    assert capacity(s, "bank-c") == 2 and record["scale_set"]["capacity"] == 2
    for kind in KEY_KINDS:
        versions = s.platform("bank-c").keys.list_versions(key_name("bank-c", kind))
        assert len(versions) == 1, "a duplicate request created a second key"

    # every deployment, bank-d (outside) too, verified and stored version 1 in its own storage
    expected = [(0, "genesis", None), (1, "admit", "bank-c")]
    for member in MEMBERS:
        wait_until(f"{member} adopts version 1", lambda m=member: chain_of(s, m) == expected, timeout=30)
    heads = {verified_chain(s, m)[-1].hash for m in MEMBERS}
    assert len(heads) == 1, "every member holds the same version 1"
    v1 = verified_chain(s, "bank-a")[1]
    assert v1.document.member_ids == ("bank-a", "bank-b", "bank-c")
    assert {sig.member_id for sig in v1.document.signatures} >= {"bank-a", "bank-b", "bank-c"}
    assert [s.status(m) for m in MEMBERS] == ["active", "active", "active", "outside"]
    assert [capacity(s, m) for m in MEMBERS[:3]] == [2, 2, 2]


def test_a_request_naming_another_member_is_refused_where_it_was_posted(consortium: MemberStack) -> None:
    s = consortium
    before = {m: len(s.rejections(m)) for m in MEMBERS}
    s.send("bank-c", ob.REQUESTS, request("bank-a", request_id="req-bank-a-via-c"))
    wait_until("recorded by bank-c", lambda: len(s.rejections("bank-c")) > before["bank-c"], timeout=30)
    refused = s.rejections("bank-c")[0]
    assert refused["reason"] == "not_this_member" and refused["request_id"] == "req-bank-a-via-c"
    assert {m: len(s.rejections(m)) for m in MEMBERS if m != "bank-c"} == {
        m: n for m, n in before.items() if m != "bank-c"
    }, "recorded in bank-c's storage only"
    assert s.own_record("bank-a") is not None and s.own_record("bank-a")["request_id"] == "req-bank-a-001"
    assert s.platform("bank-c").state.read("members/bank-a.json") is None
    assert s.platform("bank-c").queues.count(f"{ob.REQUESTS}-poison") == 0


def test_a_decision_on_an_unknown_proposal_is_refused_at_once(consortium: MemberStack) -> None:
    s = consortium
    before = len(s.rejections("bank-a"))
    s.send("bank-a", ob.APPROVALS, {"proposal_id": "prop-nobody-asked", "decision": "approve"})
    wait_until("recorded by bank-a", lambda: len(s.rejections("bank-a")) > before, timeout=30)
    refused = s.rejections("bank-a")[0]
    assert refused["reason"] == "unknown_proposal" and refused["queue"] == ob.APPROVALS
    # taken once: not retried, not poisoned
    wait_until("the message completed", lambda: s.platform("bank-a").queues.count(ob.APPROVALS) == 0, timeout=10)
    assert s.platform("bank-a").queues.count(f"{ob.APPROVALS}-poison") == 0
    assert len(s.rejections("bank-a")) == before + 1


def test_a_member_leaves_out_of_the_chain_at_every_member_its_resources_retired(consortium: MemberStack) -> None:
    s = consortium
    if s.status("bank-c") != "active":
        pytest.skip("needs bank-c admitted (the earlier test)")
    s.send("bank-c", ob.OFFBOARDING, {"request_id": "off-bank-c", "reason": "merger"})
    for member in MEMBERS:
        wait_until(f"{member} adopts the leave", lambda m=member: chain_of(s, m)[-1:] == [(2, "leave", "bank-c")],
                   timeout=60)  # fmt: skip
        assert verified_chain(s, member)[-1].document.member_ids == FOUNDERS
    assert len({verified_chain(s, m)[-1].hash for m in MEMBERS}) == 1
    s.wait_status("bank-c", "left", timeout=30)
    assert capacity(s, "bank-c") == 0
    # disabled, never deleted: read through bank-c's own vault principal
    vault = KeyVaultKeyStore.from_settings(s.as_("bank-c"))
    for kind in KEY_KINDS:
        versions = vault.list_versions(key_name("bank-c", kind))
        assert versions and not any(v.enabled for v in versions), kind
    # the others keep their own scale sets and keys
    for founder in FOUNDERS:
        assert s.status(founder) == "active" and capacity(s, founder) == 2
        assert s.platform(founder).keys.get_key(key_name(founder, "governance")).enabled


def test_one_members_identity_is_refused_on_another_members_vault_and_scale_set(consortium: MemberStack) -> None:
    s = consortium
    b = s.values("bank-b")
    in_b_vault = KeyVaultKeyStore.from_settings(s.as_("bank-a", AZURE_KEY_VAULT_URL=b["AZURE_KEY_VAULT_URL"]))
    with pytest.raises(ForbiddenError):
        in_b_vault.get_key(key_name("bank-b", "governance"))
    with pytest.raises(ForbiddenError):
        in_b_vault.list_versions(key_name("bank-b", "governance"))
    in_b_subscription = ArmScaleSets.from_settings(s.as_("bank-a", AZURE_SUBSCRIPTION_ID=b["AZURE_SUBSCRIPTION_ID"]))
    with pytest.raises(ForbiddenError):
        in_b_subscription.get(scale_set_name("bank-b"))
    # bank-b's own identity reads them
    assert s.platform("bank-b").keys.get_key(key_name("bank-b", "governance")) is not None
    assert s.platform("bank-b").scalesets.get(scale_set_name("bank-b")) is not None


def test_bad_input_on_a_members_queue_is_recorded_once_never_poisoned(consortium: MemberStack) -> None:
    s = consortium
    before = len(s.rejections("bank-d"))
    corpus = {raw for raw, _ in HANDWRITTEN if queue_can_carry(raw)}
    for raw in corpus:
        s.send("bank-d", ob.REQUESTS, raw)
    expected = before + len(corpus)
    wait_until("every bad message recorded", lambda: len(s.rejections("bank-d")) >= expected, timeout=60)
    assert len(s.rejections("bank-d")) == expected
    assert s.platform("bank-d").queues.count(f"{ob.REQUESTS}-poison") == 0
    assert s.status("bank-d") == "outside"


def test_an_arm_outage_poisons_provisioning_and_replay_poison_finishes_it(consortium: MemberStack) -> None:
    s = consortium
    d = s.platform("bank-d")
    s.admin("PUT", "/_admin/faults/compute", {"status": 503, "count": 100000})
    try:
        s.send("bank-d", ob.REQUESTS, request("bank-d"))
        failed = s.wait_status("bank-d", "failed", timeout=120)
        assert "onboarding-provision: retries exhausted" in failed["status_reason"]
        assert "503" in failed["status_reason"]
    finally:
        s.admin("DELETE", "/_admin/faults")
    moved = replay(d.queues.move_all, d.queues.count, ob.QUEUES)
    assert set(moved) == {"onboarding-provision"}
    # the onboarding resumes where it stood: scale set at 0, the admission proposed to the members
    wait_until("bank-d proposed", lambda: (s.own_record("bank-d") or {}).get("proposal_id"), timeout=60)
    assert s.status("bank-d") == "pending" and capacity(s, "bank-d") == 0
    pid = (s.own_record("bank-d") or {})["proposal_id"]
    wait_until("bank-a knows bank-d's proposal", lambda: pid in proposals(s, "bank-a"), timeout=30)
    assert json.dumps(proposals(s, "bank-a")[pid]["change"]) == json.dumps({"kind": "admit", "member_id": "bank-d"})
