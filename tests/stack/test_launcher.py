"""The stack's launchers on free ports in a temporary folder: the single shape creates its queues
before anything posts, and the member shape runs one local Functions host per member, each on its
own settings, port and account, taking its own messages, after the founders' genesis is in place;
``down`` stops all of it."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.decisions import chain
from tools import azurite, member_settings, provision, stack
from tools.harness.wait import wait_until


def _gone(entry: dict[str, Any]) -> bool:
    """The process a record entry names no longer runs (its pid is free, or another process's now)."""
    return not stack._alive(entry)


def _principal(port: int, ca: Path, member: str) -> dict[str, Any] | None:
    """What the emulator knows of ``member``'s identity; None when it has no per-member identities (404)."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(f"https://localhost:{port}/_admin/principals/{member}", context=context) as r:
            return dict(json.loads(r.read()))
    except urllib.error.HTTPError as e:
        assert e.code == 404
        return None


def test_the_single_shape_creates_its_queues_before_a_client_posts(tmp_path: Path) -> None:
    paths = stack.StackPaths(root=tmp_path)
    ports = azurite.free_ports(4)
    record = stack.up(
        paths, host=False, emulator_port=ports[3], azurite_ports=(ports[0], ports[1], ports[2]), quiet=True
    )
    try:
        az = azurite.Azurite(ports[0], ports[1], ports[2])
        service = QueueServiceClient.from_connection_string(az.connection_string)
        # what issue 15 saw: QueueNotFound on the first post after `make up`
        service.get_queue_client("onboarding-requests").send_message('{"request_id": "req-bank-c-001"}')
        assert set(provision.QUEUES) <= {q.name for q in service.list_queues()}
        blobs = BlobServiceClient.from_connection_string(az.connection_string)
        assert set(provision.CONTAINERS) <= {c.name for c in blobs.list_containers()}
        # a second `up` is harmless: same Azurite, the posted message still there
        again = stack.up(
            paths, host=False, emulator_port=ports[3], azurite_ports=(ports[0], ports[1], ports[2]), quiet=True
        )
        assert again["azurite"]["pid"] == record["azurite"]["pid"]
        assert service.get_queue_client("onboarding-requests").get_queue_properties().approximate_message_count == 1
    finally:
        stack.down(paths, quiet=True)
    assert all(_gone(entry) for entry in record.values())
    assert not paths.record.exists()


def test_the_single_shape_host_refuses_ports_its_settings_do_not_name(tmp_path: Path) -> None:
    with pytest.raises(stack.StackError, match="default ports"):
        stack.up(stack.StackPaths(root=tmp_path), azurite_ports=(1, 2, 3), quiet=True)


def test_one_host_per_member_each_taking_its_own_messages(tmp_path: Path) -> None:
    paths = stack.StackPaths(root=tmp_path)
    members = ("bank-a", "bank-b")
    ports = azurite.free_ports(6)
    options: dict[str, Any] = {
        "members": members,
        "emulator_port": ports[3],
        "azurite_ports": (ports[0], ports[1], ports[2]),
        "host_ports": {"bank-a": ports[4], "bank-b": ports[5]},
        "quiet": True,
    }
    record = stack.up_members(paths, **options)
    try:
        assert set(record) == {"azurite", "emulator", "funchost:bank-a", "funchost:bank-b"}
        az = azurite.Azurite(ports[0], ports[1], ports[2])
        # the founders' genesis is in place before the hosts start: in both founders' own storage, and
        # its hash in each member's settings, which each host was started with
        genesis_hash = json.loads((paths.local / "genesis.json").read_text())["hash"]
        for member in members:
            values, _ = member_settings.read(member_settings.settings_path(member, tmp_path))
            assert values["CONSORTIUM_GENESIS_HASH"] == genesis_hash
            own = BlobServiceClient.from_connection_string(az.connection_string_for(azurite.account_for(member)))
            stored = own.get_blob_client("consortium", "chain/00000000.json").download_blob().readall()
            assert chain.verify_genesis(genesis_hash, json.loads(stored)).document.member_ids == members
        for member in members:
            entry = record[f"funchost:{member}"]
            assert entry["port"] == options["host_ports"][member]
            assert entry["settings"] == str(tmp_path / ".local" / "members" / member / "local.settings.json")
            status = stack._host_status(entry["port"])
            assert status is not None and status["state"] == "Running" and status["id"] == f"consortium-{member}"
            values, _ = member_settings.read(Path(entry["settings"]))
            assert values["AZURE_EMULATOR_PRINCIPAL"] == member
            assert values["AZURE_CA_BUNDLE"] == str(paths.local / "emulator" / "ca.pem")
            assert values["AZURE_ARM_ENDPOINT"] == f"https://localhost:{ports[3]}"
            registered = _principal(ports[3], paths.local / "emulator" / "ca.pem", member)
            if registered is not None:  # an emulator with per-member identities: what it answered
                assert values["AZURE_SUBSCRIPTION_ID"] == registered["subscription_id"]
                assert values["AZURE_KEY_VAULT_URL"] == registered["vault_url"]
            else:  # not yet: the placeholders
                assert values["AZURE_SUBSCRIPTION_ID"] == member_settings.subscription_id(member)
                assert values["AZURE_KEY_VAULT_URL"] == f"https://localhost:{ports[3]}"

        # a request that can never succeed, posted to bank-a's own queue: bank-a's host takes it and
        # records the rejection in bank-a's account; bank-b's account sees nothing of it
        request = {"request_id": "req-bank-a-bad", "member_id": "bank-a", "legal_name": "not an X.500 name"}
        queue = QueueServiceClient.from_connection_string(az.connection_string_for("banka"))
        queue.get_queue_client("onboarding-requests").send_message(json.dumps(request))
        state = {m: BlobServiceClient.from_connection_string(az.connection_string_for(azurite.account_for(m)))
                 for m in members}  # fmt: skip
        inbox = queue.get_queue_client("onboarding-requests")

        def rejected(member: str) -> list[str]:
            listed = state[member].get_container_client("consortium").list_blobs(name_starts_with="rejections/")
            return [b.name for b in listed]

        # taken (the rejection recorded) and completed (the message deleted after the function returned)
        wait_until("bank-a's host to take the message and record its rejection",
                   lambda: rejected("bank-a") and not inbox.get_queue_properties().approximate_message_count, 60,
                   every=0.2, seen=lambda: (paths.logs / "funchost-bank-a.log").read_text()[-3000:])  # fmt: skip
        assert len(rejected("bank-a")) == 1
        assert rejected("bank-b") == []

        # a second `up` is harmless: everything already runs, nothing restarts
        again = stack.up_members(paths, **options)
        assert {k: v["pid"] for k, v in again.items()} == {k: v["pid"] for k, v in record.items()}
        assert json.loads((paths.local / "genesis.json").read_text())["hash"] == genesis_hash
    finally:
        stack.down(paths, quiet=True)
    assert all(_gone(entry) for entry in record.values())
    assert stack.status(paths) == {}


def test_make_up_starts_one_deployment_per_member() -> None:
    assert stack.DEFAULT_SHAPE == "members"
    recipe = Path(stack.ROOT / "Makefile").read_text().split("\nup:", 1)[1].split("\n\n", 1)[0]
    assert "-m tools.stack up" in recipe and "--shape" not in recipe  # `make up` runs the default shape
