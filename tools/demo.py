"""`make demo`: start the local stack, play the consortium scenario, show what happens, stop the stack.

The scenario is a list of acts; each says what it is about to show, does it through the same
interfaces people use (queues, the CLI, HTTP), and shows the result. The stack is always stopped at
the end, also after a failure or Ctrl-C, unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
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
    # the local host over http://localhost: a fixed scheme and host
    with urllib.request.urlopen(f"{HOST}{path}", timeout=10) as response:  # noqa: S310  # nosec B310
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


STANDBY: dict[str, subprocess.Popen[bytes]] = {}
CLI = os.path.join(os.path.dirname(sys.executable), "consortium")
FOUNDERS = {"bank-a": "O=Bank A, L=London, C=GB", "bank-b": "O=Bank B, L=Paris, C=FR"}


def consortium(*argv: str, check: bool = True) -> int:
    """Run the `consortium` CLI as an operator would, showing the command and its output."""
    say(f"  $ consortium {' '.join(argv)}")
    # our own console script with an argument list, no shell
    done = subprocess.run([CLI, *argv], capture_output=True, text=True, timeout=180)  # nosec B603
    for line in (done.stdout + done.stderr).splitlines():
        say(f"    {line}")
    if check and done.returncode != 0:
        raise stack.StackError(f"`consortium {' '.join(argv)}` exited {done.returncode}")
    return done.returncode


def found_the_consortium() -> None:
    for member, legal_name in FOUNDERS.items():
        consortium("onboard", member, "--legal-name", legal_name, "--request-id", f"req-{member}-001", "--wait", "90")


def newcomer_voted_in() -> None:
    consortium("onboard", "bank-c", "--legal-name", "O=Bank C, L=Amsterdam, C=NL", "--request-id", "req-bank-c-001",
               "--wait", "60")  # fmt: skip
    for founder in FOUNDERS:
        consortium("approve", "req-bank-c-001", "--as", founder)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        members = {m["member_id"]: m for m in consortium_status()["members"]}
        if members.get("bank-c", {}).get("status") in ("active", "failed", "rejected"):
            break
        time.sleep(0.5)
    consortium("members")


def show_the_network_map() -> None:
    from cli.context import settings
    from shared.bootstrap import Platform
    from shared.services.network_map import MAP_PATH, verify_map

    platform = Platform(settings())
    doc = platform.state.read(MAP_PATH)
    if doc is None:
        raise stack.StackError("no network map was published")
    current = doc.body
    names = ", ".join(f"{m['member_id']} ({m['legal_name']})" for m in current["members"])
    say(f"  network map version {current['version']}: {names}")
    verified = verify_map(current, platform.keys)
    say(f"  signed by {current['signing_key_id']}: signature {'verifies' if verified else 'DOES NOT VERIFY'}")
    consortium("status")


def consortium_status() -> dict[str, Any]:
    from cli.context import settings
    from shared.bootstrap import Platform

    return Platform(settings()).status()


def wait_for_coordinator(not_holder: str | None, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        coordinator = consortium_status()["coordinator"]
        if coordinator["holder"] and coordinator["holder"] != not_holder:
            return dict(coordinator)
        time.sleep(0.5)
    raise stack.StackError(f"no coordinator took over within {timeout:.0f} s")


def start_second_deployment() -> None:
    log = stack.StackPaths().logs / "funchost-standby.log"
    env = {**os.environ, "CONSORTIUM_DEPLOYMENT": "standby", "AzureFunctionsWebHost__hostid": "standby"}
    ready = stack.StackPaths().local / "standby.ready"
    ready.unlink(missing_ok=True)
    with open(log, "ab") as out:
        STANDBY["proc"] = subprocess.Popen(  # our own interpreter and module, no shell  # nosec B603
            [sys.executable, "-m", "tools.funchost", "--port", "7081", "--ready-file", str(ready)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while not ready.exists():
        if STANDBY["proc"].poll() is not None or time.monotonic() > deadline:
            raise stack.StackError(f"the second deployment did not start; see {log}")
        time.sleep(0.1)
    coordinator = wait_for_coordinator(None, 30)
    say("  deployments 'local' (port 7071) and 'standby' (port 7081) share the consortium storage")
    say(f"  coordinator: {coordinator['holder']} with fencing token {coordinator['fencing_token']}")


def kill_the_coordinator() -> None:
    before = consortium_status()["coordinator"]
    holder = str(before["holder"])
    victim = STANDBY["proc"].pid if holder.startswith("standby/") else int(stack.status()["funchost"]["pid"])
    say(f"  kill -9 the coordinator's host process (pid {victim}, {holder})")
    started = time.monotonic()
    os.killpg(victim, signal.SIGKILL)
    after = wait_for_coordinator(holder, 60)
    say(f"  {after['holder']} took over with fencing token {after['fencing_token']} "
        f"after {time.monotonic() - started:.1f} s (lease {consortium_lease_seconds()} s)")  # fmt: skip
    say("  the old holder's token is now fenced: any write it still attempts is refused")


def consortium_lease_seconds() -> int:
    from cli.context import settings

    return settings().integer("LEASE_SECONDS")


def stop_second_deployment() -> None:
    proc = STANDBY.pop("proc", None)
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=150)


def watch_scaling(member: str, until: Callable[[dict[str, Any]], bool], timeout: float) -> None:
    """A live line per change: capacity, serving nodes, the autoscaler's last reason for the member."""
    from cli.context import settings
    from cli.emulator_admin import call

    name, deadline, shown, started = f"vmss-{member}", time.monotonic() + timeout, "", time.monotonic()
    while time.monotonic() < deadline:
        model = consortium_status()
        member_view = next(m for m in model["members"] if m["member_id"] == member)
        last = model["autoscale"]["last"].get(name, {})
        load = call(settings(), "GET", f"/_admin/load/{name}")
        line = (f"{member}: {member_view['scale_set']['capacity']} node(s), {load['serving']} serving, "
                f"{load['tpm']:.0f} tpm offered | {last.get('reason', '-')}: {last.get('message', '')}")  # fmt: skip
        if line != shown:
            say(f"  +{time.monotonic() - started:5.1f}s  {line}")
            shown = line
        if until(member_view):
            return
        time.sleep(1)
    raise stack.StackError(f"{member} did not get there within {timeout:.0f} s")


