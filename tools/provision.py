"""A member's queues and containers in its storage account, and read-only access to its published container.

In Azure the Bicep creates these (``infra/modules/storage.bicep``); locally ``make up`` calls
:func:`provision` on each account it starts, before any host runs, so a client that posts to
``onboarding-requests`` right after ``make up`` finds the queue (it used to get ``QueueNotFound``
until the host's first send created it). Creating what exists already is not an error, so a second
``make up`` is harmless.

The names come from the app's own constants, so a queue the app gains is provisioned without an edit
here: every queue a function is triggered by (and its ``-poison`` twin, where the host moves a
message after ``maxDequeueCount``), ``member-events``, the private state container (``consortium``,
which also holds the coordinator leases under ``leases/``), the host's own ``azure-webjobs-hosts``
(timer schedules and listener locks) and ``consortium-public``, where the member publishes what
the other members read (docs/contract.md, "Members and their deployments").

Another member reads ``consortium-public`` only with :func:`public_read_sas`: a service SAS scoped to
that one container, read and list only, with a bounded lifetime, the local stand-in for an Entra
identity holding Storage Blob Data Reader on that container in Azure (PLATFORM_FACTS §8).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from shared.adapters.blob_state import CONTAINER as STATE_CONTAINER
from shared.adapters.storage import blob_service, queue_service
from shared.decisions import identities, node_infos
from shared.services import onboarding, rotation
from shared.services.records import EVENTS_QUEUE

#: The container each member publishes in and the others read (never write).
PUBLIC_CONTAINER = "consortium-public"
#: The Functions host's own container (timer schedule status, listener locks), as the Bicep creates it.
HOSTS_CONTAINER = "azure-webjobs-hosts"
#: The queues functions are triggered by; each has a ``-poison`` twin.
TRIGGER_QUEUES: tuple[str, ...] = (*onboarding.QUEUES, rotation.REQUESTS)
QUEUES: tuple[str, ...] = (*TRIGGER_QUEUES, *(f"{q}-poison" for q in TRIGGER_QUEUES), EVENTS_QUEUE)
CONTAINERS: tuple[str, ...] = (
    STATE_CONTAINER, PUBLIC_CONTAINER, HOSTS_CONTAINER, node_infos.INBOX_CONTAINER, identities.LEASE_CONTAINER
)  # fmt: skip
#: The longest a read credential may live: a user delegation SAS, its Azure counterpart, lives at most 7 days.
MAX_SAS_LIFETIME = timedelta(days=7)
#: A SAS starts this long before it is made, so a clock a little behind the storage's still accepts it.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Provisioned:
    """What :func:`provision` created (names that existed already are not listed)."""

    queues: tuple[str, ...]
    containers: tuple[str, ...]


def provision(connection_string: str) -> Provisioned:
    """Create every queue and container the app uses in the account ``connection_string`` names; idempotent."""
    settings = {"AzureWebJobsStorage": connection_string}
    queues, blobs = queue_service(settings), blob_service(settings)
    created_queues, created_containers = [], []
    for name in QUEUES:
        try:
            queues.create_queue(name)
        except ResourceExistsError:
            continue
        created_queues.append(name)
    for name in CONTAINERS:
        try:
            blobs.create_container(name)
        except ResourceExistsError:
            continue
        created_containers.append(name)
    return Provisioned(tuple(created_queues), tuple(created_containers))


def _container_sas(
    account: str, account_key: str, container: str, permission: ContainerSasPermissions, what: str,
    lifetime: timedelta, now: datetime | None,
) -> str:  # fmt: skip
    """A service SAS token (no leading ``?``) scoped to one container (``sr=c``), valid from ``CLOCK_SKEW``
    before ``now`` for ``lifetime`` (at most ``MAX_SAS_LIFETIME``)."""
    if not timedelta(0) < lifetime <= MAX_SAS_LIFETIME:
        raise ValueError(f"a {what} credential lives more than 0 and at most {MAX_SAS_LIFETIME}, not {lifetime}")
    now = now or datetime.now(UTC)
    return generate_container_sas(
        account_name=account, container_name=container, account_key=account_key, permission=permission,
        start=now - CLOCK_SKEW, expiry=now + lifetime,
    )  # fmt: skip


def public_read_sas(
    account: str, account_key: str, *, lifetime: timedelta = MAX_SAS_LIFETIME, now: datetime | None = None
) -> str:
    """A SAS that reads and lists ``account``'s ``consortium-public`` only (``sp=rl``)."""
    permission = ContainerSasPermissions(read=True, list=True)
    return _container_sas(account, account_key, PUBLIC_CONTAINER, permission, "read", lifetime, now)


def inbox_write_sas(
    account: str, account_key: str, *, lifetime: timedelta = MAX_SAS_LIFETIME, now: datetime | None = None
) -> str:
    """A SAS that creates and writes blobs in ``account``'s ``node-infos-inbox`` only (``sp=cw``: no read, no
    list, no delete): what a local node agent offers its ``NodeInfo`` file with (``nodeagent.inbox``)."""
    permission = ContainerSasPermissions(create=True, write=True)
    return _container_sas(account, account_key, node_infos.INBOX_CONTAINER, permission, "write", lifetime, now)


def identity_leases_sas(
    account: str, account_key: str, *, lifetime: timedelta = MAX_SAS_LIFETIME, now: datetime | None = None
) -> str:
    """A SAS for ``account``'s ``identity-leases`` only (``sp=rcw``: read, create, write, and so lease; no
    list, no delete): what a local identity keeper (``nodeagent.identity``) takes its identity's lease with,
    as the nodes' identity does in Azure."""
    permission = ContainerSasPermissions(read=True, create=True, write=True)
    return _container_sas(account, account_key, identities.LEASE_CONTAINER, permission, "write", lifetime, now)


def public_container_url(blob_endpoint: str) -> str:
    """The URL of the ``consortium-public`` container of the account whose blob service is at ``blob_endpoint``."""
    return f"{blob_endpoint.rstrip('/')}/{PUBLIC_CONTAINER}"
