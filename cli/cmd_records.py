"""`consortium rejections` and `consortium replay-poison`: what this member's deployment refused or gave up on.

A message that can never succeed is rejected at once and its reason recorded in the member's own
storage (``rejections/``), as are documents read from other members that did not verify (queue
``peer-documents``); a message that kept failing lands in ``<queue>-poison``, and replay-poison puts
it back: every step is idempotent, so an onboarding resumes where its record says it stands.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cli.main import UsageError, platform_for
from shared.services.poison import replay
from shared.services.records import list_rejections
from shared.services.status import WATCHED_QUEUES


def register(sub: Any) -> None:
    r = sub.add_parser("rejections", help="messages and documents this member refused, newest first",
                       description="List what this member's deployment refused: messages that were bad input (bad "
                       "JSON, schema violations, a member id that is not its own, decisions on unknown or closed "
                       "proposals, ...) and documents from other members that did not verify, with the queue, the "
                       "field and the rule.")  # fmt: skip
    r.add_argument("--limit", type=int, default=20, help="show at most this many (default 20)")
    r.add_argument("--json", action="store_true", help="print them as JSON")
    r.set_defaults(handler=run_rejections)

    rp = sub.add_parser("replay-poison", help="put this member's poison messages back on their queues",
                        description="Move every message of <queue>-poison of this member's deployment back to "
                        "<queue>. Every step is idempotent, so a failed onboarding resumes where it "
                        "stopped.")  # fmt: skip
    rp.add_argument("--queue", choices=WATCHED_QUEUES, help="only this queue (default all)")
    rp.set_defaults(handler=run_replay)


def run_rejections(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    found = list_rejections(platform_for(args).state, args.limit)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    if not found:
        print("(no rejections)")
        return 0
    for r in found:
        who = r.get("member_id") or "?"
        print(f"{r['at']}  {r['queue']:22} {who:14} {r['reason']:20} {r['message']}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    platform = platform_for(args)
    queues = [args.queue] if args.queue else list(WATCHED_QUEUES)

    def progress(queue: str, moved: int) -> None:
        print(f"  {queue}: {moved} moved back", file=sys.stderr)

    moved = replay(platform.queues.move_all, platform.queues.count, queues, progress=progress)
    if not moved:
        print("no poison messages")
        return 0
    for queue, n in moved.items():
        print(f"replayed {n} message(s) from {queue}-poison to {queue}")
    return 0
