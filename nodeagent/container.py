"""Reading the member's own ``consortium-public`` container: the one thing the agent reads; and the
agent's one write, its node's ``NodeInfo`` file offered in the member's inbox (``BlobInbox``).

``Container`` is the port (bytes in, nothing believed yet); ``BlobContainer`` its adapter over
``azure-storage-blob``, built from the agent's config: with the VM's managed identity in Azure, with a
read-only SAS against Azurite (``nodeagent.config``). A missing blob is ``None``; a blob larger than
the caller's limit is refused before it is downloaded; anything the agent cannot read now (network,
throttling, 5xx, a role not granted yet) raises ``Unavailable``, and the run changes nothing.
"""

from __future__ import annotations

import socket
from typing import Any, Protocol

from nodeagent.config import AgentConfig, Credential
from shared.decisions.node_infos import INBOX_CONTAINER


class Unavailable(RuntimeError):
    """The container could not be read now; the next run tries again."""


class TooLarge(ValueError):
    """A blob larger than the document it should be can be; refused unread."""


class Container(Protocol):
    def get(self, path: str, *, limit: int) -> bytes | None:
        """The blob at ``path``; ``None`` if absent; ``TooLarge`` above ``limit``; ``Unavailable``."""
        ...


#: The timer runs the agent every minute: a read that fails is retried once after 2 s, then left to the
#: next run (the storage SDK's default backs off 15 s and more, longer than a run should take).
CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 10, "read_timeout": 30}


def _client(config: AgentConfig, url: str, options: dict[str, Any]) -> Any:
    """A container client for ``url`` with the agent's credential (a SAS in the URL, or the VM's
    managed identity) and its short timeouts and one retry."""
    from azure.storage.blob import ContainerClient, LinearRetry

    options = {
        **CLIENT_OPTIONS,
        "retry_policy": LinearRetry(backoff=2, random_jitter_range=1, retry_total=1),
        **options,
    }
    if config.credential is Credential.SAS:
        return ContainerClient.from_container_url(url, **options)
    from azure.identity import ManagedIdentityCredential

    identity = ManagedIdentityCredential(client_id=config.managed_identity_client_id)
    return ContainerClient.from_container_url(url, credential=identity, **options)


class BlobContainer:
    def __init__(self, client: Any):
        self.client = client

    @classmethod
    def from_config(cls, config: AgentConfig, **options: Any) -> BlobContainer:
        return cls(_client(config, config.container_url, options))

    def get(self, path: str, *, limit: int) -> bytes | None:
        from azure.core.exceptions import AzureError, ClientAuthenticationError, ResourceNotFoundError

        try:
            downloader = self.client.download_blob(path)
            size = downloader.size or 0
            if size > limit:
                raise TooLarge(f"{path}: {size} bytes, more than {limit}")
            return bytes(downloader.readall())
        except ResourceNotFoundError:
            return None
        except ClientAuthenticationError as error:
            raise Unavailable(f"read {path}: not authorized ({_status(error)}): check the identity's role") from None
        except AzureError as error:
            raise Unavailable(f"read {path}: {type(error).__name__} {_status(error)}".rstrip()) from None


def _status(error: Exception) -> str:
    code = getattr(error, "status_code", None)
    return f"HTTP {code}" if code else ""


class BlobInbox:
    """``nodeagent.inbox.Inbox`` over the member's ``node-infos-inbox`` container (same credential)."""

    def __init__(self, client: Any):
        self.client = client

    @classmethod
    def from_config(cls, config: AgentConfig, **options: Any) -> BlobInbox:
        return cls(_client(config, config.inbox_url, options))

    def refresh(self, name: str) -> bool:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            self.client.get_blob_client(name).set_blob_metadata({"host": socket.gethostname()[:64]})
        except ResourceNotFoundError:
            return False
        except AzureError as error:
            raise _unavailable("refresh", name, error) from None
        return True

    def create(self, name: str, data: bytes) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            self.client.upload_blob(name, data, overwrite=False, metadata={"host": socket.gethostname()[:64]})
        except ResourceExistsError:
            return  # content-addressed: the same bytes are there
        except AzureError as error:
            raise _unavailable("upload", name, error) from None


def _unavailable(what: str, name: str, error: Exception) -> Unavailable:
    from azure.core.exceptions import ClientAuthenticationError

    where = f"{what} {INBOX_CONTAINER}/{name}"
    if isinstance(error, ClientAuthenticationError):
        return Unavailable(f"{where}: not authorized ({_status(error)}): check the identity's role")
    return Unavailable(f"{where}: {type(error).__name__} {_status(error)}".rstrip())
