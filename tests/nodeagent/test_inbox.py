"""The agent offers its node's own ``NodeInfo`` file to the member's inbox: on a fake inbox, one row per
rule, then on Azurite with the write-only SAS a local agent is given."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient

from nodeagent.config import AgentConfig
from nodeagent.container import BlobInbox
from nodeagent.inbox import Offered, offer, own_node_info
from shared.decisions import node_infos
from tests.nodeagent.conftest import ACCOUNT, Published
from tools import azurite, provision

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NODE = b"corda\x01\x00 a SignedNodeInfo of bank-a's node"


@dataclass
class FakeInbox:
    blobs: dict[str, bytes] = field(default_factory=dict)
    refreshed: list[str] = field(default_factory=list)

    def refresh(self, name: str) -> bool:
        if name not in self.blobs:
            return False
        self.refreshed.append(name)
        return True

    def create(self, name: str, data: bytes) -> None:
        self.blobs.setdefault(name, data)


def _corda(config: AgentConfig, name: str, data: bytes, *, mtime: float | None = None) -> Path:
    config.corda_dir.mkdir(parents=True, exist_ok=True)
    path = config.corda_dir / name
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_the_file_corda_wrote_is_uploaded_once_by_its_hash_then_only_refreshed(agent_config: AgentConfig) -> None:
    inbox = FakeInbox()
    assert offer(agent_config, inbox, now=T0).outcome is Offered.NO_FILE, "Corda has not started yet"
    _corda(agent_config, "nodeInfo-5F3A", NODE)
    sha = hashlib.sha256(NODE).hexdigest()

    assert offer(agent_config, inbox, now=T0).outcome is Offered.UPLOADED
    assert inbox.blobs == {sha: NODE}
    later = T0 + timedelta(seconds=node_infos.INBOX_REFRESH_SECONDS - 1)
    assert offer(agent_config, inbox, now=later).outcome is Offered.UNCHANGED, "nothing sent between refreshes"
    assert inbox.refreshed == []
    due = T0 + timedelta(seconds=node_infos.INBOX_REFRESH_SECONDS)
    assert offer(agent_config, inbox, now=due).outcome is Offered.REFRESHED
    assert inbox.refreshed == [sha]

    inbox.blobs.clear()  # the control plane removed it as stale (the VM was stopped a while)
    again = due + timedelta(seconds=node_infos.INBOX_REFRESH_SECONDS)
    assert offer(agent_config, inbox, now=again).outcome is Offered.UPLOADED
    assert inbox.blobs == {sha: NODE}


def test_a_new_file_is_offered_at_once_and_only_the_newest_one(agent_config: AgentConfig) -> None:
    inbox = FakeInbox()
    _corda(agent_config, "nodeInfo-OLD", b"corda\x01\x00 old", mtime=1_000)
    offer(agent_config, inbox, now=T0)
    newer = b"corda\x01\x00 new address"
    _corda(agent_config, "nodeInfo-NEW", newer, mtime=2_000)
    (agent_config.corda_dir / "nodeInfo-link").symlink_to(agent_config.corda_dir / "nodeInfo-OLD")
    assert own_node_info(agent_config.corda_dir) == agent_config.corda_dir / "nodeInfo-NEW", "no symlink"
    result = offer(agent_config, inbox, now=T0 + timedelta(seconds=1))
    assert (result.outcome, result.sha256) == (Offered.UPLOADED, hashlib.sha256(newer).hexdigest())


def test_a_file_larger_than_a_node_info_can_be_is_not_offered(agent_config: AgentConfig) -> None:
    inbox = FakeInbox()
    _corda(agent_config, "nodeInfo-HUGE", b"x" * (node_infos.MAX_NODE_INFO_BYTES + 1))
    assert offer(agent_config, inbox, now=T0).outcome is Offered.TOO_LARGE
    assert inbox.blobs == {}


@pytest.mark.integration
def test_on_azurite_the_write_only_sas_uploads_and_refreshes_and_reads_nothing(
    agent_azurite: azurite.Azurite, published: Published, agent_config: AgentConfig
) -> None:
    service = BlobServiceClient.from_connection_string(agent_azurite.connection_string_for(ACCOUNT))
    container = service.get_container_client(node_infos.INBOX_CONTAINER)
    if container.exists():
        container.delete_container()
    container.create_container()
    sas = provision.inbox_write_sas(ACCOUNT, azurite.ACCOUNT_KEY, now=datetime.now(UTC))
    url = f"{agent_azurite.blob_endpoint(ACCOUNT).rstrip('/')}/{node_infos.INBOX_CONTAINER}?{sas}"
    config = replace(agent_config, inbox_url=url)
    _corda(config, "nodeInfo-5F3A", NODE)
    sha = hashlib.sha256(NODE).hexdigest()

    inbox = BlobInbox.from_config(config)
    assert offer(config, inbox, now=T0).outcome is Offered.UPLOADED
    first = container.get_blob_client(sha).get_blob_properties().last_modified
    assert container.download_blob(sha).readall() == NODE
    inbox.create(sha, b"other bytes")  # never overwrites: the name is the content's hash
    assert container.download_blob(sha).readall() == NODE
    assert offer(config, inbox, now=T0 + timedelta(hours=1)).outcome is Offered.REFRESHED
    assert container.get_blob_client(sha).get_blob_properties().last_modified >= first
    with pytest.raises(HttpResponseError):
        inbox.client.download_blob(sha).readall()  # the node's SAS cannot read (nor list) the inbox
