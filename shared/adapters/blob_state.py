"""The state store over blobs: JSON documents in the ``consortium`` container, ETag-guarded.

``create`` is create-only (If-None-Match: *), ``replace`` is conditional on the ETag that was read
(If-Match); either losing a race raises ``ConflictError`` so the caller re-reads and re-decides.
Storage errors are translated here into the project's two kinds.
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import ContainerClient, ContentSettings

from shared.errors import ConflictError, PermanentError, TransientError
from shared.ports.state import Document
from shared.reasons import Reason

CONTAINER = "consortium"
_JSON = ContentSettings(content_type="application/json")


def translate(error: Exception, what: str) -> Exception:
    """A storage SDK error as one of the project's error kinds."""
    if isinstance(error, ResourceModifiedError | ResourceExistsError):
        return ConflictError(f"{what}: changed since it was read")
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return TransientError(f"{what}: storage unreachable: {error}")
    if isinstance(error, HttpResponseError):
        status = error.status_code or 0
        if status == 412 or status == 409:
            return ConflictError(f"{what}: precondition failed ({status})")
        if status == 429 or status >= 500 or status == 408:
            headers = getattr(error.response, "headers", None) or {}
            retry_after = headers.get("Retry-After")
            return TransientError(
                f"{what}: storage answered {status}", retry_after=float(retry_after) if retry_after else None
            )
        return PermanentError(f"{what}: storage answered {status}: {error.message}", reason=Reason.STORAGE)
    return error


def _bare(etag: str) -> str:
    """An ETag without its quotes: a download's header quotes it, a listing does not."""
    return etag.strip('"')


class BlobStateStore:
    def __init__(self, container: ContainerClient):
        self.container = container
        self._container_checked = False
        #: path -> (bare ETag, body) of documents ``read_all`` downloaded, to skip unchanged ones.
        self._seen: dict[str, tuple[str, dict[str, Any]]] = {}
        self._seen_lock = threading.Lock()

    def _ensure_container(self) -> None:
        if self._container_checked:
            return
        try:
            self.container.create_container()
        except ResourceExistsError:
            pass
        except Exception as e:
            raise translate(e, f"container {self.container.container_name}") from e
        self._container_checked = True

    def read(self, path: str) -> Document | None:
        try:
            downloader = self.container.get_blob_client(path).download_blob()
            body = json.loads(downloader.readall())
            return Document(path, body, str(downloader.properties.etag))
        except ResourceNotFoundError:
            return None
        except Exception as e:
            raise translate(e, f"read {path}") from e

    def create(self, path: str, body: dict[str, Any]) -> Document:
        self._ensure_container()
        try:
            result = self.container.get_blob_client(path).upload_blob(
                json.dumps(body, sort_keys=True), overwrite=False, content_settings=_JSON
            )
        except Exception as e:
            raise translate(e, f"create {path}") from e
        return Document(path, body, str(result["etag"]))

    def replace(self, path: str, body: dict[str, Any], etag: str) -> Document:
        try:
            result = self.container.get_blob_client(path).upload_blob(
                json.dumps(body, sort_keys=True),
                overwrite=True,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
                content_settings=_JSON,
            )
        except ResourceNotFoundError as e:
            raise ConflictError(f"replace {path}: it was deleted since it was read") from e
        except Exception as e:
            raise translate(e, f"replace {path}") from e
        return Document(path, body, str(result["etag"]))

    def list_paths(self, prefix: str) -> list[str]:
        try:
            return sorted(b.name for b in self.container.list_blobs(name_starts_with=prefix))
        except ResourceNotFoundError:
            return []
        except Exception as e:
            raise translate(e, f"list {prefix}") from e

    def read_all(self, prefix: str) -> list[Document]:
        try:
            listed = {b.name: _bare(str(b.etag)) for b in self.container.list_blobs(name_starts_with=prefix)}
        except ResourceNotFoundError:
            listed = {}
        except Exception as e:
            raise translate(e, f"list {prefix}") from e
        documents = []
        for path in sorted(listed):
            with self._seen_lock:
                seen = self._seen.get(path)
            if seen is not None and seen[0] == listed[path]:
                documents.append(Document(path, copy.deepcopy(seen[1]), f'"{seen[0]}"'))
                continue
            doc = self.read(path)
            if doc is None:  # deleted since the listing
                continue
            with self._seen_lock:
                self._seen[path] = (_bare(doc.etag), copy.deepcopy(doc.body))
            documents.append(doc)
        with self._seen_lock:
            for path in [p for p in self._seen if p.startswith(prefix) and p not in listed]:
                del self._seen[path]
        return documents
