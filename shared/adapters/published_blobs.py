"""The published containers over blobs: this member's own ``consortium-public``, the others' read-only.

- ``PublicBlobs`` writes this member's own container, through the same storage connection as its
  state (its own account; nobody else has write access to it).
- ``PeerBlobs`` reads another member's container. Locally (Azurite has no Entra roles) each is read
  with a read-only, container-scoped SAS the member granted (``CONSORTIUM_PEER_READ_URLS``: member id
  -> container URL with the SAS). In Azure, an endpoint without a SAS is read with the app's
  identity, which the other member granted Storage Blob Data Reader on that container only.
  Reads are conditional (If-None-Match): an unchanged blob costs one request and no download; a blob
  larger than the caller's limit is refused before it is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from azure.core import MatchConditions
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

PUBLIC_CONTAINER = "consortium-public"
_JSON = ContentSettings(content_type="application/json")


class PublicBlobs:
    def __init__(self, container: ContainerClient):
        self.container = container

    @classmethod
    def from_settings(cls, values: Mapping[str, str]) -> PublicBlobs:
        service = blob_service(values, **metering.hook("storage"))
        return cls(service.get_container_client(PUBLIC_CONTAINER))

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

    @classmethod
    def from_settings(cls, values: Mapping[str, str]) -> PeerBlobs:
        raw = values.get("CONSORTIUM_PEER_READ_URLS") or "{}"
        try:
            urls = json.loads(raw)
        except ValueError:
            raise PermanentError("setting CONSORTIUM_PEER_READ_URLS must be a JSON object", reason="settings") from None
        if not isinstance(urls, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in urls.items()):
            raise PermanentError(
                "setting CONSORTIUM_PEER_READ_URLS must map member ids to container URLs", reason="settings"
            )
        return cls(urls, values)

    def introduced(self) -> dict[str, str]:
        return {member_id: _strip(url) for member_id, url in self.read_urls.items()}

    def _blob(self, endpoint: str, path: str) -> BlobClient:
        container_url = self.by_endpoint.get(_strip(endpoint))
        options: dict[str, Any] = {**metering.hook("storage")}
        if container_url is not None and "sig=" in container_url:
            return ContainerClient.from_container_url(container_url, **options).get_blob_client(path)
        credential = _credential(self.values, "AzureWebJobsStorage")
        return ContainerClient.from_container_url(_strip(endpoint), credential=credential, **options).get_blob_client(
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
            raise PermanentError(f"{what}: {size} bytes, more than {limit}", reason="oversize")
        data = downloader.readall()
        return Fetched(bytes(data), str(downloader.properties.etag or ""))
