"""``python -m tools.funchost``: run ``function_app.py`` locally, as one instance or as several.

With ``--instances N`` a supervisor starts N host processes that compete for the same queues, like
a scaled-out app: instance ``i`` serves HTTP on ``--port + i``, timers run on whichever instance holds
each timer's listener lock. SIGTERM/SIGINT stop every instance gracefully.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .host import HostOptions, run


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.funchost",
        description="Local Azure Functions host for the Python v2 model (a development stand-in for `func start`).",
    )
    p.add_argument("--app-dir", default=".", help="folder holding the app module, host.json and local.settings.json")
    p.add_argument("--app", default="function_app", help="module that defines `app` (default: function_app)")
    p.add_argument("--settings", default="local.settings.json", help="local settings file, relative to --app-dir")
    p.add_argument("--host-json", default="host.json", help="host.json, relative to --app-dir")
    p.add_argument("--port", type=int, default=7071, help="HTTP port of instance 0 (instance i uses port+i)")
    p.add_argument("--no-http", action="store_true", help="serve no HTTP (queue and timer triggers only)")
    p.add_argument("--instances", type=int, default=1, help="host processes competing for the same queues (default 1)")
    p.add_argument("--instance-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--ready-file", help="write this file once the host runs (used by the stack and tests)")
    args = p.parse_args(argv)
    if args.instances < 1:
        p.error("--instances must be at least 1")
    return args


def supervise(args: argparse.Namespace, argv: list[str]) -> int:
    children = []
    base = _without(argv, ("--instances", "--ready-file", "--port"))
    for i in range(args.instances):
        child_args = [
            sys.executable,
            "-m",
            "tools.funchost",
            *base,
            "--instance-index",
            str(i),
            "--port",
            str(args.port + i),
        ]
        if args.ready_file:
            child_args += ["--ready-file", f"{args.ready_file}.{i}"]
        child = subprocess.Popen(child_args)  # this module again, with the caller's flags  # nosec B603
        children.append(child)
    stopping = False

    def forward(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    if args.ready_file:
        while not all(Path(f"{args.ready_file}.{i}").exists() for i in range(args.instances)):
            if any(c.poll() is not None for c in children):
                forward(signal.SIGTERM, None)
                break
            time.sleep(0.1)
        else:
            Path(args.ready_file).write_text(str(os.getpid()))
    codes = [child.wait() for child in children]
    return max(codes) if stopping else 1


def _without(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in flags:
            skip = True
            continue
        if any(arg.startswith(f + "=") for f in flags):
            continue
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.instances > 1:
        return supervise(args, argv)
    options = HostOptions(
        app_dir=Path(args.app_dir),
        module=args.app,
        settings_file=args.settings,
        host_json=args.host_json,
        port=None if args.no_http else args.port,
        instance_index=args.instance_index,
    )
    return run(options, ready_file=Path(args.ready_file) if args.ready_file else None)


if __name__ == "__main__":
    sys.exit(main())
