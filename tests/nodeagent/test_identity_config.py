"""The identity keeper's configuration (nodeagent/identity/config.py): a file it cannot run with is refused
naming the key and the rule, before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nodeagent.config import ConfigError, Credential
from nodeagent.identity.__main__ import main
from nodeagent.identity.config import load, parse

GOOD: dict[str, Any] = {
    "identity": "bank-a",
    "scale_set": "vmss-bank-a",
    "instance_id": "3",
    "leases_url": "https://stbanka.blob.core.windows.net/identity-leases",
    "credential": "managed-identity",
    "ledger": "host=pg.bank-a.internal port=5432 dbname=ledger_bank_a user=ledger_bank_a sslmode=require",
    "ledger_password_file": "/etc/nodeagent/ledger-bank-a.pw",
    "node_command": ["/opt/corda/bin/corda-node"],
}


def test_a_good_file_gives_the_holder_and_the_defaults() -> None:
    config = parse(GOOD)
    assert config.holder == "vmss-bank-a/3" and config.credential is Credential.MANAGED_IDENTITY
    assert config.migrate_command == () and config.times == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "unknown key(s) colour"),
        ({"identity": ""}, "identity is required"),
        ({"identity": "Bank A"}, "identity 'Bank A' must match"),
        ({"instance_id": "vm3"}, "scale_set and instance_id: holder 'vmss-bank-a/vm3'"),
        ({"instance_id": "${INSTANCE_ID}"}, "instance_id is still the placeholder"),
        ({"credential": "key"}, "credential must be one of managed-identity, sas"),
        ({"leases_url": "https://stbanka.blob.core.windows.net/consortium"}, "identity-leases container"),
        ({"leases_url": "https://stbanka.blob.core.windows.net/identity-leases?sig=x"}, "no query string"),
        ({"credential": "sas"}, "carries no SAS"),
        ({"managed_identity_client_id": "me"}, "must be a client id"),
        ({"ledger": "host=pg password=hunter2 dbname=x"}, "must not carry a password"),
        ({"ledger_password_file": "ledger.pw"}, "ledger_password_file must be an absolute path"),
        ({"node_command": []}, "node_command is required"),
        ({"node_command": "corda"}, "node_command must be a list of non-empty strings"),
        ({"migrate_command": [""]}, "migrate_command must be a list of non-empty strings"),
        ({"times": 5}, "times must be a table"),
        ({"times": {"lease": 30}}, "unknown key(s) in times: lease"),
        ({"times": {"lease_seconds": 30.5}}, "times.lease_seconds must be a positive whole number"),
        ({"times": {"grace": -1}}, "times.grace must be a positive number"),
        ({"times": {"grace": True}}, "times.grace must be a positive number"),
    ],
)
def test_a_file_it_cannot_run_with_names_the_key_and_the_rule(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({**GOOD, **change})
    assert message in str(caught.value)


def _write(tmp_path: Path, values: dict[str, Any], password: str | None) -> Path:
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            continue
        rendered = "[" + ", ".join(f'"{v}"' for v in value) + "]" if isinstance(value, list) else f'"{value}"'
        lines.append(f"{key} = {rendered}")
    for key, value in values.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {v}" for k, v in value.items()]
    path = tmp_path / "identity.toml"
    path.write_text("\n".join(lines) + "\n")
    if password is not None:
        (tmp_path / "ledger.pw").write_text(password)
    return path


@pytest.mark.parametrize(
    ("values", "password", "message"),
    [
        ({"times": {"lease_seconds": 20, "renew_every": 5}}, "pw", "times: lease_seconds 20 leaves no room"),
        ({}, None, "ledger_password_file: cannot read"),
        ({}, "  \n", "is empty"),
    ],
)
def test_the_command_exits_2_naming_what_is_wrong_before_it_starts_anything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, values: dict[str, Any], password: str | None, message: str
) -> None:
    path = _write(tmp_path, {**GOOD, "ledger_password_file": str(tmp_path / "ledger.pw"), **values}, password)
    assert load(path).identity == "bank-a"
    assert main(["--config", str(path)]) == 2
    assert message in caplog.text


def test_a_file_that_is_not_toml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "identity.toml"
    path.write_text("identity = \n")
    with pytest.raises(ConfigError, match="is not TOML"):
        load(path)
