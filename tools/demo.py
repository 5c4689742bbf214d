"""`make demo`: start the four deployments, play the consortium's story on them, stop them.

The same stack as `make up` (``tools.stack.up_members``): bank-a..bank-d, one local Functions host
each, each on its own storage account, vault and scale set; bank-a and bank-b found the consortium.
Each act says what it shows, does it as the members' operators would (the ``consortium`` command,
shown as typed), waits on a condition read back from each member's OWN deployment (its
``/api/status``, the object the dashboard and ``status --json`` serve) with a timeout that stops the
demo and says what did not happen, and shows the live view: one line per deployment.

The stack is stopped at the end, also after a failure or Ctrl-C, unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509

from tools import azurite, member_settings, stack
from tools.ceremony import LEGAL_NAMES  # one name per member: the founders' genesis lists these
from tools.harness import hosts
from tools.harness.wait import wait_until

MEMBERS = azurite.MEMBER_IDS
CLI = os.path.join(os.path.dirname(sys.executable), "consortium")
#: bank-b's second deployment in act 4: same member, same storage account, its own host and port.
STANDBY_MEMBER, STANDBY_DEPLOYMENT, STANDBY_PORT = "bank-b", "bank-b-standby", 7081
T = TypeVar("T")


class DemoError(RuntimeError):
    """An act did not get where it should; the message says what was awaited and what was seen."""


@dataclass(frozen=True)
class Act:
    title: str
    what: str
    run: Callable[[], None]


def say(text: str = "") -> None:
    print(text, flush=True)


# --- reading each member's own deployment ---------------------------------------------------------


def ports() -> dict[str, list[int]]:
    """Where each member's deployment(s) answer: its host from `make up`, then its standby if one runs."""
    found: dict[str, list[int]] = {m: [member_settings.http_port(m)] for m in MEMBERS}
    if STANDBY_PROC:
        found[STANDBY_MEMBER].append(STANDBY_PORT)
    return found


def status(member: str) -> dict[str, Any]:
    """``GET /api/status`` of the member's own deployment (any of its hosts that answers)."""
    return hosts.api_status(member, ports()[member], error=DemoError)


def statuses() -> dict[str, dict[str, Any]]:
    return {m: status(m) for m in MEMBERS}


def wait_for(what: str, check: Callable[[], T | None], timeout: float, seen: Callable[[], str] | None = None) -> T:
    """Poll ``check`` every half second until it returns something; a DemoError after ``timeout`` (a host
    restarting for a moment, a DemoError from ``status``, only counts as not yet)."""
    return wait_until(what, check, timeout, ignoring=(DemoError,), seen=seen, error=DemoError)


def short(value: str | None, n: int = 12) -> str:
    return (value or "-")[:n]


def live_view(note: str = "") -> None:
    """One line per deployment, as each reads itself and the consortium."""
    say(f"  {'deployment':10} {'status':9} {'chain':>5} {'head':12} {'nodes':>5} {'open proposals':15} coordinator")
    for member in MEMBERS:
        s = status(member)
        chain, c = s["chain"], s["coordinator"]
        opened = sum(1 for p in s["proposals"] if p["status"] == "open")
        version = "-" if chain["version"] is None else f"v{chain['version']}"
        coordinator = f"{c['holder'] or '(none)'} token {c['fencing_token']}"
        fork = "  FORK" if chain.get("fork") else ""
        say(f"  {member:10} {s['status']:9} {version:>5} {short(chain['head']):12} {s['scale_set']['capacity']:>5} "
            f"{opened:<15} {coordinator}{fork}")  # fmt: skip
    if note:
        say(f"  ({note})")


def consortium(member: str, *argv: str, check: bool = True) -> str:
    """Run the `consortium` command as ``member``'s operator, showing it as typed and what it printed."""
    say(f"  $ consortium --member {member} {' '.join(quote(a) for a in argv)}")
    # our own console script with an argument list, no shell
    done = subprocess.run([CLI, "--member", member, *argv], capture_output=True, text=True, timeout=180)  # nosec B603
    for line in (done.stdout + done.stderr).splitlines():
        say(f"    {line}")
    if check and done.returncode != 0:
        raise DemoError(f"`consortium --member {member} {' '.join(argv)}` exited {done.returncode}")
    return done.stdout


def quote(arg: str) -> str:
    return f'"{arg}"' if any(c in arg for c in " ,") else arg


def versions() -> dict[str, int | None]:
    return {m: status(m)["chain"]["version"] for m in MEMBERS}


# --- act 1: founding ------------------------------------------------------------------------------


