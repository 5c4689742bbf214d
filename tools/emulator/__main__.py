"""``python -m tools.emulator --port 8443 --state-dir .local/emulator``: serve until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .compute import CORDA_PORTS
from .nodes import NodePorts
from .server import Emulator, run_forever, serve


def _ports(text: str) -> tuple[int, ...]:
    try:
        ports = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be comma-separated ports, e.g. 10002,10003") from None
    if not ports or any(not 1 <= p <= 65535 for p in ports):
        raise argparse.ArgumentTypeError(f"{text!r} must be comma-separated ports between 1 and 65535")
    return ports


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.emulator", description="Local Azure emulator: Compute, Monitor metrics, Key Vault."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--state-dir", default=".local/emulator", help="where state, the CA and the server certificate live")
    p.add_argument("--corda-ports", type=_ports, default=CORDA_PORTS,
                   help="Corda ports every running node serves on 127.0.0.1, remapped per node (default 10002,10003)")  # fmt: skip
    args = p.parse_args(argv)
    emulator = Emulator(Path(args.state_dir), args.host)
    try:
        server = serve(emulator, args.host, args.port)
    except OSError as e:
        print(f"emulator: cannot listen on {args.host}:{args.port}: {e.strerror}", file=sys.stderr)
        return 1
    try:
        emulator.open_vaults()
    except OSError as e:
        print(f"emulator: {e}", file=sys.stderr)
        emulator.close()
        server.server_close()
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"emulator listening on https://localhost:{args.port} (CA {Path(args.state_dir) / 'ca.pem'})", flush=True)
    nodes = NodePorts(emulator.compute, args.corda_ports).start()
    try:
        run_forever(server, stop)
    finally:
        emulator.close()
        nodes.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
