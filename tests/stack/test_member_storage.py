"""One Azurite, one storage account per member: the accounts are apart, provisioning creates every
queue and container the app uses (idempotently), and another member reads a member's published
container only through a read-only SAS scoped to that container."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import QueueClient, QueueServiceClient

from tools import azurite, provision

ROOT = Path(__file__).resolve().parents[2]


def blobs(az: azurite.Azurite, member: str) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(az.connection_string_for(azurite.account_for(member)))


def queues(az: azurite.Azurite, member: str) -> QueueServiceClient:
    return QueueServiceClient.from_connection_string(az.connection_string_for(azurite.account_for(member)))


# --- AZURITE_ACCOUNTS -------------------------------------------------------------------------------


def test_the_accounts_variable_lists_each_account_once_with_the_development_key() -> None:
    value = azurite.accounts_variable(["devstoreaccount1", "banka", "bankb", "banka"])
    entries = [entry.split(":") for entry in value.split(";")]
    assert [e[0] for e in entries] == ["devstoreaccount1", "banka", "bankb"]
    for _, key in entries:
        assert key == azurite.ACCOUNT_KEY
        assert len(base64.b64decode(key, validate=True)) == 64  # Azurite decodes each key from base64


def test_account_names_follow_the_storage_rules() -> None:
    assert [azurite.account_for(m) for m in azurite.MEMBER_IDS] == ["banka", "bankb", "bankc", "bankd"]
    with pytest.raises(ValueError, match="3-24 lowercase"):
        azurite.account_for("bank-with-a-very-long-name-indeed")
    with pytest.raises(ValueError, match="not a storage account name"):
        azurite.accounts_variable(["Bank_A"])


def test_the_default_account_stays_served_beside_the_member_accounts(member_azurite: azurite.Azurite) -> None:
    # AZURITE_ACCOUNTS replaces Azurite's default account; start() lists devstoreaccount1 again
    assert member_azurite.accounts == ("devstoreaccount1", "banka", "bankb", "bankc", "bankd")
    for account in member_azurite.accounts:
        assert azurite.account_ready(member_azurite, account), account


def test_an_account_azurite_was_not_given_is_refused(member_azurite: azurite.Azurite) -> None:
    stranger = azurite.Azurite(
        member_azurite.blob_port, member_azurite.queue_port, member_azurite.table_port, accounts=("bankz",)
    )
    assert not azurite.account_ready(stranger, "bankz")
    with pytest.raises(ValueError, match="not 'bankq'"):
        member_azurite.connection_string_for("bankq")


def test_connection_strings_are_path_style_per_account(member_azurite: azurite.Azurite) -> None:
    conn = member_azurite.connection_string_for("bankc")
    assert f"BlobEndpoint=http://127.0.0.1:{member_azurite.blob_port}/bankc;" in conn
    assert f"QueueEndpoint=http://127.0.0.1:{member_azurite.queue_port}/bankc;" in conn
    assert f"TableEndpoint=http://127.0.0.1:{member_azurite.table_port}/bankc;" in conn
    assert "AccountName=bankc;" in conn


def test_a_blob_written_in_one_members_account_is_not_in_another(member_azurite: azurite.Azurite) -> None:
    container, name = "t" + uuid.uuid4().hex[:20], "members/bank-a.json"
    blobs(member_azurite, "bank-a").create_container(container).upload_blob(name, b'{"who": "bank-a"}')
    assert blobs(member_azurite, "bank-a").get_blob_client(container, name).download_blob().readall() == (
        b'{"who": "bank-a"}'
    )
    other = blobs(member_azurite, "bank-b")
    assert container not in [c.name for c in other.list_containers()]
    with pytest.raises(ResourceNotFoundError):
        other.get_blob_client(container, name).download_blob()
    # the same container name in bank-b is a different container: empty
    other.create_container(container)
    assert list(other.get_container_client(container).list_blobs()) == []


def test_a_message_posted_in_one_members_account_is_not_in_another(member_azurite: azurite.Azurite) -> None:
    queue = "t" + uuid.uuid4().hex[:20]
    queues(member_azurite, "bank-c").create_queue(queue).send_message("for bank-c")
    assert queue not in [q.name for q in queues(member_azurite, "bank-d").list_queues()]
    queues(member_azurite, "bank-d").create_queue(queue)
    assert queues(member_azurite, "bank-d").get_queue_client(queue).peek_messages() == []
    assert [m.content for m in queues(member_azurite, "bank-c").get_queue_client(queue).peek_messages()] == [
        "for bank-c"
    ]


# --- provisioning -------------------------------------------------------------------------------------


def test_provisioning_is_idempotent_and_a_message_posted_right_after_lands(member_azurite: azurite.Azurite) -> None:
    conn = member_azurite.connection_string_for("bankd")
    provision.provision(conn)
    assert set(provision.QUEUES) <= {q.name for q in queues(member_azurite, "bank-d").list_queues()}
    assert set(provision.CONTAINERS) <= {c.name for c in blobs(member_azurite, "bank-d").list_containers()}
    # a message posted right after provisioning lands (no QueueNotFound), and a second run changes nothing
    queues(member_azurite, "bank-d").get_queue_client("onboarding-requests").send_message('{"request_id": "r1"}')
    blobs(member_azurite, "bank-d").get_blob_client("consortium", "members/bank-d.json").upload_blob(b"{}")
    again = provision.provision(conn)
    assert again == provision.Provisioned((), ())
    peeked = queues(member_azurite, "bank-d").get_queue_client("onboarding-requests").peek_messages()
    assert [m.content for m in peeked] == ['{"request_id": "r1"}']
    kept = blobs(member_azurite, "bank-d").get_blob_client("consortium", "members/bank-d.json")
    assert kept.download_blob().readall() == b"{}"


def test_provisioning_in_a_fresh_account_creates_every_name(tmp_path: Path) -> None:
    ports = azurite.free_ports(3)
    az, proc = azurite.start(tmp_path, ports=(ports[0], ports[1], ports[2]), accounts=["bankq"])
    try:
        made = provision.provision(az.connection_string_for("bankq"))
        assert sorted(made.queues) == sorted(provision.QUEUES)
        assert sorted(made.containers) == sorted(provision.CONTAINERS)
        # only that account: devstoreaccount1, served beside it, got nothing
        dev = QueueServiceClient.from_connection_string(az.connection_string_for(azurite.ACCOUNT))
        assert list(dev.list_queues()) == []
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait(timeout=10)


def test_provisioned_names_cover_the_contract_and_every_queue_the_app_binds() -> None:
    contract = {"onboarding-requests", "onboarding-approvals", "offboarding-requests", "member-events"}
    assert contract <= set(provision.QUEUES)
    for queue in ("onboarding-requests", "onboarding-approvals", "offboarding-requests", "key-rotation-requests"):
        assert f"{queue}-poison" in provision.QUEUES
    assert {"consortium-public", "consortium", "azure-webjobs-hosts", "node-infos-inbox", "identity-leases"} == set(
        provision.CONTAINERS
    )

    bindings = _app_bindings()
    bound = {b["queueName"] for b in bindings if b["type"] in ("queueTrigger", "queue")}
    triggered = {b["queueName"] for b in bindings if b["type"] == "queueTrigger"}
    assert "onboarding-requests" in triggered and "onboarding-keys" in bound
    assert bound <= set(provision.QUEUES)
    assert {f"{q}-poison" for q in triggered} <= set(provision.QUEUES)


def _app_bindings() -> list[dict[str, str]]:
    """Every binding of ``function_app.py``, indexed in a child process (an app indexes once per process,
    and tests/unit/test_app_indexing.py indexes it in this one)."""
    script = (
        "import json, function_app\n"
        "functions = function_app.app.get_functions()\n"
        "print(json.dumps([b for f in functions for b in json.loads(f.get_function_json())['bindings']]))"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_provisioning_covers_what_the_bicep_creates_in_azure() -> None:
    bicep = (ROOT / "infra" / "modules" / "storage.bicep").read_text()
    work = re.search(r"var workQueues = \[(.*?)\]", bicep, re.S)
    assert work is not None
    work_queues = set(re.findall(r"'([a-z0-9-]+)'", work.group(1)))
    containers = re.search(r"var containers = \[(.*?)\]", bicep, re.S)
    assert containers is not None
    assert work_queues and work_queues <= set(provision.QUEUES)
    assert {f"{q}-poison" for q in work_queues} <= set(provision.QUEUES)
    # deploymentpackage holds the Flex Consumption app package: Azure only
    assert set(re.findall(r"'([a-z0-9-]+)'", containers.group(1))) - {"deploymentpackage"} <= set(provision.CONTAINERS)


# --- read-only access to a member's published container -------------------------------------------------


@pytest.fixture(scope="module")
def published(member_azurite: azurite.Azurite) -> dict[str, str]:
    """bank-b's account provisioned, with a published document and a private one."""
    provision.provision(member_azurite.connection_string_for("bankb"))
    provision.provision(member_azurite.connection_string_for("banka"))
    b = blobs(member_azurite, "bank-b")
    b.get_blob_client(provision.PUBLIC_CONTAINER, "chain/head.json").upload_blob(b'{"version": 0}', overwrite=True)
    b.get_blob_client("consortium", "members/bank-b.json").upload_blob(b'{"private": true}', overwrite=True)
    a = blobs(member_azurite, "bank-a")
    a.get_blob_client(provision.PUBLIC_CONTAINER, "chain/head.json").upload_blob(b'{"version": 7}', overwrite=True)
    sas = provision.public_read_sas("bankb", azurite.ACCOUNT_KEY)
    return {"sas": sas, "url": f"{provision.public_container_url(member_azurite.blob_endpoint('bankb'))}?{sas}"}