def founding() -> None:
    genesis = json.loads((stack.StackPaths().local / "genesis.json").read_text())
    say(f"  the founders' ceremony ran before the hosts started: genesis {genesis['hash']}")
    say("  (signed by bank-a and bank-b in their own vaults; every deployment was started with this hash)")
    for entry in genesis["genesis"]["members"]:
        if entry.get("corda_root"):
            root = x509.load_der_x509_certificate(base64.b64decode(entry["corda_root"]))
            names = root.extensions.get_extension_for_class(x509.NameConstraints).value.permitted_subtrees or []
            say(f"  {entry['member_id']}'s own Corda root: {root.subject.rfc4514_string()}, its key in its own vault, "
                f"vouching only for {', '.join(n.value.rfc4514_string() for n in names)}")  # fmt: skip
    consortium("bank-a", "chain")
    for founder in ("bank-a", "bank-b"):
        consortium(founder, "join", "--legal-name", LEGAL_NAMES[founder], "--wait", "90")
    wait_for("both founders active in their own deployments",
             lambda: all(status(f)["status"] == "active" for f in ("bank-a", "bank-b")), 60)  # fmt: skip
    live_view("bank-c and bank-d are deployed but outside: they follow the founders' chain, version 0")


# --- act 2: a bank joins by vote ------------------------------------------------------------------


def open_admission(member: str, voters: tuple[str, ...]) -> str:
    def found() -> str | None:
        ids = []
        for voter in voters:
            p = [p for p in status(voter)["proposals"] if p["status"] == "open" and p["change"]["member_id"] == member]
            if not p:
                return None
            ids.append(p[0]["proposal_id"])
        return ids[0] if len(set(ids)) == 1 else None

    return wait_for(f"the admission of {member} to appear in {', '.join(voters)}'s deployments", found, 60)


def admitted(member: str, version: int) -> None:
    def done() -> bool:
        every = statuses()
        return all(s["chain"]["version"] == version for s in every.values()) and every[member]["status"] == "active"

    wait_for(f"every deployment to adopt version {version} and {member} to be active", done, 90,
             lambda: json.dumps({m: (s["status"], s["chain"]["version"]) for m, s in statuses().items()}))  # fmt: skip


def join_by_vote(member: str, voters: tuple[str, ...], version: int, node_count: int = 2) -> None:
    consortium(member, "join", "--legal-name", LEGAL_NAMES[member], "--node-count", str(node_count))
    proposal = open_admission(member, voters)
    say(f"  {member}'s deployment proposed its admission; {' and '.join(voters)} see it in their own deployments:")
    consortium(voters[0], "proposals")
    for voter in voters:
        consortium(voter, "approve", proposal)
    admitted(member, version)
    joined = status(member)
    say(f"  {member} is active in version {version}, its own scale set at {joined['scale_set']['capacity']} node(s) "
        f"(asked for {node_count})")  # fmt: skip


def bank_joins() -> None:
    join_by_vote("bank-c", ("bank-a", "bank-b"), 1)
    consortium("bank-c", "chain")
    say("\n  bank-d asks too; the members are now three, so two approvals are a majority: bank-b and bank-c")
    join_by_vote("bank-d", ("bank-b", "bank-c"), 2)
    live_view()


# --- act 3: load --------------------------------------------------------------------------------


def capacities() -> dict[str, int]:
    return {m: int(status(m)["scale_set"]["capacity"]) for m in MEMBERS}


def watch_capacity(member: str, until: Callable[[int], bool], timeout: float) -> int:
    started, shown = time.monotonic(), ""

    def look() -> int | None:
        nonlocal shown
        s = status(member)
        capacity = int(s["scale_set"]["capacity"])
        last = s["autoscale"]["last"].get(f"vmss-{member}", {})
        line = f"{member}: {capacity} node(s) | autoscale: {last.get('reason', '-')}: {last.get('message', '')}"
        if line != shown:
            say(f"  +{time.monotonic() - started:5.1f}s  {line}")
            shown = line
        return capacity if until(capacity) else None

    return wait_for(f"{member}'s autoscale to act", look, timeout)


def load() -> None:
    before = capacities()
    say("  a node serves 850 transactions a minute at the target; bank-c's two nodes are offered 4,000")
    consortium("bank-c", "load", "--tpm", "4000")
    high = watch_capacity("bank-c", lambda c: c >= 5, 150)
    say(f"  bank-c's own coordinator scaled bank-c's own scale set to {high}")
    consortium("bank-c", "load", "--tpm", "800")
    say("  the load falls back; the autoscaler waits its scale-in window before giving nodes back")
    watch_capacity("bank-c", lambda c: c < high, 240)
    after = capacities()
    others = {m: (before[m], after[m]) for m in MEMBERS if m != "bank-c"}
    say("  the others' scale sets meanwhile: " + ", ".join(f"{m} {b} -> {a}" for m, (b, a) in others.items()))
    say("  (each deployment's autoscale acts only on its own scale set: any change there is its own idle nodes)")


