"""`consortium rotate-keys [--force]`: ask this member's coordinator to rotate its own keys now.

The request goes through the member's own ``key-rotation-requests``, so its coordinator does the
work under its fencing token and the member's lease, exactly as the daily check would; a deployment
rotates only its own member's keys, in its own vault. With
``--wait`` (the default, 60 s) the command follows the request until the coordinator has taken it,
then prints what happened to each key; the overlap that follows is shown by `consortium status`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from cli.main import CommandError, UsageError, platform_for
from shared.bootstrap import Platform
from shared.messages import KeyRotationRequest, Rejection, parse
from shared.services.records import rejection_path
from shared.services.rotation import REQUESTS, request_report_path

#: Actions not worth a line of their own when following a request.
QUIET = ("none",)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "rotate-keys",
        help="rotate this member's keys in its own Key Vault now: what is due, or all with --force",
        description="Ask this member's coordinator (through its own key-rotation-requests) to rotate the member's "
        "keys at once. Without --force only keys past their rotation age rotate (and rotations under way move "
        "on); with --force every key of the member starts a rotation, once per request id. A rotation creates a "
        "new version in the member's vault and publishes old and new (TLS: the member's signed keys.json; "
        "governance: a rotate version of the chain, signed with the old key and the new); after the overlap it "
        "disables the old one (never deletes it). Node identity keys are not rotated (Corda needs R3's tool).",
    )
    p.add_argument("--force", action="store_true", help="rotate now even if not due")
    p.add_argument("--request-id", help="idempotency key (default rot-MEMBER-<unix time>)")
    p.add_argument("--wait", type=float, default=60, metavar="SECONDS",
                   help="follow the request this long (default 60; 0 returns once posted)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the coordinator's report as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.wait < 0:
        raise UsageError("--wait must be 0 or more seconds")
    platform = platform_for(args)
    me = platform.member_id
    body: dict[str, Any] = {
        "request_id": args.request_id or f"rot-{me}-{int(time.time())}",
        "member_id": me,
        "force": bool(args.force),
    }
    raw = json.dumps(body, separators=(",", ":"))
    parsed = parse(KeyRotationRequest, raw)
    if isinstance(parsed, Rejection):
        raise UsageError(parsed.message)
    earlier = platform.state.read(request_report_path(body["request_id"]))
    runs_before = int(earlier.body.get("runs", 0)) if earlier else 0
    platform.queues.send(REQUESTS, raw)
    print(f"posted {body['request_id']}: rotate {me}'s keys{' (forced)' if args.force else ' (what is due)'}")
    if not args.wait:
        return 0
    report = _follow(platform, body["request_id"], args.wait, runs_before, rejection_path(REQUESTS, raw))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for r in report.get("results") or []:
        if r["action"] not in QUIET:
            print(f"  {r['action']:8} {r['message']}")
    counts = report.get("counts") or {}
    print(f"done: {', '.join(f'{n} {a}' for a, n in sorted(counts.items())) or 'no keys'}"
          f"; keys.json seq {report.get('keys_document_seq') or '-'}")  # fmt: skip
    return 0


def _follow(platform: Platform, request_id: str, seconds: float, runs_before: int, refusal: str) -> dict[str, Any]:
    """The coordinator's report once it has taken this delivery (its ``runs`` passed ``runs_before``).

    ``refusal`` is where the coordinator records the message if it refuses it (a member not active).
    """
    deadline = time.monotonic() + seconds
    path = request_report_path(request_id)
    waited = False
    while time.monotonic() < deadline:
        doc = platform.state.read(path)
        if doc is not None and int(doc.body.get("runs", 0)) > runs_before:
            if waited:
                print(file=sys.stderr)
            return doc.body
        refused = platform.state.read(refusal)
        if refused is not None:
            why = f"{refused.body['reason']}: {refused.body['message']}"
            raise CommandError(f"request {request_id} was rejected: {why}")
        print(".", end="", file=sys.stderr, flush=True)
        waited = True
        time.sleep(1)
    print(file=sys.stderr)
    raise CommandError(
        f"request {request_id} was not taken within {seconds:g}s: is the member's deployment up (make up) and a "
        "coordinator elected (consortium status)? The request stays queued."
    )
