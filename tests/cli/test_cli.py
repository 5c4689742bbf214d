"""The `consortium` command line: help on every command, the contract's exit codes, real effects."""

from __future__ import annotations

import json

import pytest

from cli import context
from cli.main import main
from shared.settings import Settings
from tests.conftest import admin
from tools.emulator import EmulatorHandle


@pytest.fixture
def use_settings(monkeypatch: pytest.MonkeyPatch, azure_settings: Settings) -> Settings:
    for key, value in azure_settings.values.items():
        monkeypatch.setenv(key, value)
    context.settings.cache_clear()
    yield azure_settings  # type: ignore[misc]
    context.settings.cache_clear()


@pytest.mark.parametrize(
    "command",
    ["status", "load", "fault", "onboard", "approve", "reject", "offboard", "members", "rejections", "replay-poison",
     "rotate-keys"],
)  # fmt: skip
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "usage: consortium " + command in capsys.readouterr().out


def test_no_command_and_unknown_commands_are_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    with pytest.raises(SystemExit) as done:
        main(["frobnicate"])
    assert done.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_a_bad_member_id_is_bad_input_with_a_one_line_reason(
    use_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["load", "../etc/passwd", "--tpm", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "MEMBER" in err and "must match" in err


def test_load_sets_the_offered_load_of_the_members_scale_set(
    use_settings: Settings, emulator_instance: EmulatorHandle
) -> None:
    assert main(["load", "bank-q", "--tpm", "1500"]) == 0
    assert admin(emulator_instance, "GET", "/_admin/load/vmss-bank-q")["tpm"] == 1500  # type: ignore[index]


def test_an_unreachable_emulator_is_a_failure_that_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, use_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AZURE_ARM_ENDPOINT", "https://localhost:1")
    context.settings.cache_clear()
    assert main(["load", "bank-q", "--tpm", "1"]) == 1
    assert "make up" in capsys.readouterr().err


def test_status_json_has_the_contract_shape(use_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--json"]) == 0
    model = json.loads(capsys.readouterr().out)
    assert set(model) >= {"coordinator", "network_map_version", "members", "poison"}
    assert set(model["coordinator"]) == {"holder", "fencing_token", "expires_at"}
    assert isinstance(model["network_map_version"], int)
    assert all(q.endswith("-poison") and isinstance(n, int) for q, n in model["poison"].items())


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["onboard", "bank-c", "--legal-name", "Bank C"], "legal_name: 'Bank C' is not ATTRIBUTE=value"),
        (["onboard", "bank-c", "--legal-name", "O=Bank C, L=Amsterdam, C=XX"], "not an ISO 3166"),
        (["onboard", "../x", "--legal-name", "O=Bank C, L=Amsterdam, C=NL"], "MEMBER '../x' must match"),
        (["approve", "req-1", "--as", "Bank A"], "--as 'Bank A' must match"),
        (["onboard", "bank-c", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--nodes", "0"], "node_count"),
        (["offboard", "bank-c", "--reason", ""], "reason"),
        (["rejections", "--limit", "0"], "--limit"),
        (["rotate-keys", "--member", "Bank C"], "--member 'Bank C' must match"),
        (["rotate-keys", "--request-id", "../etc"], "request_id"),
        (["rotate-keys", "--wait", "-1"], "--wait"),
        (["status", "--watch", "-1"], "--watch"),
        (["status", "--watch", "2", "--json"], "--watch"),
    ],
)
def test_bad_input_is_exit_2_naming_the_field_before_anything_is_posted(
    use_settings: Settings, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and words in err


def test_a_vote_for_an_unknown_request_is_bad_input(use_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["approve", "req-nobody", "--as", "bank-a", "--wait", "0"]) == 2
    assert "no onboarding request with that id" in capsys.readouterr().err


def test_onboard_posts_a_valid_request_and_members_and_rejections_answer(
    use_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.bootstrap import Platform

    argv = ["onboard", "cli-bank", "--legal-name", "O=CLI Bank, L=Oslo, C=NO", "--request-id", "req-cli-1"]
    assert main(argv) == 0
    assert "posted req-cli-1" in capsys.readouterr().out
    queues = Platform(context.settings()).queues
    client = queues.service.get_queue_client("onboarding-requests")
    bodies = [json.loads(m.content) for m in client.peek_messages(max_messages=32)]
    assert {"request_id": "req-cli-1", "member_id": "cli-bank"}.items() <= next(
        b for b in bodies if b["request_id"] == "req-cli-1"
    ).items()
    assert main(["members"]) == 0
    capsys.readouterr()
    assert main(["rejections", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)


def test_status_watch_prints_a_frame_per_refresh(use_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--watch", "2.5"]) == 0
    out = capsys.readouterr().out
    assert out.count("consortium status at ") == 2 and out.count("coordinator  ") == 2
