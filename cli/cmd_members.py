"""Membership commands: onboard, approve / reject, offboard, members, rejections, replay-poison.

Messages are validated here with the same schemas the functions use, so a typo is exit 2 with the
field and the rule before anything is posted. Votes are signed through Key Vault with the
approver's governance key (the private key never leaves the vault), exactly as the contract says.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from cli.context import settings
from cli.main import CommandError, UsageError, member_arg
from shared.bootstrap import Platform
from shared.canonical import approval_payload, b64u, digest
from shared.messages import (
    DEFAULT_MAX_NODES,
    REQUEST_ID_PATTERN,
    Approval,
    OffboardingRequest,
    OnboardingRequest,
    Rejection,
    parse,
)
from shared.naming import key_name
from shared.services import onboarding as ob
from shared.services.poison import replay
from shared.services.records import list_rejections, member_path, request_path
from shared.services.status import WATCHED_QUEUES

FINAL = {"active", "rejected", "failed", "offboarded"}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "onboard",
        help="ask for a bank to join (posts to onboarding-requests)",
        description="Post an onboarding request. Founders (CONSORTIUM_FOUNDERS) are admitted at once; anyone "
        "else waits for the active members' votes (`consortium approve`). The request id is the idempotency "
        "key: posting the same request again changes nothing.",
    )
    p.add_argument("member", metavar="MEMBER", help="member id, e.g. bank-c")
    p.add_argument("--legal-name", required=True, help='Corda X.500 name, e.g. "O=Bank C, L=Amsterdam, C=NL"')
    p.add_argument("--region", default="westeurope", help="Azure region of its nodes (default westeurope)")
    p.add_argument("--nodes", type=int, default=2, help="Corda nodes to start with (default 2)")
    p.add_argument("--email", help="operations contact (default ops@MEMBER.example)")
    p.add_argument("--min-nodes", type=int, help="autoscale floor (default 1)")
    p.add_argument("--max-nodes", type=int, help=f"autoscale ceiling (default max(NODES, {DEFAULT_MAX_NODES}))")
    p.add_argument("--request-id", help="idempotency key (default req-MEMBER-<unix time>)")
    p.add_argument("--wait", type=float, metavar="SECONDS", help="wait up to SECONDS for a final status or a vote")
    p.set_defaults(handler=run_onboard)

    for decision in ("approve", "reject"):
        v = sub.add_parser(
            decision,
            help=f"{decision} a pending request as an active member (signed in Key Vault)",
            description=f"Sign a vote to {decision} REQUEST_ID with the governance key of the member named by "
            "--as ({member}-governance in Key Vault, ES256 over the canonical JSON of approver_id, decision, "
            "member_id and request_id) and post it to onboarding-approvals.",
        )
        v.add_argument("request_id", metavar="REQUEST_ID")
        v.add_argument("--as", dest="approver", required=True, metavar="MEMBER", help="the voting member")
        v.add_argument("--wait", type=float, default=15, metavar="SECONDS",
                       help="wait this long for a just-posted request to be taken in (default 15)")  # fmt: skip
        v.set_defaults(handler=run_vote, decision=decision)

    o = sub.add_parser(
        "offboard",
        help="take a member out (posts to offboarding-requests)",
        description="Post an offboarding request: the member leaves the network map, its scale set goes to "
        "zero and its keys are disabled (never deleted).",
    )
    o.add_argument("member", metavar="MEMBER")
    o.add_argument("--reason", required=True, help="why the member leaves (recorded on its record)")
    o.add_argument("--request-id", help="idempotency key (default off-MEMBER-<unix time>)")
    o.set_defaults(handler=run_offboard)

    m = sub.add_parser("members", help="list members and where their onboarding stands",
                       description="List every member with its status, the reason of its last change and its "
                       "onboarding steps.")  # fmt: skip
    m.add_argument("--json", action="store_true", help="print the member records as JSON")
    m.set_defaults(handler=run_members)

    r = sub.add_parser("rejections", help="list messages refused as bad input, newest first",
                       description="List the messages that were rejected (bad JSON, schema violations, bad "
                       "signatures, votes for unknown or closed requests, ...) with the queue, the field and "
                       "the rule.")  # fmt: skip
    r.add_argument("--limit", type=int, default=20, help="show at most this many (default 20)")
    r.add_argument("--json", action="store_true", help="print them as JSON")
    r.set_defaults(handler=run_rejections)

    rp = sub.add_parser("replay-poison", help="put poison messages back on their queues",
                        description="Move every message of <queue>-poison back to <queue>. Every step is "
                        "idempotent, so a failed onboarding resumes where it stopped.")  # fmt: skip
    rp.add_argument("--queue", choices=WATCHED_QUEUES, help="only this queue (default all)")
    rp.set_defaults(handler=run_replay)


def _platform() -> Platform:
    return Platform(settings())


def _check(model: Any, body: dict[str, Any]) -> str:
    raw = json.dumps(body, separators=(",", ":"))
    parsed = parse(model, raw)
    if isinstance(parsed, Rejection):
        raise UsageError(parsed.message)
    return raw


def run_onboard(args: argparse.Namespace) -> int:
    member_arg(args.member)
    body: dict[str, Any] = {
        "request_id": args.request_id or f"req-{args.member}-{int(time.time())}",
        "member_id": args.member,
        "legal_name": args.legal_name,
        "region": args.region,
        "node_count": args.nodes,
        "contact_email": args.email or f"ops@{args.member}.example",
    }
    if args.min_nodes is not None or args.max_nodes is not None:
        body["scale"] = {
            "min_nodes": args.min_nodes or 1,
            "max_nodes": args.max_nodes or max(args.nodes, DEFAULT_MAX_NODES),
        }
    raw = _check(OnboardingRequest, body)
    platform = _platform()
    platform.queues.send(ob.REQUESTS, raw)
    print(f"posted {body['request_id']} for {args.member} to {ob.REQUESTS}")
    if args.wait:
        return _wait(platform, args.member, body["request_id"], args.wait)
    return 0


def _wait(platform: Platform, member_id: str, request_id: str, seconds: float) -> int:
    deadline, last = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        doc = platform.state.read(member_path(member_id))
        record = doc.body if doc and doc.body.get("request_id") == request_id else None
        status = record.get("status") if record else "queued"
        steps = ",".join(record.get("steps") or {}) if record else ""
        now = (status, steps)
        if now != last:
            print(f"  {member_id}: {status}" + (f" (steps done: {steps})" if steps else ""), file=sys.stderr)
            last = now
        if record is None:
            refused = [r for r in list_rejections(platform.state) if r.get("request_id") == request_id]
            if refused:
                raise CommandError(f"{request_id} was rejected: {refused[0]['reason']}: {refused[0]['message']}")
        if status in FINAL or status == "pending_approval":
            return 0 if status in ("active", "pending_approval") else 1
        time.sleep(0.5)
    raise CommandError(f"{member_id} is still {last[0] if last else 'queued'} after {seconds:g} s; is the stack up?")


def run_vote(args: argparse.Namespace) -> int:
    if not re.fullmatch(REQUEST_ID_PATTERN, args.request_id):
        raise UsageError(f"REQUEST_ID {args.request_id!r} must match {REQUEST_ID_PATTERN}")
    member_arg(args.approver, "--as")
    platform = _platform()
    deadline = time.monotonic() + args.wait
    index = platform.state.read(request_path(args.request_id))
    if index is None and args.wait > 0:
        print(f"  waiting up to {args.wait:g} s for {args.request_id} to be taken in", file=sys.stderr)
    while index is None and time.monotonic() < deadline:  # just posted: intake may not have run yet
        time.sleep(0.5)
        index = platform.state.read(request_path(args.request_id))
    if index is None or index.body.get("kind") != "onboarding":
        raise UsageError(f"REQUEST_ID {args.request_id}: no onboarding request with that id has been taken in")
    member_id = str(index.body["member_id"])
    payload = approval_payload(
        approver_id=args.approver, decision=args.decision, member_id=member_id, request_id=args.request_id
    )
    name = key_name(member_arg(args.approver, "--as"), "governance")
    key = platform.keys.get_key(name)
    if key is None:
        raise CommandError(f"{args.approver} has no governance key ({name}) in Key Vault: is it an active member?")
    signature = b64u(platform.keys.sign(key.kid, digest(payload)))
    raw = _check(Approval, {**payload, "signature": signature})
    platform.queues.send(ob.APPROVALS, raw)
    print(f"posted {args.approver}'s {args.decision} of {member_id} ({args.request_id}), signed with {key.kid}")
    return 0


def run_offboard(args: argparse.Namespace) -> int:
    member_arg(args.member)
    body = {
        "request_id": args.request_id or f"off-{args.member}-{int(time.time())}",
        "member_id": args.member,
        "reason": args.reason,
    }
    raw = _check(OffboardingRequest, body)
    _platform().queues.send(ob.OFFBOARDING, raw)
    print(f"posted {body['request_id']}: offboard {args.member}")
    return 0


def run_members(args: argparse.Namespace) -> int:
    state = _platform().state
    records = [doc.body for p in state.list_paths("members/") if (doc := state.read(p)) is not None]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    if not records:
        print("(no members yet)")
        return 0
    print(f"{'member':16} {'status':17} {'request':22} {'steps':32} reason")
    for r in records:
        steps = ",".join(r.get("steps") or {}) or "-"
        print(f"{r['member_id']:16} {r['status']:17} {r['request_id']:22} {steps:32} {r.get('status_reason', '')}")
    return 0


def run_rejections(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    platform = _platform()
    found = list_rejections(platform.state, args.limit)
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
    platform = _platform()
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
