"""`consortium chain` and `consortium members`: the membership as this member's own deployment verified it.

Both read the chain from the member's own storage through ``Consortium.verified()``, which checks
every version from the genesis hash the deployment was given: nothing is printed that did not verify.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.main import platform_for
from shared.bootstrap import Platform


def register(sub: Any) -> None:
    c = sub.add_parser(
        "chain",
        help="the membership chain this member has verified",
        description="Print every version of the membership chain this member's deployment holds and has "
        "verified from its genesis hash: the change each version made and who signed it. With --json: "
        '{"genesis": "<hash>", "versions": [every document from version 0, whole, with signatures]}.',
    )
    c.add_argument("--json", action="store_true", help="print the genesis hash and every document as JSON")
    c.set_defaults(handler=run_chain)

    m = sub.add_parser(
        "members",
        help="the members of the consortium, as the verified chain lists them",
        description="List the members of the newest version this member has verified (id, legal name, the "
        "endpoint of their published container), and this member's own status.",
    )
    m.add_argument("--json", action="store_true", help="print the members as JSON")
    m.set_defaults(handler=run_members)


def chain_document(platform: Platform) -> dict[str, Any]:
    """The contract's ``chain --json`` object, from the member's own verified chain."""
    trusted = platform.consortium.verified()
    genesis = trusted[0].hash if trusted else (platform.consortium.genesis or None)
    return {"genesis": genesis, "versions": [dict(t.raw) for t in trusted]}


def run_chain(args: argparse.Namespace) -> int:
    platform = platform_for(args)
    document = chain_document(platform)
    if args.json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
        return 0
    print(f"genesis {document['genesis'] or '(not given)'}")
    if not document["versions"]:
        print("(no verified version yet)")
        return 0
    for trusted in platform.consortium.verified():
        change = trusted.document.change
        subject = "" if change.kind.value == "genesis" else f" {change.member_id}"
        signers = ", ".join(s["member_id"] for s in trusted.raw.get("signatures") or [])
        print(f"v{trusted.version:<4} {trusted.hash[:16]}  {change.kind.value + subject:22} "
              f"{trusted.document.issued_at}  signed by {signers}")  # fmt: skip
    return 0


def run_members(args: argparse.Namespace) -> int:
    platform = platform_for(args)
    members = platform.consortium_view()["members"]
    if args.json:
        print(json.dumps(members, indent=2, ensure_ascii=False))
        return 0
    if not members:
        print(f"(no verified version yet: {platform.member_id} knows no members)")
        return 0
    print(f"{'member':16} {'status':8} {'legal name':36} endpoint")
    for m in members:
        mark = " *" if m["member_id"] == platform.member_id else ""
        print(f"{m['member_id'] + mark:16} {m['status']:8} {m.get('legal_name') or '':36} {m['endpoint']}")
    return 0
