"""The member's ``node-infos-inbox`` over blobs, in the app's own storage account (``AzureWebJobsStorage``).

The app reads and cleans it with the same client as its state: its Storage Blob Data Contributor on
that account covers the container (infra/modules/roles.bicep); the nodes' identity holds the same role
on this container alone (infra/modules/storage.bicep).
"""

from __future__ import annotations

from collections.abc import Mapping

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from shared.adapters import metering
from shared.adapters.blob_state import translate
from shared.adapters.storage import blob_service
from shared.decisions.node_infos import INBOX_CONTAINER, InboxBlob
from shared.errors import PermanentError, TransientError
from shared.reasons import Reason


class BlobInbox:
    def __init__(self, container: ContainerClient):
        self.container = container

    @classmethod
    def from_settings(cls, values: Mapping[str, str]) -> BlobInbox:
        return cls(blob_service(values, **metering.hook("storage")).get_container_client(INBOX_CONTAINER))

    def list(self) -> list[InboxBlob]:
        try:
            return [InboxBlob(b.name, int(b.size or 0), b.last_modified) for b in self.container.list_blobs()]
        except ResourceNotFoundError:
            return []  # the container is not there (yet): nothing offered
        except HttpResponseError as error:
            raise translate(error, f"list {INBOX_CONTAINER}") from error
        except AzureError as error:
            raise TransientError(f"list {INBOX_CONTAINER}: {error}") from error

    def get(self, name: str, *, limit: int) -> bytes | None:
        try:
            downloader = self.container.download_blob(name)
            if (downloader.size or 0) > limit:
                raise PermanentError(f"{INBOX_CONTAINER}/{name}: {downloader.size} bytes, more than {limit}",
                                     reason=Reason.OVERSIZE)  # fmt: skip
            return bytes(downloader.readall())
        except ResourceNotFoundError:
            return None
        except HttpResponseError as error:
            raise translate(error, f"read {INBOX_CONTAINER}/{name}") from error

    def delete(self, name: str) -> None:
        try:
            self.container.delete_blob(name)
        except ResourceNotFoundError:
            return
        except HttpResponseError as error:
            raise translate(error, f"delete {INBOX_CONTAINER}/{name}") from error
