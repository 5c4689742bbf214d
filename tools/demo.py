"""`make demo`: start the local stack, play the consortium scenario, show what happens, stop the stack.

The scenario is a list of acts; each says what it is about to show, does it through the same
interfaces people use (queues, the CLI, HTTP), and shows the result. The stack is always stopped at
the end, also after a failure or Ctrl-C, unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tools import stack

HOST = "http://localhost:7071"


@dataclass(frozen=True)
class Act:
    title: str
    run: Callable[[], None]


def say(text: str) -> None:
    print(text, flush=True)


def get_json(path: str) -> Any:
    with urllib.request.urlopen(f"{HOST}{path}", timeout=10) as response:  # noqa: S310 - the local host
        return json.loads(response.read())


def show_functions() -> None:
    status = get_json("/admin/host/status")
    say(f"  host {status['id']} is {status['state']} with {len(status['functions'])} function(s):")
    for name in status["functions"]:
        say(f"    - {name}")


def probe_liveness() -> None:
    started = time.perf_counter()
    body = get_json("/api/healthz")
    say(f"  GET /api/healthz -> {body['status']} in {(time.perf_counter() - started) * 1000:.0f} ms")


ACTS = [
    Act("The function app, indexed by the local host", show_functions),
    Act("A liveness probe through the HTTP trigger", probe_liveness),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description="Play the consortium scenario on the local stack.")
    parser.add_argument(
        "--keep", action="store_true", help="leave the stack running afterwards (stop it with `make down`)"
    )
    args = parser.parse_args(argv)
    say("== Starting the local stack")
    try:
        stack.up()
        for number, act in enumerate(ACTS, start=1):
            say(f"\n== {number}. {act.title}")
            act.run()
        say("\nThe scenario finished.")
        return 0
    except stack.StackError as e:
        say(f"demo: {e}")
        return 1
    except KeyboardInterrupt:
        say("\ndemo: interrupted")
        return 130
    finally:
        if not args.keep:
            say("\n== Stopping the local stack")
            stack.down()


if __name__ == "__main__":
    sys.exit(main())