# --- act 4: the coordinator dies ------------------------------------------------------------------

STANDBY_PROC: list[subprocess.Popen[bytes]] = []


def start_standby() -> None:
    member, port = STANDBY_MEMBER, STANDBY_PORT
    if azurite.port_in_use(port):
        raise DemoError(f"port {port} for {member}'s second deployment is taken")
    paths = stack.StackPaths()
    settings_file = member_settings.settings_path(member)
    values, _ = member_settings.read(settings_file)
    env = {**os.environ, **values, "CONSORTIUM_DEPLOYMENT": STANDBY_DEPLOYMENT,
           member_settings.HOST_ID_SETTING: f"consortium-{STANDBY_DEPLOYMENT}"}  # fmt: skip
    log, ready = paths.logs / f"funchost-{STANDBY_DEPLOYMENT}.log", paths.local / f"{STANDBY_DEPLOYMENT}.ready"
    ready.unlink(missing_ok=True)
    STANDBY_PROC.append(hosts.spawn(hosts.funchost(ready=ready, settings=settings_file, port=port), log, env=env,
                                    new_session=True))  # fmt: skip
    hosts.await_ready(STANDBY_PROC[-1], ready, f"{member}'s second deployment", log, 90, error=DemoError)


def stop_standby() -> None:
    while STANDBY_PROC:
        proc = STANDBY_PROC.pop()
        if proc.poll() is None:
            azurite.stop_pid(proc.pid, timeout=60)


def coordinator_dies() -> None:
    member = STANDBY_MEMBER
    say(f"  {member} runs a second deployment ({STANDBY_DEPLOYMENT}, port {STANDBY_PORT}) on the same "
        "storage account: both compete for one coordinator lease")  # fmt: skip
    start_standby()
    before = status(member)["coordinator"]
    say(f"  coordinator of {member}: {before['holder']} with fencing token {before['fencing_token']}")
    record = stack.status().get(f"funchost:{member}", {})
    if not str(before["holder"]).startswith(f"{member}-local/") or not record.get("running"):
        raise DemoError(f"expected {member}'s first deployment to hold the lease, saw {before['holder']}")
    pid = int(record["pid"])
    say(f"  $ kill -9 {pid}    # {member}'s first deployment, the coordinator, dies")
    started = time.monotonic()
    os.killpg(pid, signal.SIGKILL)

    def taken_over() -> dict[str, Any] | None:
        c = status(member)["coordinator"]
        moved = c["holder"] and c["holder"] != before["holder"]
        return dict(c) if moved and int(c["fencing_token"]) > int(before["fencing_token"]) else None

    after = wait_for(f"{STANDBY_DEPLOYMENT} to take over {member}'s coordinator lease", taken_over, 60)
    say(f"  +{time.monotonic() - started:.1f}s  {after['holder']} took over with fencing token "
        f"{after['fencing_token']} (the lease lasts 15 s here); a write under token {before['fencing_token']} "
        "is now refused")  # fmt: skip
    say("  the operator restarts the dead deployment: `make up` starts only what is missing")
    record = stack.up_members(quiet=True)
    say(
        f"  {member}-local runs again on port {record[f'funchost:{member}']['port']} "
        f"(pid {record[f'funchost:{member}']['pid']})"
    )
    wait_for(f"{member}'s first deployment to answer again", lambda: status(member)["status"] == "active", 60)
    c = status(member)["coordinator"]
    say(f"  coordinator of {member} is still {c['holder']} (token {c['fencing_token']}): the restarted one waits")
    live_view()


# --- act 5: keys rotate ---------------------------------------------------------------------------


