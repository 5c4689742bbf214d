"""The agent as it runs in Azure: it reads the member's container with the VM's managed identity.

``ManagedIdentityCredential`` gets its token from the emulator's IMDS endpoint (``tools/emulator/imds.py``,
reached through ``AZURE_POD_IDENTITY_AUTHORITY_HOST``, the credential's own override of IMDS's
address) and presents it to an Azurite that serves HTTPS and checks bearer tokens (``--oauth basic``:
audience, issuer and lifetime, not the signature). Which container the identity may read is infra's
(Storage Blob Data Reader on the one container, tests/infra/test_bicep_roles.py); Azurite has no roles.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.decisions import node_infos
from tests.nodeagent.conftest import ACCOUNT, Published
from tests.nodeagent.test_agent_azurite import World, publish_all
from tools import azurite
from tools.emulator import EmulatorHandle, imds, tls
from tools.harness.stack import admin

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NODES = "bank-a-nodes"  # the nodes' user-assigned identity, as the emulator knows it


@dataclass(frozen=True)
class OAuthAzurite:
    blob_url: str
    ca_bundle: Path

    def container(self, **options: object) -> ContainerClient:
        return ContainerClient.from_container_url(
            f"{self.blob_url}/{ACCOUNT}/consortium-public", connection_verify=str(self.ca_bundle), **options
        )


@pytest.fixture(scope="module")
def oauth_azurite(
    emulator_instance: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OAuthAzurite]:
    """Azurite's blob service over HTTPS (a certificate from a CA of its own) checking bearer tokens."""
    folder = tmp_path_factory.mktemp("azurite-oauth")
    cert, key = tls.server_certificate(folder)
    bundle = folder / "ca-bundle.pem"
    bundle.write_bytes((folder / "ca.pem").read_bytes() + emulator_instance.ca.read_bytes())
    port = azurite.free_ports(1)[0]
    cmd = [str(azurite.ROOT / "node_modules" / ".bin" / "azurite-blob"), "--location", str(folder / "data"),
           "--blobHost", "127.0.0.1", "--blobPort", str(port), "--oauth", "basic", "--cert", str(cert),
           "--key", str(key), "--skipApiVersionCheck", "--disableTelemetry"]  # fmt: skip
    env = {**os.environ, "AZURITE_ACCOUNTS": azurite.accounts_variable([ACCOUNT])}
    log = open(folder / "azurite.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    served = OAuthAzurite(f"https://127.0.0.1:{port}", bundle)
    try:
        service = BlobServiceClient(
            f"{served.blob_url}/{ACCOUNT}",
            credential={"account_name": ACCOUNT, "account_key": azurite.ACCOUNT_KEY},
            connection_verify=str(bundle),
            retry_total=0,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                service.get_service_properties()
                break
            except (AzureError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Azurite over HTTPS did not start: see {folder / 'azurite.log'}") from None
                time.sleep(0.2)
        service.create_container("consortium-public")
        service.create_container(node_infos.INBOX_CONTAINER)
        admin(emulator_instance, "PUT", f"/_admin/principals/{NODES}", {})
        yield served
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait(timeout=10)
        log.close()


@pytest.fixture
def mi_published(oauth_azurite: OAuthAzurite) -> Published:
    writer = ContainerClient.from_container_url(
        f"{oauth_azurite.blob_url}/{ACCOUNT}/consortium-public",
        credential={"account_name": ACCOUNT, "account_key": azurite.ACCOUNT_KEY},
        connection_verify=str(oauth_azurite.ca_bundle),
    )
    for blob in writer.list_blobs():
        writer.delete_blob(blob.name)
    return Published(writer, f"{oauth_azurite.blob_url}/{ACCOUNT}/consortium-public")


def run_agent(
    tmp_path: Path, handle: EmulatorHandle, bundle: Path, url: str, genesis: str, client_id: str, inbox_url: str = ""
) -> str:
    config = tmp_path / "config.toml"
    config.write_text(
        f'member_id = "bank-a"\ngenesis = "{genesis}"\ncontainer_url = "{url}"\ncredential = "managed-identity"\n'
        f'managed_identity_client_id = "{client_id}"\ncorda_dir = "{tmp_path / "corda"}"\n'
        f'state_dir = "{tmp_path / "state"}"\ninbox_url = "{inbox_url}"\n'
    )
    env = {**os.environ, "AZURE_POD_IDENTITY_AUTHORITY_HOST": handle.url, "REQUESTS_CA_BUNDLE": str(bundle)}
    done = subprocess.run([sys.executable, "-m", "nodeagent", "--config", str(config)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    return f"{done.returncode}\n{done.stderr}"


def test_the_agent_reads_with_the_vms_managed_identity_through_imds(
    emulator_instance: EmulatorHandle, oauth_azurite: OAuthAzurite, mi_published: Published, tmp_path: Path
) -> None:
    world = World()
    publish_all(mi_published, world)

    out = run_agent(tmp_path, emulator_instance, oauth_azurite.ca_bundle, mi_published.read_url, world.genesis,
                    imds.client_id_for(NODES))  # fmt: skip

    assert out.startswith("0\n"), out
    assert "INFO nodeagent: chain version 1" in out and "3 written" in out
    assert len(list((tmp_path / "corda" / "additional-node-infos").glob("nodeInfo-*"))) == 3


def test_the_agent_offers_its_nodes_file_to_the_inbox_with_the_same_identity(
    emulator_instance: EmulatorHandle, oauth_azurite: OAuthAzurite, mi_published: Published, tmp_path: Path
) -> None:
    world = World()
    publish_all(mi_published, world)
    node = b"corda\x01\x00 bank-a's own node"
    (tmp_path / "corda").mkdir()
    (tmp_path / "corda" / "nodeInfo-ABC123").write_bytes(node)
    inbox_url = f"{oauth_azurite.blob_url}/{ACCOUNT}/{node_infos.INBOX_CONTAINER}"

    out = run_agent(tmp_path, emulator_instance, oauth_azurite.ca_bundle, mi_published.read_url, world.genesis,
                    imds.client_id_for(NODES), inbox_url)  # fmt: skip

    assert out.startswith("0\n"), out
    assert "own node info uploaded" in out and "3 written" in out
    inbox = ContainerClient.from_container_url(
        inbox_url, credential={"account_name": ACCOUNT, "account_key": azurite.ACCOUNT_KEY},
        connection_verify=str(oauth_azurite.ca_bundle),
    )  # fmt: skip
    assert inbox.download_blob(hashlib.sha256(node).hexdigest()).readall() == node


def test_an_identity_imds_does_not_know_changes_nothing(
    emulator_instance: EmulatorHandle, oauth_azurite: OAuthAzurite, mi_published: Published, tmp_path: Path
) -> None:
    world = World()
    publish_all(mi_published, world)

    out = run_agent(tmp_path, emulator_instance, oauth_azurite.ca_bundle, mi_published.read_url, world.genesis,
                    "00000000-0000-0000-0000-0000000000ff")  # fmt: skip

    assert out.startswith("1\n") and "nothing changed" in out, out
    assert not (tmp_path / "corda").exists()


def test_without_a_token_the_container_is_closed(oauth_azurite: OAuthAzurite, mi_published: Published) -> None:
    world = World()
    publish_all(mi_published, world)
    with pytest.raises((ClientAuthenticationError, HttpResponseError)):
        oauth_azurite.container(retry_total=0).download_blob("chain/00000000.json").readall()