def test_the_sas_is_read_and_list_only_scoped_to_the_container_and_bounded() -> None:
    now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    fields = parse_qs(provision.public_read_sas("bankb", azurite.ACCOUNT_KEY, lifetime=timedelta(hours=1), now=now))
    assert fields["sp"] == ["rl"] and fields["sr"] == ["c"]
    assert fields["st"] == ["2026-11-28T09:55:00Z"] and fields["se"] == ["2026-11-28T11:00:00Z"]
    default = parse_qs(provision.public_read_sas("bankb", azurite.ACCOUNT_KEY, now=now))
    assert default["se"] == ["2026-12-05T10:00:00Z"]  # at most 7 days
    for lifetime in (timedelta(days=7, seconds=1), timedelta(0), timedelta(hours=-1)):
        with pytest.raises(ValueError, match="at most"):
            provision.public_read_sas("bankb", azurite.ACCOUNT_KEY, lifetime=lifetime)


def test_with_the_sas_another_member_reads_and_lists_the_published_container(published: dict[str, str]) -> None:
    container = ContainerClient.from_container_url(published["url"])
    assert [b.name for b in container.list_blobs()] == ["chain/head.json"]
    assert container.get_blob_client("chain/head.json").download_blob().readall() == b'{"version": 0}'
    assert container.get_blob_client("chain/head.json").get_blob_properties().size == len(b'{"version": 0}')


