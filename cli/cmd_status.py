"""`consortium status [--json | --watch S]`: this member's status as its own deployment sees it.

The object is ``Platform.status()`` (``shared.services.status``), the same the status HTTP function
and the dashboard serve: the member's own status, scale set, keys and coordinator, and the consortium
as it verified it (chain head, members, proposals with who signed them, a fork, the others' heads).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from cli.main import UsageError, platform_for
from shared.bootstrap import Platform


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="this member's status and the consortium as it sees it",
        description="Show this member's status (outside, pending, active, rejected, left, removed, failed), its "
        "coordinator (holder, fencing token, lease expiry), its scale set, where each of its Corda identities runs, "
        "its keys (version, age, rotation stage), "
        "the chain it verified (version, head, genesis, a fork if one was seen), the members, the proposals with "
        "who signed them, the other members' heads, the poison queue counts, recent scale changes, key "
        "rotations, node health and repairs.",
    )
    p.add_argument("--json", action="store_true", help="print the status model as one JSON object")
    p.add_argument("--watch", type=float, metavar="SECONDS",
                   help="a live view: redraw every 2 s for SECONDS (0: until Ctrl-C)")  # fmt: skip
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    platform = platform_for(args)
    if args.watch is not None:
        if args.json:
            raise UsageError("--watch draws the view for people; use --json without it")
        if args.watch < 0:
            raise UsageError("--watch must be 0 (until Ctrl-C) or more seconds")
        return watch(platform, args.watch)
    model = platform.status()
    if args.json:
        print(json.dumps(model, indent=2))
        return 0
    print(render(model))
    return 0


def watch(platform: Platform, seconds: float, every: float = 2.0) -> int:
    """Redraw the view in place on a terminal; elsewhere (a pipe, the demo) print one frame per refresh."""
    deadline = time.monotonic() + seconds if seconds else None
    terminal = sys.stdout.isatty()
    while True:
        try:
            frame = render(platform.status())
            problem = ""
        except Exception as e:  # storage away for a moment: keep watching, say so
            frame, problem = "", f"could not read the status: {e}"
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        header = (
            f"{platform.member_id}'s status at {stamp} UTC (every {every:g} s{'' if deadline else ', Ctrl-C to stop'})"
        )
        if terminal:
            sys.stdout.write("\x1b[H\x1b[2J")  # home, clear
        print(f"{header}\n{problem or frame}", flush=True)
        if deadline is not None and time.monotonic() + every > deadline:
            return 0
        time.sleep(every)
        if not terminal:
            print()


def _identities(view: dict[str, Any]) -> list[str]:
    """One line per Corda identity: where it runs (its lease's holder), its tenure, its scale-in protection."""
    if view.get("error"):
        return [f"identities   {view['error']}"]
    lines = []
    for i in view.get("running") or []:
        where = f"on {i['holder']}" if i["holder"] else "runs nowhere (no instance holds its lease)"
        extra = f"  tenure {i['fencing_token']}" + ("  protected from scale-in" if i["protected"] else "")
        lines.append(f"identity     {i['identity']}  {where}" + (extra if i["holder"] else ""))
    return lines or ["identities   none leased yet (no identity keeper runs for this member)"]


def render(model: dict[str, Any]) -> str:
    c, chain, s = model["coordinator"], model["chain"], model["scale_set"]
    version = "-" if chain["version"] is None else chain["version"]
    lines = [
        f"member       {model['member_id']}  {model['status']}"
        + (f"  ({model['status_reason']})" if model.get("status_reason") else ""),
        f"coordinator  {c['holder'] or '(none)'}  token {c['fencing_token']}  expires {c['expires_at'] or '-'}",
        f"scale set    {s['id'] or '(none yet)'}  {s['capacity']} node(s), {s['min_nodes']}..{s['max_nodes']}",
        *_identities(model.get("identities") or {}),
        "keys         " + (", ".join(_key(name.removeprefix(f"{model['member_id']}-"), k)
                                     for name, k in model["keys"].items()) or "(none yet)"),
        f"chain        version {version}  head {(chain['head'] or '-')[:16]}  genesis {(chain['genesis'] or '-')[:16]}",
    ]  # fmt: skip
    fork = chain.get("fork")
    if fork:
        culprits = ", ".join(fork.get("signed_both") or []) or "unknown"
        lines.append(f"FORK         version {fork.get('version')}: signed both: {culprits} "
                     "(no further change is applied until an operator acts)")  # fmt: skip
    lines.append("")
    lines.append(f"{'member':16} {'status':8} {'head':>5}  endpoint")
    if not model["members"]:
        lines.append("(no verified version yet)")
    peers = model.get("peers") or {}
    for m in model["members"]:
        seen = peers.get(m["member_id"], {}).get("version")
        head = version if m["member_id"] == model["member_id"] else ("-" if seen is None else seen)
        lines.append(f"{m['member_id']:16} {m['status']:8} {head:>5}  {m['endpoint']}")
    open_ = [p for p in model["proposals"] if p["status"] == "open"]
    lines.append("")
    lines.append("proposals" + ("" if open_ else ": none open"))
    for p in open_:
        signed = ", ".join(p["signed_by"]) or "nobody yet"
        change = f"{p['change']['kind']} {p['change']['member_id']}"
        lines.append(f"  {p['proposal_id']:44} {change:22} signed by {signed}")
    lines.append("")
    poisoned = {q: n for q, n in model["poison"].items() if n}
    poison = ", ".join(f"{q} {n}" for q, n in poisoned.items()) if poisoned else "none"
    lines.append(f"poison       {poison}" + ("  (consortium replay-poison puts them back)" if poisoned else ""))
    scaling = model.get("autoscale") or {}
    recent = scaling.get("recent") or []
    lines.append("")
    lines.append(f"scale changes (last tick {scaling.get('updated_at') or 'never'})" + ("" if recent else ": none yet"))
    for change in recent[:5]:
        lines.append(f"  {change['at']}  {change['member_id']:16} {change['reason']:12} {change['message']}")
    for name, last in sorted((scaling.get("last") or {}).items()):
        error = last.get("forecast_error")
        if error:
            share = f" ({error['relative']:.0%} of load)" if error.get("relative") is not None else ""
            lines.append(f"  forecast {name}: error {error['nodes']:.1f} nodes{share}, {error['standing']}")
    health = model.get("health") or {}
    repairs = health.get("recent") or []
    nodes = model.get("nodes") or {}
    lines.append("")
    lines.append(f"node health (last check {nodes.get('checked_at') or health.get('updated_at') or 'never'})")
    if nodes.get("checked_at"):
        buckets = ("healthy", "suspect", "unhealthy", "repairing", "starting")
        lines.append("  " + "  ".join(f"{nodes.get(b, 0)} {b}" for b in buckets))
    lines.append("node repairs" + ("" if repairs else ": none yet"))
    for repair in repairs[:5]:
        node = f"{repair['member_id']}/{repair['instance']}"
        lines.append(f"  {repair['at']}  {node:20} {repair['action']:8} {repair['reason']:21} {repair['message']}")
    rotation = model.get("rotation") or {}
    last = rotation.get("last_run") or {}
    none_yet = "" if rotation.get("recent") else ": none yet"
    lines.append("")
    lines.append(f"key rotation (last run {last.get('at') or 'never'}){none_yet}")
    for action in (rotation.get("recent") or [])[:5]:
        lines.append(f"  {action['at']}  {action['action']:8} {action['message']}")
    return "\n".join(lines)


def _key(name: str, key: dict[str, Any]) -> str:
    """``tls@1a2b3c4d 12d``, with the rotation stage when one is under way."""
    version = (key.get("version") or "?")[:8]
    age = f" {key['age_days']:.0f}d" if key.get("age_days") is not None else ""
    stage = f" [{key['stage']}]" if key.get("stage") not in (None, "current") else ""
    return f"{name}@{version}{age}{stage}"
