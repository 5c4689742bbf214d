"""`consortium load --tpm N` and `consortium fault ...`: drive the local emulator's load model.

Both act on this member's own scale set (``vmss-{member}``), through the emulator named by the
member's own settings; `fault service` affects the emulator's services for everyone.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.emulator_admin import call
from cli.main import UsageError, platform_for
from shared.naming import scale_set_name


def register(sub: Any) -> None:
    p = sub.add_parser(
        "load",
        help="set the simulated load of this member's scale set (local emulator)",
        description="Set the offered load, in transactions per minute, of this member's own scale set in the "
        "local Azure emulator. CPU and served transactions follow from it and the nodes that serve.",
    )
    p.add_argument("--tpm", type=float, required=True, help="offered transactions per minute (0 or more)")
    p.set_defaults(handler=run_load)

    f = sub.add_parser(
        "fault",
        help="inject a fault into the local emulator",
        description="Inject failures into the local Azure emulator: throttling or server errors for a service, "
        "a failed node, or missing metrics. `consortium fault clear` removes service faults.",
    )
    kinds = f.add_subparsers(title="faults", metavar="FAULT", required=True)
    svc = kinds.add_parser("service", help="429 or 5xx answers from compute, metrics or keyvault")
    svc.add_argument("service", choices=["compute", "metrics", "keyvault"])
    svc.add_argument("--status", type=int, default=429, help="429 or a 5xx code (default 429)")
    svc.add_argument("--count", type=int, default=5, help="how many requests fail (default 5)")
    svc.add_argument("--retry-after", type=int, default=2, help="Retry-After seconds with 429 (default 2)")
    svc.add_argument("--latency-ms", type=int, default=0, help="added latency per request")
    svc.set_defaults(handler=run_service_fault)
    node = kinds.add_parser("node", help="make one of this member's nodes fail")
    node.add_argument("instance", metavar="INSTANCE", help="instance id, e.g. 0")
    node.add_argument("--kind", choices=["crashed", "broken", "hung", "port_closed", "none"], default="crashed",
                      help="crashed: ARM unhealthy, a restart fixes it; broken: a reimage does; hung: ARM healthy but "
                      "its Corda ports accept nothing, a restart fixes it; port_closed: its ports refuse, a reimage "
                      "fixes it; none: heal it")  # fmt: skip
    node.add_argument("--port", type=int, action="append", dest="ports", metavar="PORT",
                      help="with port_closed: only this Corda port (repeatable; default all)")  # fmt: skip
    node.set_defaults(handler=run_node_fault)
    miss = kinds.add_parser("metrics-missing", help="make this member's metrics go missing (or come back)")
    miss.add_argument("--back", action="store_true", help="bring the metrics back")
    miss.set_defaults(handler=run_missing)
    clear = kinds.add_parser("clear", help="remove every service fault")
    clear.set_defaults(handler=run_clear)


def run_load(args: argparse.Namespace) -> int:
    if args.tpm < 0:
        raise UsageError("--tpm must be 0 or more")
    platform = platform_for(args)
    member = platform.member_id
    result = call(platform.settings, "PUT", f"/_admin/load/{scale_set_name(member)}", {"tpm": args.tpm})
    print(f"{member}: offered load {result['tpm']:g} transactions per minute")
    return 0


def run_service_fault(args: argparse.Namespace) -> int:
    if not (args.status == 429 or 500 <= args.status <= 599):
        raise UsageError("--status must be 429 or a 5xx code")
    spec = {"status": args.status, "count": args.count, "retry_after": args.retry_after, "latency_ms": args.latency_ms}
    print(json.dumps(call(platform_for(args).settings, "PUT", f"/_admin/faults/{args.service}", spec)))
    return 0


def run_node_fault(args: argparse.Namespace) -> int:
    fault = None if args.kind == "none" else args.kind
    if args.ports and fault != "port_closed":
        raise UsageError("--port is only for --kind port_closed")
    platform = platform_for(args)
    member = platform.member_id
    body: dict[str, object] = {"fault": fault, **({"ports": args.ports} if args.ports else {})}
    call(platform.settings, "PUT", f"/_admin/instances/{scale_set_name(member)}/{args.instance}", body)
    print(f"{member}: instance {args.instance} is now {args.kind if fault else 'healthy'}")
    return 0


def run_missing(args: argparse.Namespace) -> int:
    platform = platform_for(args)
    member = platform.member_id
    call(platform.settings, "PUT", f"/_admin/metrics/{scale_set_name(member)}", {"missing": not args.back})
    print(f"{member}: metrics {'are back' if args.back else 'now go missing'}")
    return 0


def run_clear(args: argparse.Namespace) -> int:
    call(platform_for(args).settings, "DELETE", "/_admin/faults")
    print("service faults cleared")
    return 0
