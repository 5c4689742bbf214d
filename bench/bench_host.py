"""host_overhead_ratio: messages per second through a no-op function on the local host, divided by a
plain receive/delete loop with the SDK on the same Azurite (1 and 2 host instances).

A ratio near 1 means the host adds little beyond the storage round trips a consumer needs anyway;
above 1 means its batching and parallel completion beat a naive single-threaded loop.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from azure.storage.queue import QueueClient

from shared.adapters.storage import expand_connection_string
from tools import azurite

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = 600
QUEUE = "bench-noop"


def _fill(client: QueueClient, n: int) -> None:
    client.create_queue()
    for i in range(n):
        client.send_message(json.dumps({"n": i}))


def _remaining(client: QueueClient) -> int:
    return int(client.get_queue_properties().approximate_message_count or 0)


def plain_loop(conn: str) -> float:
    client = QueueClient.from_connection_string(conn, QUEUE)
    _fill(client, MESSAGES)
    started = time.perf_counter()
    done = 0
    while done < MESSAGES:
        batch = list(client.receive_messages(max_messages=32, messages_per_page=32, visibility_timeout=60))
        for message in batch:
            client.delete_message(message)
        done += len(batch)
    rate = MESSAGES / (time.perf_counter() - started)
    client.delete_queue()
    return rate


def through_host(conn: str, raw_conn: str, instances: int, workdir: Path) -> float:
    client = QueueClient.from_connection_string(conn, QUEUE)
    _fill(client, MESSAGES)
    app_dir = workdir / f"noop-{instances}"
    shutil.copytree(Path(__file__).resolve().parent / "apps" / "noop", app_dir)
    values = {"AzureWebJobsStorage": raw_conn, "FUNCTIONS_WORKER_RUNTIME": "python",
              "AzureFunctionsWebHost__hostid": f"bench-{instances}"}  # fmt: skip
    (app_dir / "local.settings.json").write_text(json.dumps({"Values": values}))
    ready = app_dir / "ready"
    cmd = [sys.executable, "-m", "tools.funchost", "--app-dir", str(app_dir), "--no-http",
           "--instances", str(instances), "--ready-file", str(ready)]  # fmt: skip
    with open(app_dir / "host.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # argv built above  # nosec B603
    try:
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError((app_dir / "host.log").read_text()[-2000:])
            time.sleep(0.02)
        started = time.perf_counter()
        deadline = started + 300
        while _remaining(client) > 0:
            if time.perf_counter() > deadline:
                raise RuntimeError("the host did not drain the queue within 300 s")
            time.sleep(0.02)
        rate = MESSAGES / (time.perf_counter() - started)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    client.delete_queue()
    return rate


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ports = azurite.free_ports(3)
        az, proc = azurite.start(workdir / "azurite", ports=(ports[0], ports[1], ports[2]))
        try:
            conn = expand_connection_string(az.connection_string)
            plain = plain_loop(conn)
            one = through_host(conn, az.connection_string, 1, workdir)
            two = through_host(conn, az.connection_string, 2, workdir)
        finally:
            azurite.stop_pid(proc.pid)
    print(f"{'consumer':34} {'msg/s':>8} {'ratio':>7}")
    print(f"{'plain SDK receive/delete loop':34} {plain:8.1f} {1.0:7.2f}")
    print(f"{'local host, 1 instance':34} {one:8.1f} {one / plain:7.2f}")
    print(f"{'local host, 2 instances':34} {two:8.1f} {two / plain:7.2f}")
    print(f"({MESSAGES} messages each, no-op function, one Azurite on this machine)")
    return {"host_overhead_ratio": round(one / plain, 3), "host_overhead_ratio_2_instances": round(two / plain, 3)}
