"""From one member's publication to another member's node, on the real adapters and Azurite: bank-b
publishes its signed node-info index in its own account; bank-a's control plane mirrors it (reading
bank-b's container with the read-only SAS bank-b granted, ``PeerBlobs``, and writing its own,
``PublicBlobs``); bank-a's node agent, reading bank-a's container only, writes bank-b's file."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from nodeagent.container import BlobContainer
from nodeagent.run import run_once
from shared.adapters.published_blobs import PeerBlobs, PublicBlobs
from shared.decisions import chain, node_infos
from shared.fakes.clock import FakeClock
from shared.fakes.queues import FakeQueues
from shared.fakes.state import FakeStateStore
from shared.services.node_infos import Mirrored, NodeInfoMirror
from shared.services.records import Events, Rejections
from tests.nodeagent.conftest import ACCOUNT, PEER_ACCOUNT, Published, config_for, signed_index
from tests.support.chain_world import banks, sign
from tools import azurite, provision

pytestmark = pytest.mark.integration


def test_a_members_node_info_reaches_another_members_node_through_its_control_planes_mirror(
    agent_azurite: azurite.Azurite, published: Published, tmp_path: Path
) -> None:
    peer_service = BlobServiceClient.from_connection_string(agent_azurite.connection_string_for(PEER_ACCOUNT))
    theirs = peer_service.get_container_client(provision.PUBLIC_CONTAINER)
    if not theirs.exists():
        theirs.create_container()
    endpoint = {
        "bank-a": provision.public_container_url(agent_azurite.blob_endpoint(ACCOUNT)),
        "bank-b": provision.public_container_url(agent_azurite.blob_endpoint(PEER_ACCOUNT)),
    }
    bank = banks("bank-a", "bank-b")
    entries: list[dict[str, Any]] = [{**b.entry, "endpoint": endpoint[i]} for i, b in bank.items()]
    v0 = sign(chain.unsigned_genesis("credit-consortium", entries, convener="bank-a",
                                     issued_at="2026-11-28T10:00:00Z"), *bank.values())  # fmt: skip
    head = chain.verify_genesis(chain.document_hash(v0), v0)

    # bank-b publishes its node's file and its signed index in its own container
    node = b"bank-b's node: a serialized SignedNodeInfo"
    theirs.upload_blob(node_infos.node_info_path("bank-b", hashlib.sha256(node).hexdigest()), node, overwrite=True)
    theirs.upload_blob(node_infos.index_path("bank-b"), signed_index(bank["bank-b"], [node], seq=1), overwrite=True)

    # bank-a's control plane: its own chain published, then the mirror
    published.put_chain([v0])
    sas = provision.public_read_sas(PEER_ACCOUNT, azurite.ACCOUNT_KEY, now=datetime.now(UTC))
    peers = PeerBlobs({"bank-b": f"{endpoint['bank-b']}?{sas}"}, {})
    clock = FakeClock()
    state = FakeStateStore()
    mirror = NodeInfoMirror("bank-a", PublicBlobs(published.container), peers,
                            Rejections(state, Events(FakeQueues(), clock), clock))  # fmt: skip
    assert mirror.mirror(head) == {"bank-b": Mirrored.COPIED}
    assert mirror.mirror(head) == {"bank-b": Mirrored.UNCHANGED}

    # bank-a's node agent
    config = config_for(published, tmp_path, head.hash)
    report = run_once(config, BlobContainer.from_config(config), now=lambda: datetime.now(UTC), log=lambda _: None)

    wanted = node_infos.disk_name("bank-b", hashlib.sha256(node).hexdigest())
    assert report.written == (wanted,)
    assert (config.node_infos_dir / wanted).read_bytes() == node
    assert [(r.where, r.rule) for r in report.refused] == [("nodes/bank-a/index.json", "missing")]
