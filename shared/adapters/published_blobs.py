"""The published containers over blobs: this member's own ``consortium-public``, the others' read-only.

- ``PublicBlobs`` writes this member's own container (nobody else has write access to it). Locally
  it is in the account of the state's connection string; in Azure it is the container
  ``CONSORTIUM_PUBLIC_ENDPOINT`` names, in the member's publication account (infra/README.md: a
  public endpoint that only Entra identities with a role on that container can read), written with
  the app's own identity.
- ``PeerBlobs`` reads another member's container. Locally (Azurite has no Entra roles) each is read
  with a read-only, container-scoped SAS the member granted (``CONSORTIUM_PEER_READ_URLS``: member id
  -> container URL with the SAS). In Azure, an endpoint without a SAS is in another member's tenant
  and is read as this member's multi-tenant app registration (``CONSORTIUM_READER_CLIENT_ID``), whose
  service principal in that tenant holds Storage Blob Data Reader on that container only: a
  ``ClientAssertionCredential`` whose assertion is the app's user-assigned managed identity's token
  for ``api://AzureADTokenExchange`` (the identity is the app registration's federated credential).
  The storage SDK answers the other account's 401 challenge, which names its tenant, by asking the
  credential for a token in that tenant (``additionally_allowed_tenants``), so no tenant list is kept.
  Reads are conditional (If-None-Match): an unchanged blob costs one request and no download; a blob
  larger than the caller's limit is refused before it is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ResourceNotModifiedError,
)
from azure.storage.blob import BlobClient, ContainerClient, ContentSettings

from shared.adapters import metering
from shared.adapters.blob_state import translate
from shared.adapters.storage import _credential, blob_service
from shared.errors import PermanentError
from shared.ports.published import Fetched
from shared.reasons import Reason

PUBLIC_CONTAINER = "consortium-public"
_JSON = ContentSettings(content_type="application/json")
#: The audience of a managed identity's token used as a federated credential (Entra workload identity).
EXCHANGE_AUDIENCE_SCOPE = "api://AzureADTokenExchange/.default"


def reader_credential(values: Mapping[str, str], **options: Any) -> TokenCredential:
    """The credential that reads the other members' containers in Azure (see the module docstring).

    Without ``CONSORTIUM_READER_CLIENT_ID`` (one tenant, or a test) it is the app's own identity.
    ``options`` go to the ``ClientAssertionCredential`` (a test gives it a transport).
    """
    from azure.identity import ClientAssertionCredential, ManagedIdentityCredential

    client_id = values.get("CONSORTIUM_READER_CLIENT_ID") or ""
    if not client_id:
        return _credential(values, "AzureWebJobsStorage")
    tenant_id = values.get("CONSORTIUM_READER_TENANT_ID") or ""
    if not tenant_id:
        raise PermanentError(
            "setting CONSORTIUM_READER_TENANT_ID (the app registration's home tenant) must be set with "
            "CONSORTIUM_READER_CLIENT_ID",
            reason=Reason.SETTINGS,
        )
    identity_id = values.get("AzureWebJobsStorage__clientId") or None
    identity = ManagedIdentityCredential(client_id=identity_id) if identity_id else ManagedIdentityCredential()

    def assertion() -> str:
        return str(identity.get_token(EXCHANGE_AUDIENCE_SCOPE).token)

    return ClientAssertionCredential(tenant_id, client_id, assertion, additionally_allowed_tenants=["*"], **options)


class PublicBlobs:
    def __init__(self, container: ContainerClient):
        self.container = container

    @classmethod
    def from_settings(cls, values: Mapping[str, str]) -> PublicBlobs:
        options = metering.hook("storage")
        if values.get("AzureWebJobsStorage"):
            return cls(blob_service(values, **options).get_container_client(PUBLIC_CONTAINER))
        endpoint = _strip(values.get("CONSORTIUM_PUBLIC_ENDPOINT") or "")
        if not endpoint.endswith(f"/{PUBLIC_CONTAINER}"):
            raise PermanentError(
                f"setting CONSORTIUM_PUBLIC_ENDPOINT={endpoint!r} must be the URL of a {PUBLIC_CONTAINER} container",
                reason=Reason.SETTINGS,
            )
        credential = _credential(values, "AzureWebJobsStorage")
        return cls(ContainerClient.from_container_url(endpoint, credential=credential, **options))

    def put(self, path: str, data: bytes) -> None:
        try:
            self.container.upload_blob(path, data, overwrite=True, content_settings=_JSON)
        except HttpResponseError as error:
            raise translate(error, f"publish {path}") from error

    def get(self, path: str) -> bytes | None:
        try:
            return bytes(self.container.download_blob(path).readall())
        except ResourceNotFoundError:
            return None
        except HttpResponseError as error:
            raise translate(error, f"read own {path}") from error


def _strip(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


class PeerBlobs:
    def __init__(self, read_urls: Mapping[str, str], values: Mapping[str, str]):
        #: member id -> container URL, possibly carrying a read-only SAS (local)
        self.read_urls = dict(read_urls)
        self.by_endpoint = {_strip(url): url for url in self.read_urls.values()}
        self.values = values
        self._reader: TokenCredential | None = None

    @classmethod
    def from_settings(cls, values: Mapping[str, str]) -> PeerBlobs:
        raw = values.get("CONSORTIUM_PEER_READ_URLS") or "{}"
        try:
            urls = json.loads(raw)
        except ValueError:
            raise PermanentError(
                "setting CONSORTIUM_PEER_READ_URLS must be a JSON object", reason=Reason.SETTINGS
            ) from None
        if not isinstance(urls, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in urls.items()):
            raise PermanentError(
                "setting CONSORTIUM_PEER_READ_URLS must map member ids to container URLs", reason=Reason.SETTINGS
            )
        return cls(urls, values)

    def introduced(self) -> dict[str, str]:
        return {member_id: _strip(url) for member_id, url in self.read_urls.items()}

    def _blob(self, endpoint: str, path: str) -> BlobClient:
        container_url = self.by_endpoint.get(_strip(endpoint))
        options: dict[str, Any] = {**metering.hook("storage")}
        if container_url is not None and "sig=" in container_url:
            return ContainerClient.from_container_url(container_url, **options).get_blob_client(path)
        if self._reader is None:
            self._reader = reader_credential(self.values)
        return ContainerClient.from_container_url(_strip(endpoint), credential=self._reader, **options).get_blob_client(
            path
        )

    def fetch(self, endpoint: str, path: str, *, etag: str | None = None, limit: int) -> Fetched | None:
        blob = self._blob(endpoint, path)
        what = f"read {path} at {_strip(endpoint)}"
        try:
            if etag:
                downloader = blob.download_blob(etag=etag, match_condition=MatchConditions.IfModified)
            else:
                downloader = blob.download_blob()
        except ResourceNotFoundError:
            return None
        except (ResourceModifiedError, ResourceNotModifiedError):
            return Fetched(None, etag or "")
        except HttpResponseError as error:
            if error.status_code == 304:
                return Fetched(None, etag or "")
            raise translate(error, what) from error
        size = downloader.size or 0
        if size > limit:
            raise PermanentError(f"{what}: {size} bytes, more than {limit}", reason=Reason.OVERSIZE)
        data = downloader.readall()
        return Fetched(bytes(data), str(downloader.properties.etag or ""))