def test_the_sas_cannot_write_or_delete_in_the_published_container(published: dict[str, str]) -> None:
    container = ContainerClient.from_container_url(published["url"])
    with pytest.raises(HttpResponseError) as refused:
        container.get_blob_client("chain/head.json").upload_blob(b'{"version": 99}', overwrite=True)
    assert refused.value.status_code == 403
    with pytest.raises(HttpResponseError) as refused:
        container.get_blob_client("forged.json").upload_blob(b"{}")
    assert refused.value.status_code == 403
    with pytest.raises(HttpResponseError) as refused:
        container.get_blob_client("chain/head.json").delete_blob()
    assert refused.value.status_code == 403
    with pytest.raises(HttpResponseError) as refused:
        container.delete_container()
    assert refused.value.status_code == 403
    assert container.get_blob_client("chain/head.json").download_blob().readall() == b'{"version": 0}'
    assert [b.name for b in container.list_blobs()] == ["chain/head.json"]


def test_the_sas_reads_no_other_container_of_that_account(
    member_azurite: azurite.Azurite, published: dict[str, str]
) -> None:
    endpoint = member_azurite.blob_endpoint("bankb")
    for name in ("consortium", "azure-webjobs-hosts"):
        private = ContainerClient.from_container_url(f"{endpoint}/{name}?{published['sas']}")
        with pytest.raises(HttpResponseError) as refused:
            list(private.list_blobs())
        assert refused.value.status_code == 403
    private_blob = ContainerClient.from_container_url(f"{endpoint}/consortium?{published['sas']}")
    with pytest.raises(HttpResponseError) as refused:
        private_blob.get_blob_client("members/bank-b.json").download_blob()
    assert refused.value.status_code == 403
    # nor the account: listing its containers needs an account SAS or the key
    service = BlobServiceClient(endpoint, credential=published["sas"])
    with pytest.raises(HttpResponseError) as refused:
        list(service.list_containers())
    assert refused.value.status_code == 403


