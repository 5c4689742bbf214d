"""A contender process for the leadership benchmark: runs one coordinator election per name, as threads.

Each election polls every ``--poll`` seconds (client-go's RetryPeriod, 2 s) with ``--lease`` second
leases (15 s). On taking a role it prints one JSON line ``{"event": "acquired", ...}`` (its first
action as coordinator). With ``--write`` every holder keeps appending its fencing token to
``bench/<name>.json`` through the fenced writer *without checking its term first*, the worst case of
a holder paused between check and write; refused writes are counted. SIGTERM releases every lease
(a graceful handover) and exits.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from azure.storage.blob import ContainerClient

from shared.adapters.blob_leases import BlobLeaseStore
from shared.adapters.blob_state import BlobStateStore
from shared.adapters.storage import expand_connection_string
from shared.errors import ControlPlaneError, FencedError
from shared.services.leadership import FencedWriter, LeaseKeeper

_print_lock = threading.Lock()


def emit(**fields: Any) -> None:
    with _print_lock:
        print(json.dumps(fields), flush=True)


def appender(token: int) -> Callable[[dict[str, Any] | None], dict[str, Any]]:
    return lambda body: {"writes": [*(body or {}).get("writes", []), token]}


def election(
    name: str, me: str, args: argparse.Namespace, store: BlobLeaseStore, state: BlobStateStore, stop: threading.Event
) -> None:
    keeper = LeaseKeeper(store, name, me, args.lease)
    writer = FencedWriter(state, store, role=name)
    token = None
    while not stop.is_set():
        try:
            term = keeper.try_acquire()
        except ControlPlaneError:
            term = None
        if term is not None and term.fencing_token != token:
            token = term.fencing_token
            emit(event="acquired", election=name, holder=me, token=token, at=time.time())
        if args.write and token is not None:
            held = token
            try:
                writer.update(f"bench/{name}.json", held, appender(held))
            except FencedError:
                emit(event="fenced", election=name, holder=me, token=held, at=time.time())
                token = None
            except ControlPlaneError:
                pass
        stop.wait(args.write_every if args.write and token is not None else args.poll)
    keeper.release()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("connection")
    p.add_argument("container")
    p.add_argument("--me", required=True)
    p.add_argument("--elections", type=int, default=20)
    p.add_argument("--lease", type=int, default=15)
    p.add_argument("--poll", type=float, default=2.0)
    p.add_argument("--write", action="store_true")
    p.add_argument("--write-every", type=float, default=0.5)
    args = p.parse_args()
    container = ContainerClient.from_connection_string(expand_connection_string(args.connection), args.container)
    store, state = BlobLeaseStore(container), BlobStateStore(container)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threads = [
        threading.Thread(target=election, args=(f"e{i:03d}", args.me, args, store, state, stop), daemon=True)
        for i in range(args.elections)
    ]
    for t in threads:
        t.start()
    emit(event="started", holder=args.me, at=time.time())
    while not stop.is_set():
        stop.wait(0.2)
    for t in threads:
        t.join(timeout=10)
    emit(event="stopped", holder=args.me, at=time.time())
    return 0


if __name__ == "__main__":
    sys.exit(main())
