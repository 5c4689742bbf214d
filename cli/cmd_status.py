"""`consortium status [--json | --watch S]`: the coordinator, the map version, members, poison counts."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from cli.context import settings
from cli.main import UsageError
from shared.bootstrap import Platform
from shared.services.status import build_status


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="show the consortium's state",
        description="Show the coordinator (holder, fencing token, lease expiry), the network map version, "
        "every member with its scale set and keys (version, age, rotation stage), the poison queue counts, "
        "recent scale changes, key rotations, node health and repairs.",
    )
    p.add_argument("--json", action="store_true", help="print the status model as one JSON object")
    p.add_argument("--watch", type=float, metavar="SECONDS",
                   help="a live view: redraw every 2 s for SECONDS (0: until Ctrl-C)")  # fmt: skip
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    platform = Platform(settings())
    if args.watch is not None:
        if args.json:
            raise UsageError("--watch draws the view for people; use --json without it")
        if args.watch < 0:
            raise UsageError("--watch must be 0 (until Ctrl-C) or more seconds")
        return watch(platform, args.watch)
    model = build_status(platform.state, platform.leases, platform.queues.count)
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
            frame = render(build_status(platform.state, platform.leases, platform.queues.count))
            problem = ""
        except Exception as e:  # storage away for a moment: keep watching, say so
            frame, problem = "", f"could not read the status: {e}"
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        header = f"consortium status at {stamp} UTC (every {every:g} s{'' if deadline else ', Ctrl-C to stop'})"
        if terminal:
            sys.stdout.write("\x1b[H\x1b[2J")  # home, clear
        print(f"{header}\n{problem or frame}", flush=True)
        if deadline is not None and time.monotonic() + every > deadline:
            return 0
        time.sleep(every)
        if not terminal:
            print()


def render(model: dict[str, Any]) -> str:
    c = model["coordinator"]
    lines = [
        f"coordinator  {c['holder'] or '(none)'}  token {c['fencing_token']}  expires {c['expires_at'] or '-'}",
        f"network map  version {model['network_map_version']}",
        "",
        f"{'member':16} {'status':17} {'nodes':>5} {'min':>4} {'max':>4}  keys",
    ]
    if not model["members"]:
        lines.append("(no members yet)")
    for m in model["members"]:
        s = m["scale_set"]
        keys = ", ".join(_key(name.removeprefix(f"{m['member_id']}-"), k) for name, k in m["keys"].items())
        row = f"{m['member_id']:16} {m['status']:17} {s['capacity']:5} {s['min_nodes']:4} {s['max_nodes']:4}"
        lines.append(f"{row}  {keys or '-'}")
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
    lines.append("")
    lines.append(f"node health (last check {health.get('updated_at') or 'never'})")
    for m in model["members"]:
        n = m.get("nodes") or {}
        if n.get("checked_at"):
            counts = "  ".join(
                f"{n.get(b, 0)} {b}" for b in ("healthy", "suspect", "unhealthy", "repairing", "starting")
            )
            lines.append(f"  {m['member_id']:16} {counts}")
    lines.append("node repairs" + ("" if repairs else ": none yet"))
    for repair in repairs[:5]:
        node = f"{repair['member_id']}/{repair['instance']}"
        lines.append(f"  {repair['at']}  {node:20} {repair['action']:8} {repair['reason']:21} {repair['message']}")
    rotation = model.get("rotation") or {}
    signer = rotation.get("network_map_signer")
    lines.append("")
    lines.append(f"map signer   {_key('network-map-signer', signer) if signer else '(not rotated yet)'}")
    last = rotation.get("last_run") or {}
    none_yet = "" if rotation.get("recent") else ": none yet"
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
