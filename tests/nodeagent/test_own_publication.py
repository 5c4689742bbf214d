"""A member's own node info, from its node to another member's node, on the real adapters and Azurite:
bank-b's node agent offers the file Corda wrote to bank-b's private inbox (with the create+write SAS a
local agent is given); bank-b's control plane (``NodeInfoPublisher`` over ``BlobInbox`` and
``PublicBlobs``) publishes it with an index signed with the governance key bank-b's verified chain
lists; bank-a's control plane mirrors it (``NodeInfoMirror``, reading bank-b's container with the
read-only SAS bank-b granted); bank-a's node agent, reading bank-a's container only, writes it into
``additional-node-infos``."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from azure.storage.blob import BlobServiceClient

from nodeagent.container import BlobContainer
from nodeagent.container import BlobInbox as AgentInbox
from nodeagent.inbox import Offered, offer
from nodeagent.run import run_once
from shared.adapters.inbox_blobs import BlobInbox
from shared.adapters.published_blobs import PeerBlobs, PublicBlobs
from shared.decisions import chain, node_infos
from shared.fakes.clock import FakeClock
from shared.fakes.queues import FakeQueues
from shared.fakes.state import FakeStateStore
from shared.ports.keys import KeyStore
from shared.services.node_infos import Mirrored, NodeInfoMirror, NodeInfoPublisher, Publication
from shared.services.records import Events, Rejections
from tests.nodeagent.conftest import ACCOUNT, PEER_ACCOUNT, Published, config_for
from tests.support.chain_world import GovernanceKey, banks, sign
from tools import azurite, provision

pytestmark = pytest.mark.integration
#: What Corda writes at start: a SignedNodeInfo in its AMQP serialization (header ``corda`` 1 0).
NODE = b"corda\x01\x00" + b" bank-b's node: O=Bank bank-b, L=City, C=FR at 10.1.0.4:10002"


def test_a_members_own_node_info_goes_from_its_node_through_both_control_planes_to_another_members_node(
    agent_azurite: azurite.Azurite, published: Published, tmp_path: Path
) -> None:
    service = BlobServiceClient.from_connection_string(agent_azurite.connection_string_for(PEER_ACCOUNT))
    for name in (provision.PUBLIC_CONTAINER, node_infos.INBOX_CONTAINER):
        container = service.get_container_client(name)
        if container.exists():
            container.delete_container()
        container.create_container()
    endpoint = {
        "bank-a": provision.public_container_url(agent_azurite.blob_endpoint(ACCOUNT)),
        "bank-b": provision.public_container_url(agent_azurite.blob_endpoint(PEER_ACCOUNT)),
    }
    bank = banks("bank-a", "bank-b")
    entries: list[dict[str, Any]] = [{**b.entry, "endpoint": endpoint[i]} for i, b in bank.items()]
    v0 = sign(chain.unsigned_genesis("credit-consortium", entries, convener="bank-a",
                                     issued_at="2026-11-28T10:00:00Z"), *bank.values())  # fmt: skip
    head = chain.verify_genesis(chain.document_hash(v0), v0)
    now = datetime.now(UTC)

    # bank-b's node: Corda wrote its file; the agent offers it with a SAS that can create and write only
    read = provision.public_read_sas(PEER_ACCOUNT, azurite.ACCOUNT_KEY, now=now)
    write = provision.inbox_write_sas(PEER_ACCOUNT, azurite.ACCOUNT_KEY, now=now)
    inbox_url = f"{agent_azurite.blob_endpoint(PEER_ACCOUNT).rstrip('/')}/{node_infos.INBOX_CONTAINER}?{write}"
    node_b = replace(config_for(published, tmp_path / "node-b", head.hash, member_id="bank-b"), inbox_url=inbox_url)
    node_b.corda_dir.mkdir(parents=True)
    (node_b.corda_dir / "nodeInfo-0A1B2C").write_bytes(NODE)
    assert offer(node_b, AgentInbox.from_config(node_b), now=now).outcome is Offered.UPLOADED

    # bank-b's control plane: from its inbox to its own container, signed with its governance key
    clock = FakeClock(now)
    state = FakeStateStore()
    rejections = Rejections(state, Events(FakeQueues(), clock), clock)
    own = PublicBlobs(service.get_container_client(provision.PUBLIC_CONTAINER))
    publisher = NodeInfoPublisher(
        "bank-b", BlobInbox(service.get_container_client(node_infos.INBOX_CONTAINER)), own,
        cast(KeyStore, GovernanceKey(bank["bank-b"])), state, rejections, clock,
    )  # fmt: skip
    assert publisher.publish(head) is Publication.PUBLISHED
    assert publisher.publish(head) is Publication.UNCHANGED, "the same set writes nothing"
    member_b = head.document.member("bank-b")
    assert member_b is not None
    index = node_infos.verify_index(own.get(node_infos.index_path("bank-b")) or b"", member=member_b)
    assert [(e.sha256, e.size) for e in index.index.node_infos] == [(hashlib.sha256(NODE).hexdigest(), len(NODE))]

    # bank-a's control plane mirrors it, and bank-a's node agent writes it
    published.put_chain([v0])
    mirror = NodeInfoMirror("bank-a", PublicBlobs(published.container),
                            PeerBlobs({"bank-b": f"{endpoint['bank-b']}?{read}"}, {}), rejections)  # fmt: skip
    assert mirror.mirror(head) == {"bank-b": Mirrored.COPIED}
    node_a = config_for(published, tmp_path / "node-a", head.hash)
    report = run_once(node_a, BlobContainer.from_config(node_a), now=lambda: now, log=lambda _: None)

    wanted = node_infos.disk_name("bank-b", hashlib.sha256(NODE).hexdigest())
    assert report.written == (wanted,)
    assert (node_a.node_infos_dir / wanted).read_bytes() == NODE
    assert state.list_paths("rejections/") == []
