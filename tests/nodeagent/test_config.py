"""The agent's config file: one row per rule, each refusal naming its key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nodeagent.config import ConfigError, Credential, load, parse

SAS_URL = "http://127.0.0.1:10000/banka/consortium-public?sv=2024-01-01&sr=c&sp=rl&sig=abc"
AZURE_URL = "https://stpubbanka.blob.core.windows.net/consortium-public"
INBOX_URL = "https://stbanka.blob.core.windows.net/node-infos-inbox"
INBOX_SAS_URL = "http://127.0.0.1:10000/banka/node-infos-inbox?sv=2024-01-01&sr=c&sp=cw&sig=abc"
GOOD: dict[str, Any] = {
    "member_id": "bank-a",
    "genesis": "ab" * 32,
    "container_url": AZURE_URL,
    "credential": "managed-identity",
    "managed_identity_client_id": "00000000-0000-0000-0000-000000000001",
    "corda_dir": "/opt/corda",
    "state_dir": "/var/lib/nodeagent",
}


@dataclass(frozen=True)
class Row:
    why: str
    changes: dict[str, Any]
    error: str | None  # a fragment of the refusal; None: accepted


ROWS = [
    Row("the managed identity with the container's plain URL is accepted", {}, None),
    Row("a SAS URL with credential sas is accepted", {"credential": "sas", "container_url": SAS_URL,
                                                      "managed_identity_client_id": ""}, None),
    Row("an empty client id means the VM's only identity", {"managed_identity_client_id": ""}, None),
    Row("an unknown key is refused", {"network_map_url": "x"}, "unknown key(s) network_map_url"),
    Row("a missing genesis is refused", {"genesis": ""}, "genesis is required"),
    Row("a genesis that is not a hash is refused", {"genesis": "AB" * 32}, "genesis must be"),
    Row("a placeholder cloud-init left is refused by name", {"container_url": "${PUBLIC_CONTAINER_URL}"},
        "container_url is still the placeholder"),
    Row("an unknown credential is refused", {"credential": "account-key"}, "credential must be one of"),
    Row("a URL of another container is refused", {"container_url": AZURE_URL.replace("public", "private")},
        "container_url must be the URL of the member's consortium-public"),
    Row("sas without a SAS in the URL is refused", {"credential": "sas"}, "carries no SAS"),
    Row("a SAS in the URL with the managed identity is refused (the secret would be ignored, and kept)",
        {"container_url": SAS_URL.replace("http://", "https://")}, "no query string"),
    Row("the managed identity over plain http is refused", {"container_url": AZURE_URL.replace("https", "http")},
        "must be https"),
    Row("a client id that is not a GUID is refused", {"managed_identity_client_id": "nodes"}, "must be a client id"),
    Row("a relative corda_dir is refused", {"corda_dir": "corda"}, "corda_dir must be an absolute path"),
    Row("a member id outside the pattern is refused", {"member_id": "Bank A"}, "member_id 'Bank A' must match"),
    Row("a value of the wrong type is refused", {"state_dir": 7}, "state_dir must be a string"),
    Row("the inbox's plain URL with the managed identity is accepted", {"inbox_url": INBOX_URL}, None),
    Row("an inbox SAS URL with credential sas is accepted", {"credential": "sas", "container_url": SAS_URL,
                                                            "inbox_url": INBOX_SAS_URL}, None),
    Row("an inbox placeholder cloud-init left is refused by name", {"inbox_url": "${INBOX_CONTAINER_URL}"},
        "inbox_url is still the placeholder"),
    Row("an inbox URL of another container is refused", {"inbox_url": AZURE_URL},
        "inbox_url must be the URL of the member's node-infos-inbox"),
    Row("sas without a SAS in the inbox URL is refused", {"credential": "sas", "container_url": SAS_URL,
                                                         "inbox_url": INBOX_URL}, "inbox_url carries no SAS"),
    Row("a SAS in the inbox URL with the managed identity is refused",
        {"inbox_url": INBOX_SAS_URL.replace("http://", "https://")}, "inbox_url must carry no query string"),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.why for r in ROWS])
def test_config_rules(row: Row) -> None:
    values = {**GOOD, **row.changes}
    if row.error is None:
        config = parse(values)
        assert config.node_infos_dir == Path(values["corda_dir"]) / "additional-node-infos"
        assert config.inbox_url == values.get("inbox_url", ""), "no inbox_url: the node offers nothing"
    else:
        with pytest.raises(ConfigError) as caught:
            parse(values)
        assert row.error in str(caught.value)


def test_a_config_file_is_read_as_toml_and_a_broken_one_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("\n".join(f'{k} = "{v}"' for k, v in GOOD.items()))
    assert load(path).credential is Credential.MANAGED_IDENTITY
    path.write_text("genesis = ")
    with pytest.raises(ConfigError, match="is not TOML"):
        load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "absent.toml")
