"""This member's part in the membership: join, proposals, approve / reject, leave, remove.

Each command posts one of the contract's messages to a queue of the member's own deployment, after
checking it with the same schema the functions use (a typo is exit 2 naming the field before
anything is posted) and, where it names a proposal or a member, against what this member's own
verified chain and stored view say (an unknown proposal or a stranger is exit 2, not a queue
message that would only be rejected later). The deployment signs with its own governance key in its
own vault; the CLI never signs anything.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from cli.main import CommandError, UsageError, member_arg, platform_for
from shared.bootstrap import Platform
from shared.decisions.onboarding import Status
from shared.messages import DEFAULT_MAX_NODES, Decision, OffboardingRequest, OnboardingRequest, Rejection, parse
from shared.services import onboarding as ob
from shared.services.records import list_rejections, member_path

#: Statuses that end `join --wait`: the member is in, or it was refused.
REFUSED = (Status.REJECTED.value, Status.FAILED.value)


def register(sub: Any) -> None:
    j = sub.add_parser(
        "join",
        help="ask for this member to join (posts to its own onboarding-requests)",
        description="Post this member's onboarding request to its own deployment. The deployment creates the "
        "member's keys in its own vault and its scale set (at capacity 0), proposes the admission to the members "
        "and turns active once a verified version admits it. A founder named in the genesis is active at once. "
        "The request id is the idempotency key: posting the same request again changes nothing.",
    )
    j.add_argument("--legal-name", required=True, help='Corda X.500 name, e.g. "O=Bank C, L=Amsterdam, C=NL"')
    j.add_argument("--node-count", type=int, default=2, help="Corda nodes once admitted (default 2)")
    j.add_argument("--region", default="westeurope", help="Azure region of its nodes (default westeurope)")
    j.add_argument("--contact-email", help="operations contact (default ops@MEMBER.example)")
    j.add_argument("--min-nodes", type=int, help="autoscale floor (default 1)")
    j.add_argument("--max-nodes", type=int, help=f"autoscale ceiling (default max(NODE_COUNT, {DEFAULT_MAX_NODES}))")
    j.add_argument("--request-id", help="idempotency key (default req-MEMBER-<unix time>)")
    j.add_argument("--wait", type=float, metavar="SECONDS",
                   help="wait up to SECONDS until the member is active or refused, printing its progress")  # fmt: skip
    j.set_defaults(handler=run_join)

    p = sub.add_parser(
        "proposals",
        help="the open proposals this member knows",
        description="List the open proposals this member knows (its own and those the other members publish), "
        "each as in `status`'s proposals: the change, the version it applies to, who has signed (approved) it "
        "and this member's own decision.",
    )
    p.add_argument("--all", action="store_true", help="also the closed ones (done, rejected, expired)")
    p.add_argument("--json", action="store_true", help="print the proposals as JSON")
    p.set_defaults(handler=run_proposals)

    for decision in ("approve", "reject"):
        d = sub.add_parser(
            decision,
            help=f"{decision} a proposal as this member (posts to its own onboarding-approvals)",
            description=f"Post this member's decision to {decision} PROPOSAL_ID to its own deployment, which signs "
            "it with the member's governance key in its own vault and publishes it. The same decision twice "
            "changes nothing; a proposal this member does not know, or one that is closed, is refused (exit 2).",
        )
        d.add_argument("proposal_id", metavar="PROPOSAL_ID")
        d.set_defaults(handler=run_decision, decision=decision)

    le = sub.add_parser(
        "leave",
        help="propose that this member leaves (posts to its own offboarding-requests)",
        description="Propose a version without this member. Once the members agree on it, its deployment scales "
        "its own scale set to zero and disables (never deletes) its own keys.",
    )
    le.add_argument("--reason", default="the member leaves", help="why (published with the proposal)")
    le.add_argument("--request-id", help="idempotency key (default off-MEMBER-<unix time>)")
    le.set_defaults(handler=run_leave)

    rm = sub.add_parser(
        "remove",
        help="propose to remove another member (posts to this member's own offboarding-requests)",
        description="Propose a version without MEMBER, approved by this member. It needs the approval of more "
        "than half of the other members (the member removed does not count).",
    )
    rm.add_argument("target", metavar="MEMBER", help="the member to remove, e.g. bank-d")
    rm.add_argument("--reason", default="removed by the members", help="why (published with the proposal)")
    rm.add_argument("--request-id", help="idempotency key (default off-MEMBER-<unix time>)")
    rm.set_defaults(handler=run_remove)


def checked(model: Any, body: dict[str, Any]) -> str:
    """The message as posted, once the functions' own schema accepts it; else exit 2 naming the field."""
    raw = json.dumps(body, separators=(",", ":"))
    parsed = parse(model, raw)
    if isinstance(parsed, Rejection):
        raise UsageError(parsed.message)
    return raw


def own_record(platform: Platform) -> dict[str, Any] | None:
    doc = platform.state.read(member_path(platform.member_id))
    return doc.body if doc else None


def run_join(args: argparse.Namespace) -> int:
    if args.wait is not None and args.wait < 0:
        raise UsageError("--wait must be 0 or more seconds")
    platform = platform_for(args)
    me = platform.member_id
    body: dict[str, Any] = {
        "request_id": args.request_id or f"req-{me}-{int(time.time())}",
        "member_id": me,
        "legal_name": args.legal_name,
        "region": args.region,
        "node_count": args.node_count,
        "contact_email": args.contact_email or f"ops@{me}.example",
    }
    if args.min_nodes is not None or args.max_nodes is not None:
        body["scale"] = {
            "min_nodes": args.min_nodes or 1,
            "max_nodes": args.max_nodes or max(args.node_count, DEFAULT_MAX_NODES),
        }
    raw = checked(OnboardingRequest, body)
    platform.queues.send(ob.REQUESTS, raw)
    print(f"posted {body['request_id']}: {me} asks to join ({ob.REQUESTS})")
    if args.wait:
        return wait_joined(platform, body["request_id"], args.wait)
    return 0