def keys_rotate() -> None:
    before = status("bank-a")["keys"]
    others = {m: status(m)["keys"] for m in MEMBERS if m != "bank-a"}
    start = versions()["bank-a"] or 0
    consortium("bank-a", "rotate-keys", "--force", "--wait", "90")

    def adopted() -> bool:
        return all(v == start + 1 for v in versions().values())

    wait_for(f"every deployment to adopt version {start + 1}, bank-a's new governance key", adopted, 90,
             lambda: json.dumps(versions()))  # fmt: skip
    after = status("bank-a")["keys"]
    for name, key in after.items():
        old = before.get(name, {}).get("version")
        changed = "new version" if key["version"] != old else "unchanged"
        say(f"  {name:20} v{short(old, 8)} -> v{short(key['version'], 8)}  {changed}, stage {key.get('stage')}")
    say(
        "  in bank-a's own vault only: the other members' keys did not change"
        if all(status(m)["keys"] == k for m, k in others.items())
        else "  NOTE: another member's keys changed"
    )
    consortium("bank-b", "chain")
    say(f"  the new governance key went through version {start + 1} of the chain (a `rotate` of bank-a, signed")
    say("  with bank-a's old and new key and by a majority, which signed it without asking their operators);")
    say("  the old versions stay enabled for the overlap (60 s here, days in Azure), then are disabled, never")
    say("  deleted. The TLS key's new version is published in bank-a's own keys.json, signed with the governance key.")


# --- act 6: a bank leaves -------------------------------------------------------------------------


def bank_leaves() -> None:
    start = versions()["bank-a"] or 0
    consortium("bank-c", "leave", "--reason", "bank-c leaves the consortium")

    def gone() -> bool:
        every = statuses()
        return all(s["chain"]["version"] == start + 1 for s in every.values()) and all(
            "bank-c" not in {m["member_id"] for m in s["members"]} for s in every.values()
        )

    wait_for(f"every deployment to adopt version {start + 1} without bank-c", gone, 90,
             lambda: json.dumps({m: s["chain"]["version"] for m, s in statuses().items()}))  # fmt: skip
    from cli.context import settings
    from shared.bootstrap import Platform

    vault = Platform(settings("bank-c")).keys

    def retired() -> dict[str, Any] | None:
        s = status("bank-c")
        if s["status"] != "left" or s["scale_set"]["capacity"] != 0:
            return None
        return s if not any(v.enabled for name in s["keys"] for v in vault.list_versions(name)) else None

    left = wait_for("bank-c's deployment to scale its own scale set to 0 and disable its own keys", retired, 60)
    consortium("bank-a", "chain")
    shown = [f"{name} disabled ({len(vault.list_versions(name))} version(s) kept)" for name in left["keys"]]
    say(f"  bank-c is {left['status']}, its scale set at {left['scale_set']['capacity']}; in its own vault: "
        + "; ".join(shown))  # fmt: skip
    live_view()


# --- act 7: a forged document ---------------------------------------------------------------------


def forged_document() -> None:
    from cli.context import settings
    from shared.adapters.published_blobs import PublicBlobs
    from shared.bootstrap import Platform
    from shared.decisions import chain
    from shared.decisions import consortium as rules
    from shared.services.consortium import HEAD, chain_path

    honest = ("bank-a", "bank-b")
    before = {m: len(rejections(m)) for m in honest}
    start = versions()
    say("  bank-d's operator turns dishonest. It can write only its own storage and sign only with its own")
    say("  vault's keys. It writes the next version, a removal of bank-a signed by bank-d alone, into its own")
    say("  published container, and a head (signed with its real key) announcing it:")
    platform = Platform(settings("bank-d"))
    base = platform.consortium.head()
    if base is None:
        raise DemoError("bank-d holds no verified chain")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    forged = chain.unsigned_next(base, {"kind": "remove", "member_id": "bank-a", "proposal_id": "prop-coup"},
                                 issued_at=stamp)  # fmt: skip
    entry = base.document.member("bank-d")
    if entry is None:
        raise DemoError("bank-d is not in its own chain")
    kid = entry.governance_key.kid
    sig = chain.b64u(platform.keys.sign(kid, bytes.fromhex(chain.document_hash(forged))))
    forged = chain.with_signatures(forged, [{"member_id": "bank-d", "kid": kid, "sig": sig}])
    public = PublicBlobs.from_settings(platform.settings.values)
    public.put(chain_path(forged["version"]), chain.published_bytes(forged))
    current = public.get(HEAD)
    if current is None:
        raise DemoError("bank-d has no published head")
    head = rules.parse_head(current)
    head = {
        **head,
        "chain": {"version": forged["version"], "hash": chain.document_hash(forged)},
        "seq": head["seq"] + 1,
    }
    head["sig"] = chain.b64u(platform.keys.sign(kid, hashlib.sha256(rules.head_signing_bytes(head)).digest()))
    public.put(HEAD, chain.canonical(head))
    say(f"    wrote consortium-public/{chain_path(forged['version'])} (remove bank-a, signed by bank-d) and head.json")

    def refused() -> bool:
        return all(len(rejections(m)) > before[m] for m in honest)

    wait_for("bank-a's and bank-b's deployments to refuse bank-d's forged version", refused, 60)
    consortium("bank-a", "rejections", "--limit", "3")
    say("  then a head signed by a key bank-d minted in its vault, one its chain entry does not list:")
    minted = platform.keys.create_key("bank-d-forged-head", "EC", tags={"member_id": "bank-d"})
    head = {**head, "kid": minted.kid, "seq": head["seq"] + 1}
    head["sig"] = chain.b64u(platform.keys.sign(minted.kid, hashlib.sha256(rules.head_signing_bytes(head)).digest()))
    public.put(HEAD, chain.canonical(head))
    seen = {m: len(rejections(m)) for m in honest}
    wait_for("bank-a's and bank-b's deployments to refuse the forged head",
             lambda: all(len(rejections(m)) > seen[m] for m in honest), 60)  # fmt: skip
    consortium("bank-b", "rejections", "--limit", "1")
    after = versions()
    still = all(after[m] == start[m] for m in honest)
    members = {m["member_id"] for m in status("bank-a")["members"]}
    shown = ", ".join(f"{m} v{after[m]}" for m in honest)
    say(f"  nothing changed: chain versions {shown}{' (as before)' if still else ' (CHANGED)'}; "
        f"bank-a still a member: {'yes' if 'bank-a' in members else 'NO'}")  # fmt: skip
    live_view()


