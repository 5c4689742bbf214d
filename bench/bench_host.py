"""host_overhead_ratio: messages per second through a no-op function on the local host, divided by a
plain receive/delete loop with the SDK on the same Azurite (1 and 2 host instances).

A ratio near 1 means the host adds little beyond the storage round trips a consumer needs anyway;
above 1 means its batching and parallel completion beat a naive single-threaded loop. Each figure is the
median ratio of rounds that alternate the loop and the hosts (this machine is shared: one pass alone
ranged 0.76..1.72 here).

host_http_requests_per_second_ratio: requests per second through a trivial HTTP function on the local
host (one instance), divided by a raw Werkzeug WSGI app's answering the same bytes, each in a process of
its own, driven by the same client (a few threads, each reusing its connection where the server keeps it:
the host's keeps it, Werkzeug's server closes every one); the median ratio of rounds alternating the two.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from azure.storage.queue import QueueClient

from shared.adapters.storage import expand_connection_string
from tools import azurite
from tools.harness.wait import wait_until

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = 600
QUEUE_ROUNDS = 3
QUEUE = "bench-noop"
REQUESTS = 3000
CLIENTS = 4
ROUNDS = 5
#: The baseline: a raw Werkzeug WSGI app on Werkzeug's threaded server, answering "ok".
RAW_WERKZEUG = """
import sys
from werkzeug.serving import make_server
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "2")])
    return [b"ok"]
make_server("127.0.0.1", int(sys.argv[1]), app, threaded=True).serve_forever()
"""


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
    app_dir = Path(tempfile.mkdtemp(prefix=f"noop-{instances}-", dir=workdir))  # a fresh folder each round
    shutil.copytree(Path(__file__).resolve().parent / "apps" / "noop", app_dir, dirs_exist_ok=True)
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


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - a loopback URL built here  # nosec B310
            return bool(r.status == 200)

    wait_until(f"{url} to answer", answers, 60, every=0.05, ignoring=(OSError,), error=RuntimeError)


def drive(port: int, path: str, requests: int = REQUESTS, clients: int = CLIENTS) -> float:
    """Requests per second for ``requests`` GETs from ``clients`` threads; every answer must be 200 "ok"."""
    errors: list[str] = []

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(n):
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or body != b"ok":
                errors.append(f"{response.status} {body[:60]!r}")
            if response.will_close:  # a server that closes every connection: open the next one
                conn.close()
        conn.close()

    drive_threads = [threading.Thread(target=client, args=(requests // clients,)) for _ in range(clients)]
    started = time.perf_counter()
    for t in drive_threads:
        t.start()
    for t in drive_threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} bad answers, first: {errors[0]}")
    return (requests // clients) * clients / elapsed


def http_rates(raw_conn: str, workdir: Path, rounds: int = ROUNDS) -> tuple[float, float, float]:
    """(local host req/s, raw Werkzeug req/s, ratio): medians over ``rounds`` rounds that alternate the
    two servers, so that load from elsewhere on this shared machine falls on both alike."""
    host_port, raw_port = azurite.free_ports(2)
    app_dir = workdir / "http-noop"
    shutil.copytree(Path(__file__).resolve().parent / "apps" / "http_noop", app_dir)
    values = {"AzureWebJobsStorage": raw_conn, "FUNCTIONS_WORKER_RUNTIME": "python",
              "AzureFunctionsWebHost__hostid": "bench-http"}  # fmt: skip
    (app_dir / "local.settings.json").write_text(json.dumps({"Values": values}))
    servers = {
        "host": ([sys.executable, "-m", "tools.funchost", "--app-dir", str(app_dir), "--port", str(host_port)],
                 host_port, "/api/ping"),
        "raw": ([sys.executable, "-c", RAW_WERKZEUG, str(raw_port)], raw_port, "/"),
    }  # fmt: skip
    procs = []
    try:
        for name, (cmd, port, path) in servers.items():
            log = workdir / f"{name}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)  # argv built here  # nosec B603
            procs.append(proc)
            _wait_http(f"http://127.0.0.1:{port}{path}", proc, log)
            drive(port, path, requests=200)  # warm up: imports, first connections
        host_rates, raw_rates, ratios = [], [], []
        for _ in range(rounds):
            host_rates.append(drive(host_port, "/api/ping", requests=REQUESTS // rounds))
            raw_rates.append(drive(raw_port, "/", requests=REQUESTS // rounds))
            ratios.append(host_rates[-1] / raw_rates[-1])
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    return statistics.median(host_rates), statistics.median(raw_rates), statistics.median(ratios)


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ports = azurite.free_ports(3)
        az, proc = azurite.start(workdir / "azurite", ports=(ports[0], ports[1], ports[2]))
        try:
            conn = expand_connection_string(az.connection_string)
            # Rounds alternate the plain loop and the hosts, and each figure is the median ratio of its
            # rounds: load from elsewhere on this shared machine then falls on both sides alike.
            plains, ones, twos = [], [], []
            for _ in range(QUEUE_ROUNDS):
                plains.append(plain_loop(conn))
                ones.append(through_host(conn, az.connection_string, 1, workdir))
                twos.append(through_host(conn, az.connection_string, 2, workdir))
            http_host, http_raw, http_ratio = http_rates(az.connection_string, workdir)
        finally:
            azurite.stop_pid(proc.pid)
    plain, one, two = (statistics.median(x) for x in (plains, ones, twos))
    one_ratio = statistics.median(o / p for o, p in zip(ones, plains, strict=True))
    two_ratio = statistics.median(t / p for t, p in zip(twos, plains, strict=True))
    print(f"{'consumer':34} {'msg/s':>8} {'ratio':>7}")
    print(f"{'plain SDK receive/delete loop':34} {plain:8.1f} {1.0:7.2f}")
    print(f"{'local host, 1 instance':34} {one:8.1f} {one_ratio:7.2f}")
    print(f"{'local host, 2 instances':34} {two:8.1f} {two_ratio:7.2f}")
    print(f"(median of {QUEUE_ROUNDS} alternating rounds of {MESSAGES} messages, no-op function, one Azurite here)")
    print(f"\n{'HTTP server':34} {'req/s':>8} {'ratio':>7}")
    print(f"{'raw Werkzeug WSGI app':34} {http_raw:8.1f} {1.0:7.2f}")
    print(f"{'local host, trivial HTTP function':34} {http_host:8.1f} {http_ratio:7.2f}")
    print(
        f"(median of {ROUNDS} alternating rounds of {REQUESTS // ROUNDS} GETs from {CLIENTS} client threads; "
        "each server in its own process)"
    )
    return {
        "host_overhead_ratio": round(one_ratio, 3),
        "host_overhead_ratio_2_instances": round(two_ratio, 3),
        "host_http_requests_per_second_ratio": round(http_ratio, 3),
    }
