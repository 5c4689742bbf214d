"""An in-memory StateStore with the blob store's create-only and ETag rules."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from shared.errors import ConflictError
from shared.ports.state import Document


class FakeStateStore:
    def __init__(self) -> None:
        self.docs: dict[str, Document] = {}
        self._etags = itertools.count(1)

    def _etag(self) -> str:
        return f'"0x{next(self._etags):08X}"'

    def read(self, path: str) -> Document | None:
        doc = self.docs.get(path)
        return Document(doc.path, copy.deepcopy(doc.body), doc.etag) if doc else None

    def create(self, path: str, body: dict[str, Any]) -> Document:
        if path in self.docs:
            raise ConflictError(f"create {path}: already exists")
        self.docs[path] = Document(path, copy.deepcopy(body), self._etag())
        return self.read(path)  # type: ignore[return-value]

    def replace(self, path: str, body: dict[str, Any], etag: str) -> Document:
        current = self.docs.get(path)
        if current is None or current.etag != etag:
            raise ConflictError(f"replace {path}: changed since it was read")
        self.docs[path] = Document(path, copy.deepcopy(body), self._etag())
        return self.read(path)  # type: ignore[return-value]

    def list_paths(self, prefix: str) -> list[str]:
        return sorted(p for p in self.docs if p.startswith(prefix))

    def read_all(self, prefix: str) -> list[Document]:
        return [d for d in (self.read(p) for p in self.list_paths(prefix)) if d is not None]