def rejections(member: str) -> list[dict[str, Any]]:
    from cli.context import settings
    from shared.bootstrap import Platform
    from shared.services.records import list_rejections

    found = list_rejections(Platform(settings(member)).state, 200)
    return [r for r in found if "bank-d" in str(r.get("message", ""))]


ACTS = [
    Act(
        "Founding",
        "bank-a and bank-b signed one genesis; each posts its onboarding request to its own deployment and goes active",
        founding,
    ),
    Act(
        "A bank joins by vote",
        "bank-c asks its own deployment to join; its admission reaches the members, "
        "who approve it in theirs; every deployment adopts the new version",
        bank_joins,
    ),
    Act(
        "Load rises and falls",
        "bank-c's nodes are offered a surge of load that then falls back; bank-c's own autoscale "
        "acts on bank-c's own scale set, nobody else's",
        load,
    ),
    Act(
        "A coordinator dies",
        "two deployments of bank-b share its storage; the coordinator is killed and "
        "the other takes over with a higher fencing token",
        coordinator_dies,
    ),
    Act(
        "Keys rotate",
        "bank-a's operator rotates bank-a's keys now, in bank-a's own vault; the new governance key "
        "goes through the chain",
        keys_rotate,
    ),
    Act(
        "A bank leaves",
        "bank-c leaves: every member's chain drops it, its scale set goes to 0 and its keys "
        "are disabled (never deleted)",
        bank_leaves,
    ),
    Act(
        "A forged document is refused",
        "a dishonest member publishes a forged version and head; every honest "
        "deployment refuses them, records why, and nothing changes",
        forged_document,
    ),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description="Play the consortium's story on the local stack.")
    parser.add_argument("--keep", action="store_true", help="leave the stack running (stop it with `make down`)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if any(v.get("running") for v in stack.status().values()):
        say("demo: the local stack already runs; `make down` first, so the story starts from a fresh genesis")
        return 1
    say("== Starting the four deployments (what `make up` starts), on a fresh consortium")
    local = stack.StackPaths().local
    for folder in ("azurite", "emulator"):
        shutil.rmtree(local / folder, ignore_errors=True)
    (local / "genesis.json").unlink(missing_ok=True)
    try:
        stack.up_members()
        say("  each deployment's dashboard: " + ", ".join(f"http://localhost:{member_settings.http_port(m)}/api/dashboard"
                                                         for m in MEMBERS))  # fmt: skip
        for number, act in enumerate(ACTS, start=1):
            say(f"\n== {number}. {act.title}: {act.what}")
            act_started = time.monotonic()
            act.run()
            say(f"  [{act.title.lower()}: {time.monotonic() - act_started:.0f} s]")
        say(f"\nThe story finished in {time.monotonic() - started:.0f} s.")
        return 0
    except (DemoError, stack.StackError) as e:
        say(f"\ndemo failed: {e}")
        say(f"  (logs in {Path('.local/logs')})")
        return 1
    except KeyboardInterrupt:
        say("\ndemo: interrupted")
        return 130
    finally:
        stop_standby()
        if not args.keep:
            say("\n== Stopping the local stack")
            stack.down()


if __name__ == "__main__":
    sys.exit(main())