def _progress(platform: Platform, record: dict[str, Any] | None) -> str:
    """One line on where the request stands: the status, the steps done, the admission's signers."""
    if record is None:
        return "queued"
    line = str(record.get("status"))
    steps = ",".join(record.get("steps") or {})
    if steps:
        line += f" (steps done: {steps})"
    proposal_id = record.get("proposal_id")
    if proposal_id and record.get("status") == Status.PENDING.value:
        found = next((p for p in platform.consortium_view()["proposals"] if p["proposal_id"] == proposal_id), None)
        if found is not None:
            signed = ", ".join(found["signed_by"]) or "nobody yet"
            line += f"; {proposal_id} {found['status']}, approved by {signed}"
    return line


def wait_joined(platform: Platform, request_id: str, seconds: float) -> int:
    """Follow the request until the member is active (0) or refused (1; 2 if the request itself was bad)."""
    me = platform.member_id
    deadline, last = time.monotonic() + seconds, ""
    while True:
        found = own_record(platform)
        record = found if found and found.get("request_id") == request_id else None
        line = _progress(platform, record)
        if line != last:
            print(f"  {me}: {line}", file=sys.stderr)
            last = line
        status = record.get("status") if record else None
        if status == Status.ACTIVE.value:
            version = (platform.consortium_view()["chain"] or {}).get("version")
            print(f"{me} is active (chain version {version})")
            return 0
        if record is not None and status in REFUSED:
            why = record.get("status_reason")
            raise CommandError(f"{me} is {status}" + (f": {why}" if why else ""))
        if record is None:
            refused = [r for r in list_rejections(platform.state) if r.get("request_id") == request_id]
            if refused:
                raise UsageError(f"{request_id} was rejected: {refused[0]['reason']}: {refused[0]['message']}")
        if time.monotonic() >= deadline:
            raise CommandError(f"{me} is still {last} after {seconds:g} s: is its deployment running (make up)?")
        time.sleep(0.5)


def _proposals(platform: Platform, every: bool = False) -> list[dict[str, Any]]:
    proposals = platform.consortium_view()["proposals"]
    return proposals if every else [p for p in proposals if p["status"] == "open"]


def run_proposals(args: argparse.Namespace) -> int:
    found = _proposals(platform_for(args), args.all)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    if not found:
        print("(no open proposals)" if not args.all else "(no proposals)")
        return 0
    print(f"{'proposal':44} {'change':22} {'base':>4}  {'status':8} {'mine':8} signed by")
    for p in found:
        change = f"{p['change']['kind']} {p['change']['member_id']}"
        base = "-" if p["base_version"] is None else p["base_version"]
        signed = ", ".join(p["signed_by"]) or "-"
        print(f"{p['proposal_id']:44} {change:22} {base:>4}  {p['status']:8} {p.get('decision') or '-':8} {signed}")
    return 0


def run_decision(args: argparse.Namespace) -> int:
    raw = checked(Decision, {"proposal_id": args.proposal_id, "decision": args.decision})
    platform = platform_for(args)
    known = {p["proposal_id"]: p for p in platform.consortium_view()["proposals"]}.get(args.proposal_id)
    if known is None:
        raise UsageError(
            f"{args.proposal_id} is not a proposal {platform.member_id} knows (see `consortium proposals`)"
        )
    change = f"{known['change']['kind']} {known['change']['member_id']}"
    mine = known.get("decision")
    if mine == args.decision:
        print(f"{platform.member_id} already decided {mine} on {args.proposal_id} ({change}); nothing changes")
        return 0
    if mine is not None:
        raise UsageError(f"{platform.member_id} already decided {mine} on {args.proposal_id}; a decision is final")
    if known["status"] != "open":
        raise UsageError(f"{args.proposal_id} ({change}) is {known['status']}, not open")
    platform.queues.send(ob.APPROVALS, raw)
    print(f"posted {platform.member_id}'s {args.decision} of {args.proposal_id} ({change})")
    return 0


def _members(platform: Platform) -> list[str]:
    return [m["member_id"] for m in platform.consortium_view()["members"]]


def run_leave(args: argparse.Namespace) -> int:
    platform = platform_for(args)
    me = platform.member_id
    body = {"request_id": args.request_id or f"off-{me}-{int(time.time())}", "reason": args.reason}
    raw = checked(OffboardingRequest, body)
    if me not in _members(platform):
        raise UsageError(f"{me} is not in its verified chain: there is nothing to leave")
    platform.queues.send(ob.OFFBOARDING, raw)
    print(f"posted {body['request_id']}: {me} proposes to leave ({args.reason})")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    target = member_arg(args.target)
    platform = platform_for(args)
    me = platform.member_id
    if target == me:
        raise UsageError(f"MEMBER {target} is this member: use `consortium leave`")
    body = {"request_id": args.request_id or f"off-{target}-{int(time.time())}", "reason": args.reason,
            "member_id": target}  # fmt: skip
    raw = checked(OffboardingRequest, body)
    members = _members(platform)
    if me not in members:
        raise UsageError(f"{me} is not in its verified chain: only a member proposes a removal")
    if target not in members:
        raise UsageError(f"MEMBER {target} is not in {me}'s verified chain")
    platform.queues.send(ob.OFFBOARDING, raw)
    print(f"posted {body['request_id']}: {me} proposes to remove {target} ({args.reason})")
    return 0
