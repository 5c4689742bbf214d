"""Clients for the consortium's storage account, from the `AzureWebJobsStorage` setting in either form.

Locally the setting is a connection string (``UseDevelopmentStorage=true`` for Azurite on its default
ports, which the Python SDK does not understand, so it is expanded here). In Azure it is identity-based,
as the Functions host itself reads it: ``AzureWebJobsStorage__blobServiceUri`` /
``__queueServiceUri`` with the app's managed identity (``__credential=managedidentity``, optional
``__clientId``). One place decides, so the host, the adapters and the CLI reach the same account.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure.core.credentials import TokenCredential
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.adapters import sdk_models

sdk_models.prepare(*sdk_models.QUEUE)  # before any thread receives a message

#: Azurite's well-known development account (public, documented; not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEV_CONNECTION_STRING = (
    f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{DEV_ACCOUNT};"
    f"QueueEndpoint=http://127.0.0.1:10001/{DEV_ACCOUNT};"
    f"TableEndpoint=http://127.0.0.1:10002/{DEV_ACCOUNT};"
)


class StorageSettingError(ValueError):
    """Neither a connection string nor identity-based service URIs are set for the connection."""


def expand_connection_string(value: str) -> str:
    """The connection string the SDK understands (``UseDevelopmentStorage=true`` expanded)."""
    if value.strip().rstrip(";").lower() == "usedevelopmentstorage=true":
        return DEV_CONNECTION_STRING
    return value


def _credential(settings: Mapping[str, str], connection: str) -> TokenCredential:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = settings.get(f"{connection}__clientId")
    if settings.get(f"{connection}__credential", "").lower() == "managedidentity":
        return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    return DefaultAzureCredential(managed_identity_client_id=client_id) if client_id else DefaultAzureCredential()


def queue_service(
    settings: Mapping[str, str], connection: str = "AzureWebJobsStorage", **options: Any
) -> QueueServiceClient:
    """A queue service client for the named connection setting."""
    value = settings.get(connection)
    if value:
        return QueueServiceClient.from_connection_string(expand_connection_string(value), **options)
    uri = settings.get(f"{connection}__queueServiceUri") or _derived(settings, connection, "queue")
    return QueueServiceClient(uri, credential=_credential(settings, connection), **options)


def blob_service(
    settings: Mapping[str, str], connection: str = "AzureWebJobsStorage", **options: Any
) -> BlobServiceClient:
    """A blob service client for the named connection setting."""
    value = settings.get(connection)
    if value:
        return BlobServiceClient.from_connection_string(expand_connection_string(value), **options)
    uri = settings.get(f"{connection}__blobServiceUri") or _derived(settings, connection, "blob")
    return BlobServiceClient(uri, credential=_credential(settings, connection), **options)


def _derived(settings: Mapping[str, str], connection: str, service: str) -> str:
    account = settings.get(f"{connection}__accountName")
    if account:
        return f"https://{account}.{service}.core.windows.net"
    raise StorageSettingError(
        f"setting {connection} is not set: give a connection string, or {connection}__{service}ServiceUri "
        f"(or {connection}__accountName) for identity-based access"
    )
