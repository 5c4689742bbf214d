"""Each member deployment's ``.local/members/{member_id}/local.settings.json``: complete, its own
account, port and host id, read-only credentials to the others' published containers, and no key
but Azurite's public development key."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient, ContainerClient

from tools import azurite, member_settings, provision

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


@pytest.fixture
def written(tmp_path: Path, member_azurite: azurite.Azurite) -> dict[str, dict[str, object]]:
    files = member_settings.write_all(member_azurite, root=tmp_path, now=NOW)
    assert files == {m: tmp_path / ".local" / "members" / m / "local.settings.json" for m in azurite.MEMBER_IDS}
    return {m: json.loads(path.read_text()) for m, path in files.items()}


def values(document: dict[str, object]) -> dict[str, str]:
    raw = document["Values"]
    assert isinstance(raw, dict)
    return {str(k): str(v) for k, v in raw.items()}


def test_each_file_holds_every_sample_setting_and_every_member_setting(written: dict[str, dict[str, object]]) -> None:
    for member, document in written.items():
        got = values(document)
        assert set(SAMPLE) <= set(got), member
        assert set(member_settings.MEMBER_SETTINGS) <= set(got), member
        assert set(got) == set(SAMPLE) | set(member_settings.MEMBER_SETTINGS), member
        assert all(v != "" for k, v in got.items() if k in member_settings.MEMBER_SETTINGS), member
        assert document["IsEncrypted"] is False


def test_each_member_has_its_own_id_account_port_host_id_and_subscription(
    written: dict[str, dict[str, object]], member_azurite: azurite.Azurite, tmp_path: Path
) -> None:
    ports = {m: member_settings.read(tmp_path / ".local" / "members" / m / "local.settings.json")[1] for m in written}
    assert ports == {"bank-a": 7071, "bank-b": 7072, "bank-c": 7073, "bank-d": 7074}
    seen: dict[str, set[str]] = {"hostid": set(), "deployment": set(), "subscription": set()}
    for member, document in written.items():
        got = values(document)
        account = azurite.account_for(member)
        assert got["CONSORTIUM_MEMBER_ID"] == member
        assert got["AzureWebJobsStorage"] == member_azurite.connection_string_for(account)
        assert got["CONSORTIUM_PUBLIC_ENDPOINT"] == f"{member_azurite.blob_endpoint(account)}/consortium-public"
        assert got["AZURE_EMULATOR_PRINCIPAL"] == member
        assert got["AZURE_SUBSCRIPTION_ID"] != "00000000-0000-0000-0000-000000000000"
        assert got["AZURE_SUBSCRIPTION_ID"] in got["SCALE_SET_TEMPLATE"]
        assert "00000000-0000-0000-0000-000000000000" not in got["SCALE_SET_TEMPLATE"]
        seen["hostid"].add(got["AzureFunctionsWebHost__hostid"])
        seen["deployment"].add(got["CONSORTIUM_DEPLOYMENT"])
        seen["subscription"].add(got["AZURE_SUBSCRIPTION_ID"])
        # the rest is the sample's
        for key, value in SAMPLE.items():
            if key not in member_settings.MEMBER_SETTINGS and key != "SCALE_SET_TEMPLATE":
                assert got[key] == value, (member, key)
    assert all(len(s) == len(written) for s in seen.values()), seen
    assert member_settings.subscription_id("bank-a") == member_settings.subscription_id("bank-a")  # stable


def test_each_member_gets_a_read_only_url_for_every_other_members_published_container(
    written: dict[str, dict[str, object]], member_azurite: azurite.Azurite
) -> None:
    for member, document in written.items():
        peers = json.loads(values(document)["CONSORTIUM_PEER_READ_URLS"])
        assert set(peers) == set(azurite.MEMBER_IDS) - {member}
        for peer, url in peers.items():
            parts = urlsplit(url)
            assert f"{parts.scheme}://{parts.netloc}" == f"http://127.0.0.1:{member_azurite.blob_port}"
            assert parts.path == f"/{azurite.account_for(peer)}/consortium-public"
            sas = parse_qs(parts.query)
            assert sas["sp"] == ["rl"] and sas["sr"] == ["c"], (member, peer)
            expiry = datetime.fromisoformat(sas["se"][0].replace("Z", "+00:00"))
            assert NOW < expiry <= NOW + provision.MAX_SAS_LIFETIME


def test_the_files_carry_no_key_but_the_public_development_key(written: dict[str, dict[str, object]]) -> None:
    for member, document in written.items():
        text = json.dumps(document)
        keys = re.findall(r"AccountKey=([^;\"]+)", text)
        assert keys == [azurite.ACCOUNT_KEY], member  # once: the member's own connection string
        assert re.findall(r"AccountName=([a-z0-9]+)", text) == [azurite.account_for(member)]
        for key, value in values(document).items():
            if key != "CONSORTIUM_PEER_READ_URLS":
                assert "sig=" not in value and "SharedAccessSignature" not in value, (member, key)
            # nothing else shaped like a storage key (88 base64 characters)
            others = set(re.findall(r"[A-Za-z0-9+/]{86}==", value)) - {azurite.ACCOUNT_KEY}
            assert others == set(), (member, key)


def test_a_members_url_reads_that_members_container_and_nothing_more(
    tmp_path: Path, member_azurite: azurite.Azurite
) -> None:
    provision.provision(member_azurite.connection_string_for("bankc"))
    owner = BlobServiceClient.from_connection_string(member_azurite.connection_string_for("bankc"))
    owner.get_blob_client("consortium-public", "proposals/p1.json").upload_blob(b'{"p": 1}', overwrite=True)
    path = member_settings.write("bank-a", member_azurite, root=tmp_path)
    url = json.loads(member_settings.read(path)[0]["CONSORTIUM_PEER_READ_URLS"])["bank-c"]
    container = ContainerClient.from_container_url(url)
    assert "proposals/p1.json" in [b.name for b in container.list_blobs()]
    assert container.get_blob_client("proposals/p1.json").download_blob().readall() == b'{"p": 1}'
    with pytest.raises(HttpResponseError) as refused:
        container.get_blob_client("proposals/p1.json").upload_blob(b'{"p": 2}', overwrite=True)
    assert refused.value.status_code == 403


def test_a_rewrite_keeps_the_developers_values_and_renews_the_members_own(
    tmp_path: Path, member_azurite: azurite.Azurite
) -> None:
    path = member_settings.write("bank-b", member_azurite, root=tmp_path, now=NOW)
    document = json.loads(path.read_text())
    document["Values"]["LEASE_SECONDS"] = "42"
    document["Values"]["CONSORTIUM_MEMBER_ID"] = "bank-a"
    del document["Values"]["HEALTH_SCHEDULE"]
    document["Host"]["CORS"] = "*"
    path.write_text(json.dumps(document))
    later = NOW + timedelta(days=3)
    member_settings.write("bank-b", member_azurite, root=tmp_path, now=later)
    got, port = member_settings.read(path)
    assert got["LEASE_SECONDS"] == "42"  # the developer's
    assert got["CONSORTIUM_MEMBER_ID"] == "bank-b"  # the member's own, rewritten
    assert got["HEALTH_SCHEDULE"] == SAMPLE["HEALTH_SCHEDULE"]  # a setting the sample has, added back
    assert json.loads(path.read_text())["Host"] == {"CORS": "*", "LocalHttpPort": 7072}
    assert port == 7072
    expiry = parse_qs(urlsplit(json.loads(got["CONSORTIUM_PEER_READ_URLS"])["bank-a"]).query)["se"][0]
    assert expiry == (later + provision.MAX_SAS_LIFETIME).strftime("%Y-%m-%dT%H:%M:%SZ")  # a fresh credential


def test_a_scale_set_template_from_before_the_template_gained_fields_is_the_samples_again(
    tmp_path: Path, member_azurite: azurite.Azurite
) -> None:
    path = member_settings.write("bank-c", member_azurite, root=tmp_path, now=NOW)
    document = json.loads(path.read_text())
    old = {k: v for k, v in json.loads(document["Values"]["SCALE_SET_TEMPLATE"]).items() if k != "zones"}
    document["Values"]["SCALE_SET_TEMPLATE"] = json.dumps(old)
    path.write_text(json.dumps(document))
    member_settings.write("bank-c", member_azurite, root=tmp_path, now=NOW)
    got, _ = member_settings.read(path)
    renewed = json.loads(got["SCALE_SET_TEMPLATE"])
    assert set(renewed) == set(json.loads(SAMPLE["SCALE_SET_TEMPLATE"])), "a template the app would refuse is renewed"
    assert got["AZURE_SUBSCRIPTION_ID"] in renewed["subnet_id"]
    # a complete template of the developer's own is kept
    mine = {**renewed, "vm_size": "Standard_D16s_v5"}
    document = json.loads(path.read_text())
    document["Values"]["SCALE_SET_TEMPLATE"] = json.dumps(mine)
    path.write_text(json.dumps(document))
    member_settings.write("bank-c", member_azurite, root=tmp_path, now=NOW)
    assert json.loads(member_settings.read(path)[0]["SCALE_SET_TEMPLATE"])["vm_size"] == "Standard_D16s_v5"


def test_local_settings_renew_a_template_missing_fields_and_keep_everything_else(tmp_path: Path) -> None:
    from tools import local_settings

    sample, target = tmp_path / "sample.json", tmp_path / "local.settings.json"
    sample.write_text(json.dumps({"Values": {"SCALE_SET_TEMPLATE": '{"a": 1, "b": 2}', "LEASE_SECONDS": "15"}}))
    target.write_text(json.dumps({"Values": {"SCALE_SET_TEMPLATE": '{"a": 5}', "LEASE_SECONDS": "42"}}))
    assert local_settings.sync(sample, target) == ["SCALE_SET_TEMPLATE"]
    assert json.loads(target.read_text())["Values"] == {"SCALE_SET_TEMPLATE": '{"a": 1, "b": 2}', "LEASE_SECONDS": "42"}
    target.write_text(json.dumps({"Values": {"SCALE_SET_TEMPLATE": '{"a": 7, "b": 8}', "LEASE_SECONDS": "42"}}))
    assert local_settings.sync(sample, target) == []  # complete: the developer's own


def test_todays_local_settings_are_not_written(tmp_path: Path, member_azurite: azurite.Azurite) -> None:
    member_settings.write_all(member_azurite, root=tmp_path, now=NOW)
    assert not (tmp_path / "local.settings.json").exists()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        f".local/members/{m}/local.settings.json" for m in azurite.MEMBER_IDS
    ]


def test_the_emulator_can_be_elsewhere_and_ports_chosen(tmp_path: Path, member_azurite: azurite.Azurite) -> None:
    emulator = member_settings.Emulator("https://localhost:9443", tmp_path / "ca.pem")
    files = member_settings.write_all(
        member_azurite, root=tmp_path, members=("bank-a", "bank-b"), ports={"bank-a": 8101}, emulator=emulator
    )
    a, a_port = member_settings.read(files["bank-a"])
    _, b_port = member_settings.read(files["bank-b"])
    assert (a_port, b_port) == (8101, 7072)
    for key in ("AZURE_ARM_ENDPOINT", "AZURE_METRICS_ENDPOINT", "AZURE_KEY_VAULT_URL"):
        assert a[key] == "https://localhost:9443"
    assert a["AZURE_CA_BUNDLE"] == str(tmp_path / "ca.pem")
    assert set(json.loads(a["CONSORTIUM_PEER_READ_URLS"])) == {"bank-b"}