def test_the_sas_reads_nothing_in_its_holders_own_account_name(
    member_azurite: azurite.Azurite, published: dict[str, str]
) -> None:
    # bank-a holds bank-b's SAS: pointed at bank-a's own container of the same name, it is refused
    own = ContainerClient.from_container_url(
        f"{provision.public_container_url(member_azurite.blob_endpoint('banka'))}?{published['sas']}"
    )
    with pytest.raises(HttpResponseError) as refused:
        own.get_blob_client("chain/head.json").download_blob()
    assert refused.value.status_code == 403
    with pytest.raises(HttpResponseError) as refused:
        list(own.list_blobs())
    assert refused.value.status_code == 403


def test_the_sas_reaches_no_queue(member_azurite: azurite.Azurite, published: dict[str, str]) -> None:
    queue = QueueClient(
        f"http://127.0.0.1:{member_azurite.queue_port}/bankb", "onboarding-requests", credential=published["sas"]
    )
    with pytest.raises((HttpResponseError, ClientAuthenticationError)) as refused:
        queue.send_message('{"request_id": "forged"}')
    assert refused.value.status_code == 403


def test_an_expired_sas_is_refused(member_azurite: azurite.Azurite, published: dict[str, str]) -> None:
    stale = provision.public_read_sas(
        "bankb", azurite.ACCOUNT_KEY, lifetime=timedelta(minutes=1), now=datetime.now(UTC) - timedelta(hours=1)
    )
    container = ContainerClient.from_container_url(
        f"{provision.public_container_url(member_azurite.blob_endpoint('bankb'))}?{stale}"
    )
    with pytest.raises(HttpResponseError) as refused:
        list(container.list_blobs())
    assert refused.value.status_code == 403


def test_a_restart_serves_the_same_accounts_with_their_data(tmp_path: Path) -> None:
    ports = azurite.free_ports(3)
    az, proc = azurite.start(tmp_path, ports=(ports[0], ports[1], ports[2]), accounts=["banka", "bankb"])
    try:
        blobs(az, "bank-b").create_container("kept").upload_blob("x.json", b"{}")
        az, proc = azurite.restart(az, tmp_path)
        assert az.accounts == ("devstoreaccount1", "banka", "bankb")
        assert blobs(az, "bank-b").get_blob_client("kept", "x.json").download_blob().readall() == b"{}"
        assert "kept" not in [c.name for c in blobs(az, "bank-a").list_containers()]
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait(timeout=10)