def load_rises_and_falls() -> None:
    consortium("load", "bank-a", "--tpm", "1200")
    watch_scaling("bank-a", lambda m: m["scale_set"]["capacity"] == 2, 30)
    say("  a surge: bank-a's load quadruples")
    consortium("load", "bank-a", "--tpm", "4800")
    watch_scaling("bank-a", lambda m: m["scale_set"]["capacity"] >= 6, 150)
    say("  the surge is over: load drops back within the cooldown of the scale-out, a burst that came and went;")
    say("  the autoscaler waits out its longer scale-in window for bursty load before giving nodes back")
    consortium("load", "bank-a", "--tpm", "600")
    watch_scaling("bank-a", lambda m: m["scale_set"]["capacity"] < 6, 240)


def keys_rotate() -> None:
    from cli.context import settings
    from shared.bootstrap import Platform
    from shared.services.network_map import MAP_PATH, NodeTrust

    platform = Platform(settings())

    def current_map() -> dict[str, Any]:
        doc = platform.state.read(MAP_PATH)
        if doc is None:
            raise stack.StackError("no network map was published")
        return doc.body

    before = current_map()
    signer = platform.keys.get_key("network-map-signer", before["signing_key_id"].rsplit("/", 1)[-1])
    if signer is None:
        raise stack.StackError("the map's signing key is not in Key Vault")
    node = NodeTrust({signer.kid: signer.public_jwk})
    say(f"  a Corda node trusts only the signer it was installed with: v{signer.version[:8]}")
    node.accept(before)
    consortium("rotate-keys", "--force", "--wait", "90")
    overlap = current_map()
    announced = (overlap.get("next_signing_key") or {}).get("kid", "")
    bank_c = next(m for m in overlap["members"] if m["member_id"] == "bank-c")["keys"]["tls"]
    say(f"  map v{overlap['version']}: bank-c's TLS key v{bank_c['version'][:8]} is published beside "
        f"v{(bank_c.get('previous') or {}).get('version', '?')[:8]}; the outgoing signer signs it and announces "
        f"v{announced.rsplit('/', 1)[-1][:8]}")  # fmt: skip
    say(f"  the node takes map v{overlap['version']}: {'yes' if node.accept(overlap) else 'NO'}")
    overlap_seconds = platform.key_policies["tls"].overlap.total_seconds()
    say(f"  the overlap lasts {overlap_seconds:.0f} s here (days in Azure); then the old versions retire")
    deadline = time.monotonic() + overlap_seconds + 90
    while time.monotonic() < deadline:
        after = current_map()
        if after["signing_key_id"] == announced and "next_signing_key" not in after:
            break
        time.sleep(2)
    else:
        raise stack.StackError("the old versions did not retire after the overlap")
    say(f"  map v{after['version']} is signed by the new signer; the node takes it: "
        f"{'yes' if node.accept(after) else 'NO'} (it learnt the key from the map it trusted)")  # fmt: skip
    old = platform.keys.get_key("network-map-signer", signer.version)
    state = "still enabled" if old and old.enabled else "disabled, kept (never deleted)"
    say(f"  the old signer v{signer.version[:8]} is {state} in Key Vault")
    consortium("status")


def live_view() -> None:
    say("  (on a terminal `consortium status --watch 0` redraws in place; here, one frame per refresh)")
    consortium("status", "--watch", "4")
    say("  the same model as a page: http://localhost:7071/api/dashboard (make up, then open it)")


ACTS = [
    Act("The function app, indexed by the local host", show_functions),
    Act("A liveness probe through the HTTP trigger", probe_liveness),
    Act("bank-a and bank-b found the consortium (founders are admitted without votes)", found_the_consortium),
    Act("bank-c asks to join; both founders vote, signing in Key Vault; bank-c goes active", newcomer_voted_in),
    Act("The signed network map that Corda nodes read", show_the_network_map),
    Act("Load rises and falls: the coordinator scales bank-a from Monitor metrics", load_rises_and_falls),
    Act("A second deployment joins; one coordinator is elected through a blob lease", start_second_deployment),
    Act("The coordinator dies; the other deployment takes over when its lease expires", kill_the_coordinator),
    Act("Keys rotate in Key Vault with an overlap; nodes follow the map's signer to its new key", keys_rotate),
    Act("The live view: the status model the dashboard and `status --json` serve, redrawn", live_view),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description="Play the consortium scenario on the local stack.")
    parser.add_argument(
        "--keep", action="store_true", help="leave the stack running afterwards (stop it with `make down`)"
    )
    args = parser.parse_args(argv)
    say("== Starting the local stack")
    try:
        if not any(v.get("running") for v in stack.status().values()):
            say("  nothing runs yet: the scenario plays on a fresh consortium (local Azurite and emulator data reset)")
            paths = stack.StackPaths()
            for folder in ("azurite", "emulator"):
                shutil.rmtree(paths.local / folder, ignore_errors=True)
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
        stop_second_deployment()
        if not args.keep:
            say("\n== Stopping the local stack")
            stack.down()


if __name__ == "__main__":
    sys.exit(main())
