"""A coordinator process for the fencing test: takes the role, then keeps writing without checking it.

It plays the worst case, a holder paused exactly between its last check and its write: after the
test SIGSTOPs it past its lease and SIGCONTs it, it writes once more, and the fence must refuse it.
Prints ``leader <token>`` once it holds the role, then ``fenced`` when a write is refused.
"""

from __future__ import annotations

import sys
import time

from azure.storage.blob import ContainerClient

from shared.adapters.blob_leases import BlobLeaseStore
from shared.adapters.blob_state import BlobStateStore
from shared.adapters.storage import expand_connection_string
from shared.errors import FencedError
from shared.services.leadership import Coordinator, FencedWriter


def main(connection: str, container_name: str) -> int:
    container = ContainerClient.from_connection_string(expand_connection_string(connection), container_name)
    leases, state = BlobLeaseStore(container), BlobStateStore(container)
    coordinator = Coordinator(leases, "old-leader", 15)
    term = None
    while term is None:
        term = coordinator.ensure()
        time.sleep(0.2)
    print(f"leader {term.fencing_token}", flush=True)
    writer = FencedWriter(state, leases)
    while True:
        try:
            writer.update("decisions/history.json", term.fencing_token, lambda body: append(body, term.fencing_token))
        except FencedError:
            print("fenced", flush=True)
            return 0
        time.sleep(0.2)


def append(body: dict[str, list[int]] | None, token: int) -> dict[str, list[int]]:
    return {"writes": [*(body or {}).get("writes", []), token]}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
