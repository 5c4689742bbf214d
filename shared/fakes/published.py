"""Published containers in memory: one per member, readable by the others, written by its owner.

``PublishedWorld`` holds every member's ``consortium-public`` container by endpoint. A member's
``FakePublicStore`` writes only its own; a ``FakePeerReader`` reads any of them with the conditional
request the Azure adapter makes (an ETag that still matches returns no data). Tests can corrupt a
container to play a dishonest member or a dishonest storage host.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from shared.errors import PermanentError, TransientError
from shared.ports.published import Fetched
from shared.reasons import Reason


@dataclass
class PublishedWorld:
    containers: dict[str, dict[str, tuple[bytes, str]]] = field(default_factory=dict)
    #: Endpoints whose reads fail (transiently), to play a member that is down or unreachable.
    down: set[str] = field(default_factory=set)
    requests: int = 0
    _etags: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def write(self, endpoint: str, path: str, data: bytes) -> None:
        self.containers.setdefault(endpoint, {})[path] = (data, f'"{next(self._etags):x}"')


@dataclass
class FakePublicStore:
    world: PublishedWorld
    endpoint: str

    def put(self, path: str, data: bytes) -> None:
        if self.endpoint in self.world.down:
            raise TransientError(f"put {path}: storage unreachable")
        self.world.write(self.endpoint, path, data)

    def get(self, path: str) -> bytes | None:
        found = self.world.containers.get(self.endpoint, {}).get(path)
        return found[0] if found else None


@dataclass
class FakePeerReader:
    world: PublishedWorld
    introductions: dict[str, str] = field(default_factory=dict)

    def introduced(self) -> dict[str, str]:
        return dict(self.introductions)

    def fetch(self, endpoint: str, path: str, *, etag: str | None = None, limit: int) -> Fetched | None:
        self.world.requests += 1
        if endpoint in self.world.down:
            raise TransientError(f"read {path} at {endpoint}: unreachable")
        found = self.world.containers.get(endpoint, {}).get(path)
        if found is None:
            return None
        data, current = found
        if etag == current:
            return Fetched(None, current)
        if len(data) > limit:
            raise PermanentError(
                f"read {path} at {endpoint}: {len(data)} bytes, more than {limit}", reason=Reason.OVERSIZE
            )
        return Fetched(data, current)
