"""A member's ``consortium-public`` container in an Azurite of its own (free ports), written as the
member's control plane would, and the agent's config that reads it with a read-only SAS."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from nodeagent.config import AgentConfig, Credential
from shared.decisions import chain, node_infos
from tests.support.chain_world import Bank, Key
from tools import azurite, provision

ACCOUNT = "nodeagent"
#: Another member's account, for the control plane's mirror (tests/nodeagent/test_mirror.py).
PEER_ACCOUNT = "nodeagentpeer"


@pytest.fixture(scope="module")
def agent_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[azurite.Azurite]:
    location = tmp_path_factory.mktemp("azurite-nodeagent")
    ports = azurite.free_ports(3)
    az, proc = azurite.start(
        Path(location),
        ports=(ports[0], ports[1], ports[2]),
        log_file=location / "azurite.log",
        accounts=[ACCOUNT, PEER_ACCOUNT],
    )
    try:
        yield az
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait(timeout=10)


@dataclass
class Published:
    """The member's container as its control plane writes it (with the account key, which only it holds)."""

    container: ContainerClient
    read_url: str

    def put(self, path: str, data: bytes) -> None:
        self.container.upload_blob(path, data, overwrite=True)

    def delete(self, path: str) -> None:
        self.container.delete_blob(path)

    def paths(self) -> list[str]:
        return sorted(b.name for b in self.container.list_blobs())

    def put_chain(self, versions: list[dict[str, Any]]) -> None:
        for position, raw in enumerate(versions):
            self.put(f"chain/{position:08d}.json", chain.published_bytes(raw))

    def put_node_infos(self, bank: Bank, files: list[bytes], *, seq: int, key: Key | None = None) -> None:
        """The member's signed index and its files, where the agent reads them (the mirror's layout)."""
        for data in files:
            self.put(node_infos.node_info_path(bank.member_id, hashlib.sha256(data).hexdigest()), data)
        self.put(node_infos.index_path(bank.member_id), signed_index(bank, files, seq=seq, key=key))


@pytest.fixture
def published(agent_azurite: azurite.Azurite) -> Iterator[Published]:
    service = BlobServiceClient.from_connection_string(agent_azurite.connection_string_for(ACCOUNT))
    container = service.get_container_client(provision.PUBLIC_CONTAINER)
    if container.exists():
        container.delete_container()  # each test starts from an empty container
    container.create_container()
    sas = provision.public_read_sas(ACCOUNT, azurite.ACCOUNT_KEY, now=datetime.now(UTC))
    url = provision.public_container_url(agent_azurite.blob_endpoint(ACCOUNT)) + "?" + sas
    yield Published(container, url)


@pytest.fixture
def agent_config(published: Published, tmp_path: Path) -> AgentConfig:
    """Filled in by each test with its genesis (``config_for``)."""
    return config_for(published, tmp_path, "0" * 64)


def config_for(published: Published, root: Path, genesis: str, member_id: str = "bank-a") -> AgentConfig:
    return AgentConfig(
        member_id=member_id,
        genesis=genesis,
        container_url=published.read_url,
        credential=Credential.SAS,
        corda_dir=root / "corda",
        state_dir=root / "state",
    )


def signed_index(bank: Bank, files: list[bytes], *, seq: int, key: Key | None = None) -> bytes:
    key = key or bank.key
    document = node_infos.unsigned_index(bank.member_id, files, seq=seq, issued_at="2026-11-28T12:00:00Z", kid=key.kid)
    return node_infos.signed_bytes(document, key.sign_own(document))


def signed_flag_day(bank: Bank, flag_day_id: str, parameters: bytes, switch_at: str) -> bytes:
    document = {
        "member_id": bank.member_id,
        "flag_day_id": flag_day_id,
        "network_parameters_sha256": hashlib.sha256(parameters).hexdigest(),
        "switch_at": switch_at,
        "kid": bank.key.kid,
    }
    return node_infos.signed_bytes(document, bank.key.sign_own(document))
