"""The `consortium` command line as members' operators use it, against real storage.

A four-member consortium is played on the fakes (``consortium_world``: bank-a and bank-b founded it,
bank-c asks to join and bank-a approved); then each member's own storage, as its services wrote it,
is copied into that member's own account in an Azurite of this module, and each member's settings
file is written where the local stack writes it (``.local/members/{id}/local.settings.json``). The
CLI is run from a folder below it, as `--member M` (or ``CONSORTIUM_MEMBER``), and the tests look at
what it printed, its exit code, and what landed on the member's own queues; the decisions it posts
are taken by the real ``Onboarding.decide`` of that member's deployment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.queue import QueueServiceClient

from cli import context
from cli.main import main
from shared.bootstrap import Platform
from shared.decisions import chain
from shared.fakes.clock import FakeClock
from shared.services import onboarding as ob
from shared.settings import Settings, local_defaults
from tests.support.consortium_world import World
from tools import azurite, provision
from tools.emulator import EmulatorHandle
from tools.harness.stack import admin

MEMBERS = ("bank-a", "bank-b", "bank-c", "bank-d")
PROPOSAL = "prop-admit-bank-c"
COMMANDS = ("join", "proposals", "approve", "reject", "leave", "remove", "members", "chain", "status", "rejections",
            "replay-poison", "rotate-keys", "load", "fault")  # fmt: skip


@pytest.fixture(scope="module")
def members_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite.Azurite]:
    """An Azurite of this module's own, one account per member, so no other test shares their storage."""
    location = Path(tmp_path_factory.mktemp("azurite-cli"))
    ports = azurite.free_ports(3)
    az, proc = azurite.start(location, ports=(ports[0], ports[1], ports[2]), log_file=location / "azurite.log",
                             accounts=[azurite.account_for(m) for m in MEMBERS])  # fmt: skip
    try:
        yield az
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def played(
    members_azurite: azurite.Azurite, azure_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[World, Path]:
    """The consortium played on the fakes, each member's storage in its own account, its settings file
    written as the stack writes it (with the test emulator as its Azure)."""
    world = World(clock=FakeClock.starting_now())  # the CLI reads what it played on the system clock
    world.found("bank-a", "bank-b")
    world.run(3)
    world.members["bank-a"].service.decide(world.propose_admission("bank-c"), "approve")
    world.run(4)
    root = Path(tmp_path_factory.mktemp("operator"))
    for member_id, member in world.members.items():
        connection = members_azurite.connection_string_for(azurite.account_for(member_id))
        provision.provision(connection)
        state = Platform(Settings({**local_defaults(), "AzureWebJobsStorage": connection})).state
        for path in member.state.list_paths(""):
            doc = member.state.read(path)
            assert doc is not None
            state.create(path, doc.body)
        values = {**azure_settings.values, "AzureWebJobsStorage": connection, "CONSORTIUM_MEMBER_ID": member_id,
                  "CONSORTIUM_GENESIS_HASH": world.genesis, "CONSORTIUM_DEPLOYMENT": f"{member_id}-local"}  # fmt: skip
        target = root / context.member_settings_file(member_id)
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return world, root


@pytest.fixture
def operator(played: tuple[World, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Run from a folder below the stack's root, with no member in the environment."""
    world, root = played
    below = root / "somewhere" / "below"
    below.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(below)
    for name in (context.MEMBER_ENV, context.MEMBER_SETTING, "AzureWebJobsStorage"):
        monkeypatch.delenv(name, raising=False)
    context.settings.cache_clear()
    yield world
    context.settings.cache_clear()


def platform(member_id: str) -> Platform:
    return Platform(context.settings(member_id))


def queued(member_id: str, queue: str) -> list[dict[str, Any]]:
    """What waits on the member's own queue (peeked, left there)."""
    service: QueueServiceClient = platform(member_id).queues.service
    return [json.loads(m.content) for m in service.get_queue_client(queue).peek_messages(max_messages=32)]


def take(member_id: str, queue: str) -> list[str]:
    """Receive and delete every message of the member's own queue: what its functions would be handed."""
    client = platform(member_id).queues.service.get_queue_client(queue)
    taken = []
    for message in client.receive_messages(max_messages=32):
        taken.append(str(message.content))
        client.delete_message(message)
    return taken


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    text = err.strip()
    assert text.count("\n") == 0, text
    return text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "usage: consortium " + command in out and "--member" in out


def test_version_one_is_gone_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    for gone in (["onboard", "bank-c"], ["offboard", "bank-c"], ["approve", "req-1", "--as", "bank-a"]):
        with pytest.raises(SystemExit) as done:
            main(gone)
        assert done.value.code == 2
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    assert "network map" not in capsys.readouterr().out


def test_no_command_and_unknown_commands_are_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as done:
        main(["frobnicate"])
    assert done.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_without_a_member_or_settings_the_command_is_bad_usage_saying_how_to_name_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (context.MEMBER_ENV, context.MEMBER_SETTING):
        monkeypatch.delenv(name, raising=False)
    context.settings.cache_clear()
    code, _, err = run(["status"], capsys)
    assert code == 2 and "--member" in one_line(err)
    code, _, err = run(["--member", "bank-a", "status"], capsys)
    assert code == 2 and ".local/members/bank-a/local.settings.json" in one_line(err)
    code, _, err = run(["--member", "Bank A", "status"], capsys)
    assert code == 2 and "must match" in one_line(err)


def test_status_json_is_the_contracts_object_for_the_member_named(
    operator: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["--member", "bank-a", "status", "--json"], capsys)
    assert code == 0, err
    model = json.loads(out)
    assert model["member_id"] == "bank-a" and model["status"] == "outside", "bank-a's storage holds no member record"
    assert set(model["coordinator"]) >= {"holder", "fencing_token", "expires_at"}
    assert model["chain"] == {"version": 0, "head": operator.genesis, "genesis": operator.genesis, "fork": None}
    assert [(m["member_id"], m["status"]) for m in model["members"]] == [("bank-a", "active"), ("bank-b", "active")]
    assert all(m["endpoint"].endswith("/consortium-public") for m in model["members"])
    [proposal] = model["proposals"]
    assert {k: proposal[k] for k in ("proposal_id", "change", "base_version", "signed_by", "status")} == {
        "proposal_id": PROPOSAL, "change": {"kind": "admit", "member_id": "bank-c"}, "base_version": 0,
        "signed_by": ["bank-a"], "status": "open",
    }  # fmt: skip
    assert set(model["scale_set"]) >= {"id", "capacity", "min_nodes", "max_nodes"} and model["keys"] == {}
    assert model["poison"] and all(q.endswith("-poison") and n == 0 for q, n in model["poison"].items())


def test_status_says_where_each_corda_identity_runs(operator: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["--member", "bank-b", "status"], capsys)
    assert code == 0 and "identities   none leased yet (no identity keeper runs for this member)" in out, err
    leases = platform("bank-b").identity_leases  # what bank-b's identity keeper on instance 1 takes
    grant = leases.try_acquire("bank-b", "vmss-bank-b/1", 15)
    assert grant is not None
    try:
        code, out, err = run(["--member", "bank-b", "status"], capsys)
        assert code == 0 and "identity     bank-b  on vmss-bank-b/1  tenure 1" in out, err
        code, out, err = run(["--member", "bank-b", "status", "--json"], capsys)
        [running] = json.loads(out)["identities"]["running"]
        assert (running["identity"], running["holder"], running["fencing_token"]) == ("bank-b", "vmss-bank-b/1", 1)
    finally:
        leases.release(grant)


def test_the_member_may_come_from_the_environment_and_its_settings_too(
    operator: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(context.MEMBER_ENV, "bank-b")
    code, out, _ = run(["status", "--json"], capsys)
    assert code == 0 and json.loads(out)["member_id"] == "bank-b"
    # an operator in Azure exports the deployment's settings: then no file is read
    exported = context.settings("bank-b").values
    monkeypatch.chdir("/")
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    context.settings.cache_clear()
    code, out, _ = run(["status", "--json"], capsys)
    assert code == 0 and json.loads(out)["member_id"] == "bank-b"


def test_chain_json_is_the_genesis_hash_and_every_document_whole(
    operator: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["--member", "bank-c", "chain", "--json"], capsys)
    assert code == 0
    document = json.loads(out)
    assert set(document) == {"genesis", "versions"} and document["genesis"] == operator.genesis
    [genesis] = document["versions"]
    assert chain.document_hash(genesis) == operator.genesis
    assert [s["member_id"] for s in genesis["signatures"]] == ["bank-a", "bank-b"]
    assert chain.verify_genesis(operator.genesis, genesis).version == 0
    code, out, _ = run(["--member", "bank-c", "chain"], capsys)
    assert code == 0 and "v0" in out and "signed by bank-a, bank-b" in out


def test_members_and_proposals_are_what_the_members_own_view_holds(
    operator: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["--member", "bank-b", "members", "--json"], capsys)
    assert code == 0 and [m["member_id"] for m in json.loads(out)] == ["bank-a", "bank-b"]
    code, out, _ = run(["--member", "bank-b", "proposals", "--json"], capsys)
    assert code == 0
    [proposal] = json.loads(out)
    assert proposal["proposal_id"] == PROPOSAL and proposal["signed_by"] == ["bank-a"] and proposal["status"] == "open"
    code, out, _ = run(["--member", "bank-b", "proposals"], capsys)
    assert code == 0 and PROPOSAL in out and "admit bank-c" in out


def test_a_decision_is_posted_taken_by_the_deployment_and_the_same_decision_again_exits_0(
    operator: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["--member", "bank-b", "approve", PROPOSAL], capsys)
    assert code == 0 and f"posted bank-b's approve of {PROPOSAL}" in out
    [raw] = take("bank-b", ob.APPROVALS)
    assert json.loads(raw) == {"proposal_id": PROPOSAL, "decision": "approve"}
    outcome = platform("bank-b").onboarding.decide(raw)
    assert outcome.action == "decided", outcome
    code, out, _ = run(["--member", "bank-b", "approve", PROPOSAL], capsys)
    assert code == 0 and "already decided approve" in out
    assert queued("bank-b", ob.APPROVALS) == [], "the same decision again posts nothing"
    code, _, err = run(["--member", "bank-b", "reject", PROPOSAL], capsys)
    assert code == 2 and "already decided approve" in one_line(err)


def test_a_decision_on_a_proposal_the_member_does_not_know_is_refused_before_anything_is_posted(
    operator: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["--member", "bank-a", "reject", "prop-nobody"], capsys)
    assert code == 2 and "prop-nobody is not a proposal bank-a knows" in one_line(err)
    code, _, err = run(["--member", "bank-a", "approve", "../etc"], capsys)
    assert code == 2 and "proposal_id" in one_line(err)
    assert queued("bank-a", ob.APPROVALS) == []


def test_leave_and_remove_post_this_members_own_offboarding_requests(
    operator: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["--member", "bank-a", "leave", "--reason", "merger", "--request-id", "off-a-1"], capsys)
    assert code == 0 and "bank-a proposes to leave" in out
    code, out, _ = run(["--member", "bank-a", "remove", "bank-b", "--request-id", "off-b-1"], capsys)
    assert code == 0 and "bank-a proposes to remove bank-b" in out
    assert queued("bank-a", ob.OFFBOARDING) == [
        {"request_id": "off-a-1", "reason": "merger"},
        {"request_id": "off-b-1", "reason": "removed by the members", "member_id": "bank-b"},
    ]
    take("bank-a", ob.OFFBOARDING)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--member", "bank-c", "leave"], "bank-c is not in its verified chain"),
        (["--member", "bank-a", "remove", "bank-a"], "use `consortium leave`"),
        (["--member", "bank-a", "remove", "bank-z"], "bank-z is not in bank-a's verified chain"),
        (["--member", "bank-c", "remove", "bank-a"], "only a member proposes a removal"),
        (["--member", "bank-a", "remove", "Bank B"], "MEMBER 'Bank B' must match"),
        (["--member", "bank-a", "leave", "--reason", ""], "reason"),
        (["--member", "bank-d", "join", "--legal-name", "Bank D"], "legal_name: 'Bank D' is not ATTRIBUTE=value"),
        (["--member", "bank-d", "join", "--legal-name", "O=Bank D, L=Berlin, C=XX"], "not an ISO 3166"),
        (["--member", "bank-d", "join", "--legal-name", "O=Bank D, L=Berlin, C=DE", "--node-count", "0"],
         "node_count"),
        (["--member", "bank-d", "join", "--legal-name", "O=Bank D, L=Berlin, C=DE", "--min-nodes", "3",
          "--max-nodes", "2"], "min_nodes must not exceed max_nodes"),
        (["--member", "bank-d", "rejections", "--limit", "0"], "--limit"),
        (["--member", "bank-d", "rotate-keys", "--request-id", "../etc"], "request_id"),
        (["--member", "bank-d", "rotate-keys", "--wait", "-1"], "--wait"),
        (["--member", "bank-d", "status", "--watch", "-1"], "--watch"),
        (["--member", "bank-d", "status", "--watch", "2", "--json"], "--watch"),
        (["--member", "bank-d", "load", "--tpm", "-1"], "--tpm"),
    ],
)  # fmt: skip
def test_bad_input_is_exit_2_with_a_one_line_reason_before_anything_is_posted(
    operator: World, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    assert main(argv) == 2
    assert words in one_line(capsys.readouterr().err)
    member = argv[1]
    for queue in (ob.REQUESTS, ob.OFFBOARDING, ob.APPROVALS):
        assert queued(member, queue) == []


def test_join_posts_the_members_own_request_and_wait_follows_it(
    operator: World, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--member", "bank-d", "join", "--legal-name", "O=Bank D, L=Berlin, C=DE", "--request-id", "req-d-1",
            "--max-nodes", "4"]  # fmt: skip
    code, out, _ = run(argv, capsys)
    assert code == 0 and "posted req-d-1: bank-d asks to join" in out
    assert queued("bank-d", ob.REQUESTS) == [
        {"request_id": "req-d-1", "member_id": "bank-d", "legal_name": "O=Bank D, L=Berlin, C=DE",
         "region": "westeurope", "node_count": 2, "contact_email": "ops@bank-d.example",
         "scale": {"min_nodes": 1, "max_nodes": 4}},
    ]  # fmt: skip
    take("bank-d", ob.REQUESTS)
    # nothing takes it here: --wait says where it stands and gives up with exit 1
    code, _, err = run([*argv, "--wait", "1"], capsys)
    assert code == 1 and "bank-d: queued" in err and "still queued after 1 s" in err.strip().splitlines()[-1]
    take("bank-d", ob.REQUESTS)
    # an active member asking again under its request id is told at once
    platform("bank-d").state.create("members/bank-d.json", {"member_id": "bank-d", "request_id": "req-d-1",
                                    "status": "active", "steps": {"keys": "t", "provision": "t"}})  # fmt: skip
    code, out, err = run([*argv, "--wait", "10"], capsys)
    assert code == 0 and "bank-d is active (chain version 0)" in out and "steps done: keys,provision" in err
    take("bank-d", ob.REQUESTS)


def test_rejections_and_replay_poison_act_on_the_members_own_storage(
    operator: World, capsys: pytest.CaptureFixture[str]
) -> None:
    p = platform("bank-a")
    p.queues.send(f"{ob.OFFBOARDING}-poison", '{"request_id": "off-x", "reason": "x"}')
    code, out, _ = run(["--member", "bank-a", "replay-poison", "--queue", ob.OFFBOARDING], capsys)
    assert code == 0 and f"replayed 1 message(s) from {ob.OFFBOARDING}-poison" in out
    assert queued("bank-a", ob.OFFBOARDING) == [{"request_id": "off-x", "reason": "x"}]
    take("bank-a", ob.OFFBOARDING)
    outcome = p.onboarding.decide('{"proposal_id": "prop-nobody", "decision": "approve"}')
    assert outcome.reason == "unknown_proposal"
    code, out, _ = run(["--member", "bank-a", "rejections", "--json"], capsys)
    assert code == 0 and [r["reason"] for r in json.loads(out)] == ["unknown_proposal"]


def test_status_watch_prints_a_frame_per_refresh(operator: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--member", "bank-a", "status", "--watch", "2.5"], capsys)
    assert code == 0
    assert out.count("bank-a's status at ") == 2 and out.count("proposals\n") == 2 and PROPOSAL in out


def test_load_sets_the_offered_load_of_the_members_own_scale_set(
    operator: World, emulator_instance: EmulatorHandle
) -> None:
    assert main(["--member", "bank-c", "load", "--tpm", "1500"]) == 0
    assert admin(emulator_instance, "GET", "/_admin/load/vmss-bank-c")["tpm"] == 1500  # type: ignore[index]


def test_an_unreachable_emulator_is_a_failure_that_says_what_to_do(
    operator: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    values = {**context.settings("bank-c").values, "AZURE_ARM_ENDPOINT": "https://localhost:1",
              "AZURE_CREDENTIAL": "emulator"}  # fmt: skip
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    context.settings.cache_clear()
    code, _, err = run(["--member", "bank-c", "load", "--tpm", "1"], capsys)
    assert code == 1 and "make up" in one_line(err)
