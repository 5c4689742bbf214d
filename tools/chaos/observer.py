"""What a trial samples while it runs: each member's chain, record, own consortium state and coordinator
lease, so a fork later repaired is still seen and a violation's history can name its cause (issue 19).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time

from shared.decisions import chain
from shared.services.consortium import SELF
from shared.services.leadership import COORDINATOR
from tools.chaos.deployments import MEMBERS, MemberStack, describe_record, own_record


class Observer(threading.Thread):
    """Samples each member's chain, record, own consortium state and coordinator lease while a trial runs."""

    def __init__(self, stack: MemberStack, started: float, every: float = 0.5):
        super().__init__(daemon=True, name="observer")
        self.stack, self.started, self.every = stack, started, every
        #: version -> document hash -> the members that held it (from their own storage)
        self.documents: dict[int, dict[str, set[str]]] = {}
        self.forks: dict[str, str] = {}
        self.record_versions: dict[str, list[str]] = {m: [] for m in MEMBERS}
        self.lease_holders: dict[str, list[str]] = {m: [] for m in MEMBERS}
        self.chain_versions: dict[str, list[str]] = {m: [] for m in MEMBERS}
        self._seen: dict[str, int] = {}
        self._last: dict[str, object] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            self.sample()

    def _note(self, into: list[str], key: str, value: object, text: str) -> None:
        if self._last.get(key) != value:
            self._last[key] = value
            into.append(f"{time.monotonic() - self.started:6.1f}s {text}")

    def sample(self) -> None:
        for member in MEMBERS:
            p = self.stack.platform(member)
            with contextlib.suppress(Exception):
                paths = p.state.list_paths("chain/")
                for path in paths[self._seen.get(member, 0) :]:
                    doc = p.state.read(path)
                    if doc is None:
                        break
                    version = int(doc.body.get("version", -1))
                    digest = chain.document_hash(doc.body)
                    self.documents.setdefault(version, {}).setdefault(digest, set()).add(member)
                    self._seen[member] = self._seen.get(member, 0) + 1
                    change = doc.body.get("change") or {}
                    self._note(self.chain_versions[member], f"chain {member}", version,
                               f"v{version} {digest[:12]} {change.get('kind')} {change.get('member_id')}")  # fmt: skip
            with contextlib.suppress(Exception):
                body = own_record(p, member)
                self._note(self.record_versions[member], f"record {member}", json.dumps(body, sort_keys=True),
                           describe_record(body))  # fmt: skip
            with contextlib.suppress(Exception):
                lease = p.leases.read(COORDINATOR)
                held = (lease.holder, lease.fencing_token) if lease.leased else None
                text = f"held by {lease.holder} (token {lease.fencing_token})" if held else "free"
                self._note(self.lease_holders[member], f"lease {member}", held, text)
            with contextlib.suppress(Exception):
                own = p.state.read(SELF)
                if own is not None and own.body.get("fork"):
                    self.forks.setdefault(member, json.dumps(
                        {k: v for k, v in own.body["fork"].items() if k != "documents"})[:300])  # fmt: skip

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
        self.sample()

    def violations(self) -> list[str]:
        found = []
        for version, documents in sorted(self.documents.items()):
            if len(documents) > 1:
                held = "; ".join(f"{d[:12]} at {', '.join(sorted(ms))}" for d, ms in documents.items())
                found.append(f"fork: version {version} exists as {len(documents)} different documents ({held})")
        found += [f"fork: {member}'s deployment reports a fork: {fork}" for member, fork in self.forks.items()]
        return found
