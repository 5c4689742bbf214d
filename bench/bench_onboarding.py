"""Admission latency on the local stack of five deployments, and what following 49 members costs when idle.

**Admission** (``admission_p50_seconds`` / ``admission_p99_seconds``). ``tools.stack.up_members`` starts
the one-deployment-per-member shape for bank-a..bank-e in a temporary folder on free ports (one
Azurite with an account per member, the emulator with each member's identity, vault and subscription
at its default timings, the founders' genesis ceremony, one local host of the real
``function_app.py`` per member). The founders bank-a and bank-b go active; bank-c then bank-d are
voted in (not measured); then bank-e is admitted by the four members ``ADMISSIONS`` times: 4 in and a
newcomer, so the consortium has 5 members when each admission is done. Between two admissions bank-e
leaves (a verified ``leave`` version) and asks again with a new request id. For each admission,
bank-a and bank-b approve through their own queues and once every member's deployment has read both
approvals, bank-c's approval (the third of the four: the one that completes the majority of version
N's members) is posted to bank-c's own queue. The clock runs from that post until every member's
deployment (bank-a..bank-e) holds the new version in its own storage, verified (each reads its own
``chain/`` path, polled every 50 ms) and bank-e's own record says ``active`` (its scale set at
``node_count``).

**Following when idle** (``idle_requests_per_minute_50_members``). One deployment follows 49 members
that change nothing: in an Azurite, 49 published containers each hold a valid genesis (50 members,
each signature a real ES256 over RFC 8785 bytes) and a head signed with its member's key; the
deployment (its own state and published container in its own account, the real adapters, keys in
memory) runs what the consortium timer runs on its coordinator (``Consortium.follow_closely``, then
``NodeInfoMirror.after_tick``) with the requests its storage clients send counted by the metering
hook (``shared/adapters/metering.py``). After warm-up ticks (the heads downloaded once), ``IDLE_TICKS``
timer runs one second apart are counted (``idle_requests_per_tick_50_members``), then one run of the
node-info mirror alone (``idle_mirror_requests_per_run_50_members``: the timer mirrors at most once a
``MIRROR_SECONDS``); the figure is requests per tick times the ticks a minute of
``CONSORTIUM_POLL_SCHEDULE`` as ``infra/`` sets it for Azure (``*/10 * * * * *``: 6), plus the
mirror's runs a minute times its requests, and
``idle_requests_per_minute_50_members_local_schedule`` the same at the local stack's schedule (every
second: 60). Not counted: the host's queue polling and the coordinator's lease renewals,
which do not depend on the number of members. ``idle_cost_usd_per_month_50_members`` is that rate for
a 30-day month at ``READ_PRICE_USD_PER_10K``: the Blob Storage hot tier's read-operation list price
(LRS, US East; every conditional GET is billed as a read, 304 or not).

Version 1's figures (``onboarding_p50_seconds``, ``onboarding_p99_seconds``,
``onboarding_storage_ops``, ``onboarding_latency_ratio_vs_floor``,
``onboarding_latency_ratio_bound_here``, ``onboarding_cpu_ms_per_round_trip``) measured 50 founders
onboarding at once on one shared deployment; no deployment onboards anyone but its own member any
more, so they mean nothing now and are no longer produced.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from shared.adapters import metering
from shared.adapters.blob_state import CONTAINER, BlobStateStore
from shared.adapters.published_blobs import PUBLIC_CONTAINER, PeerBlobs, PublicBlobs
from shared.adapters.storage import blob_service
from shared.decisions import chain
from shared.fakes.keys import FakeKeyStore
from shared.fakes.queues import FakeQueues
from shared.fakes.state import FakeStateStore
from shared.ports.clock import SystemClock
from shared.services import onboarding as ob
from shared.services.consortium import Consortium, Identity, TickOutcome, chain_path
from shared.services.node_infos import MIRROR_SECONDS, NodeInfoMirror
from shared.services.records import Events, Rejections, member_path
from tools import azurite, provision
from tools.ceremony import LEGAL_NAMES
from tools.harness.stack import LocalStack
from tools.harness.wait import wait_until

MEMBERS = ("bank-a", "bank-b", "bank-c", "bank-d", "bank-e")
NEWCOMER = "bank-e"
#: The approvers of bank-e: the first two approve ahead, the third completes the majority of 4.
AHEAD, COMPLETING = ("bank-a", "bank-b"), "bank-c"
ADMISSIONS = 10
PEERS = 49
IDLE_TICKS = 30
#: Where Azure's CONSORTIUM_POLL_SCHEDULE is set (the local one, every second, is in local.settings.sample.json).
BICEP = Path(__file__).resolve().parent.parent / "infra" / "modules" / "functionapp.bicep"
#: Azure Blob Storage, hot tier, LRS, US East: read operations, USD per 10,000 (the list price of
#: https://azure.microsoft.com/en-us/pricing/details/storage/blobs/ as transcribed on 2026-05-05).
READ_PRICE_USD_PER_10K = 0.0044
READ_PRICE_SOURCE = "Azure Blob hot tier LRS US East list price, read operations, as of 2026-05-05"
MINUTES_PER_MONTH = 30 * 24 * 60


def request(member: str, request_id: str) -> str:
    return json.dumps({
        "request_id": request_id, "member_id": member,
        "legal_name": LEGAL_NAMES.get(member) or f"O={member.title()}, L=Amsterdam, C=NL",  # a founder: its genesis
        "region": "westeurope", "node_count": 2, "contact_email": f"ops@{member}.example",
    })  # fmt: skip


def ticks_per_minute(schedule: str) -> float:
    """Ticks a minute of an NCRONTAB schedule whose seconds field is ``*/N`` (the rest ``*``)."""
    seconds, *rest = schedule.split()
    match = re.fullmatch(r"\*/(\d+)", seconds)
    if match is None or any(f != "*" for f in rest):
        raise ValueError(f"not an every-N-seconds schedule: {schedule!r}")
    return 60 / int(match.group(1))


def schedules() -> dict[str, str]:
    """CONSORTIUM_POLL_SCHEDULE locally and in Azure (as ``infra/`` sets it)."""
    local = json.loads((BICEP.parent.parent.parent / "local.settings.sample.json").read_text())["Values"]
    found = re.search(r"name: 'CONSORTIUM_POLL_SCHEDULE', value: '([^']+)'", BICEP.read_text())
    if found is None:
        raise ValueError(f"CONSORTIUM_POLL_SCHEDULE is not set in {BICEP.name}")
    return {"local": str(local["CONSORTIUM_POLL_SCHEDULE"]), "azure": found.group(1)}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _wait(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    return wait_until(what, check, timeout, every=0.2, error=RuntimeError)


class Stack:
    """The local stack of the bench (``tools.harness.stack``, five members, the emulator as ``make up``
    leaves it), read through each member's own deployment."""

    def __init__(self, root: Path) -> None:
        self.local = LocalStack.start(root, MEMBERS)
        self.paths, self.record = self.local.paths, self.local.record
        #: per admission: seconds to the first member's adoption, the last one's, and the newcomer active
        self.phases: list[tuple[float, float, float]] = []
        self.platforms = {m: self.local.platform(m) for m in MEMBERS}

    def send(self, member: str, queue: str, body: str | dict[str, Any]) -> None:
        self.platforms[member].queues.send(queue, body if isinstance(body, str) else json.dumps(body))

    def record_of(self, member: str) -> dict[str, Any]:
        doc = self.platforms[member].state.read(member_path(member))
        return doc.body if doc else {}

    def version(self, member: str) -> int:
        return len(self.platforms[member].state.list_paths("chain/")) - 1

    def knows(self, member: str, proposal_id: str) -> bool:
        return any(p["proposal_id"] == proposal_id for p in self.platforms[member].consortium_view()["proposals"])

    def signed_ahead(self, member: str, proposal_id: str, approvers: tuple[str, ...]) -> bool:
        return set(approvers) <= self.signed_by(member, proposal_id)

    def holds(self, member: str, version: int) -> bool:
        return self.platforms[member].state.read(chain_path(version)) is not None

    def is_active(self, member: str) -> bool:
        return self.record_of(member).get("status") == "active"

    def signed_by(self, member: str, proposal_id: str) -> set[str]:
        for p in self.platforms[member].consortium_view()["proposals"]:
            if p["proposal_id"] == proposal_id:
                return set(p["signed_by"])
        return set()

    def join(self, member: str, request_id: str) -> str:
        """Post ``member``'s request to its own queue; its proposal id once its deployment proposed."""
        self.send(member, ob.REQUESTS, request(member, request_id))

        def proposed() -> str | None:
            r = self.record_of(member)
            done = r.get("request_id") == request_id and "propose" in (r.get("steps") or {})
            return str(r["proposal_id"]) if done and r.get("proposal_id") else None

        return str(_wait(f"{member} proposes", proposed))

    def admit(self, member: str, request_id: str, approvers: tuple[str, ...], completing: str) -> float:
        """Admit ``member``; seconds from the completing approval's post to adoption everywhere and active."""
        voters = (*approvers, completing)
        pid = self.join(member, request_id)
        for m in voters:
            _wait(f"{m} knows {pid}", functools.partial(self.knows, m, pid))
        for m in approvers:
            self.send(m, ob.APPROVALS, {"proposal_id": pid, "decision": "approve"})
        members = [m for m in MEMBERS if m != member and self.record_of(m).get("status") == "active"]
        for m in [*members, member]:
            _wait(f"{m} sees the approvals ahead", functools.partial(self.signed_ahead, m, pid, approvers))
        target = self.version(completing) + 1
        started = time.monotonic()
        self.send(completing, ob.APPROVALS, {"proposal_id": pid, "decision": "approve"})
        pending = {*members, member}
        adopted: dict[str, float] = {}
        active = None
        while True:
            for m in list(pending):
                if self.platforms[m].state.read(chain_path(target)) is not None:
                    pending.discard(m)
                    adopted[m] = time.monotonic() - started
            if active is None and self.record_of(member).get("status") == "active":
                active = time.monotonic() - started
            if not pending and active is not None:
                elapsed = time.monotonic() - started
                break
            if time.monotonic() - started > 120:
                raise RuntimeError(f"admission of {member}: {sorted(pending)} had not adopted version {target}")
            time.sleep(0.05)
        for m in MEMBERS:  # the version each adopted verifies from the genesis it was given
            trusted = self.platforms[m].consortium.verified()
            if len(trusted) <= target or trusted[target].document.change.member_id != member:
                raise RuntimeError(f"{m}: version {target} does not verify as the admission of {member}")
        self.phases.append((min(adopted.values()), max(adopted.values()), active))
        return elapsed

    def leave(self, member: str, request_id: str) -> None:
        target = self.version(member) + 1
        self.send(member, ob.OFFBOARDING, {"request_id": request_id, "reason": "bench"})
        for m in MEMBERS:
            _wait(f"{m} adopts the leave", functools.partial(self.holds, m, target))
        _wait(f"{member} left", lambda: self.record_of(member).get("status") == "left")


def _admissions(root: Path) -> list[float]:
    s = Stack(root)
    try:
        for founder in ("bank-a", "bank-b"):
            s.send(founder, ob.REQUESTS, request(founder, f"req-{founder}-001"))
        for founder in ("bank-a", "bank-b"):
            _wait(f"{founder} active", functools.partial(s.is_active, founder))
        s.admit("bank-c", "req-bank-c-001", ("bank-a",), "bank-b")
        s.admit("bank-d", "req-bank-d-001", ("bank-a",), "bank-b")
        samples = []
        for i in range(ADMISSIONS):
            if i:
                s.leave(NEWCOMER, f"off-{NEWCOMER}-{i:03d}")
            samples.append(s.admit(NEWCOMER, f"req-{NEWCOMER}-{i + 1:03d}", AHEAD, COMPLETING))
            first, last, active = s.phases[-1]
            print(
                f"  admission {i + 1}: {samples[-1]:5.2f} s (first member adopted at {first:.2f} s, "
                f"the last at {last:.2f} s, {NEWCOMER} active at {active:.2f} s)",
                flush=True,
            )
        return samples
    finally:
        s.local.stop()


def _peer(
    member_id: str, keys: FakeKeyStore, endpoint: str, genesis: dict[str, Any], digest: str, values: dict[str, str]
) -> None:
    """One member that changes nothing: its genesis and its signed head in its published container."""
    clock = SystemClock()
    events = Events(FakeQueues(), clock)
    state = FakeStateStore()
    container = blob_service(values).get_container_client(endpoint.rsplit("/", 1)[-1])
    service = Consortium(
        identity=Identity(member_id, f"{member_id}-governance", endpoint), genesis=digest, state=state,
        public=PublicBlobs(container), peers=PeerBlobs({}, values), keys=keys, clock=clock, events=events,
        rejections=Rejections(state, events, clock),
    )  # fmt: skip
    service.pin_genesis(genesis)
    if service.publish_head() is None:
        raise RuntimeError(f"{member_id}: no head published")


def _idle(root: Path) -> tuple[float, int, dict[str, float]]:
    ports = azurite.free_ports(3)
    az, proc = azurite.start(root / "azurite", ports=(ports[0], ports[1], ports[2]))
    try:
        own = {"AzureWebJobsStorage": az.connection_string_for("banka"), "CONSORTIUM_PEER_READ_URLS": "{}"}
        others = {"AzureWebJobsStorage": az.connection_string_for("bankb")}
        provision.provision(own["AzureWebJobsStorage"])
        ids = [f"m-{i:02d}" for i in range(PEERS + 1)]
        keys = {m: FakeKeyStore() for m in ids}
        entries: list[dict[str, Any]] = []
        for m in ids:
            key = keys[m].create_key(f"{m}-governance", "EC", tags={})
            if m == ids[0]:
                endpoint = provision.public_container_url(az.blob_endpoint("banka"))
            else:
                endpoint = f"{az.blob_endpoint('bankb')}/{m}-public"
                blob_service(others).create_container(f"{m}-public")
            jwk = {k: str(key.public_jwk[k]) for k in ("kty", "crv", "x", "y")}
            entries.append({"member_id": m, "legal_name": f"O=Member {m[2:]}, L=London, C=GB",
                            "governance_key": {"kid": key.kid, "jwk": jwk}, "endpoint": endpoint})  # fmt: skip
        issued = "2026-11-28T00:00:00Z"
        unsigned = chain.unsigned_genesis("credit-consortium", entries, convener=ids[0], issued_at=issued)
        digest_hex = chain.document_hash(unsigned)
        signatures = []
        for e in entries:
            kid = e["governance_key"]["kid"]
            sig = chain.b64u(keys[e["member_id"]].sign(kid, bytes.fromhex(digest_hex)))
            signatures.append({"member_id": e["member_id"], "kid": kid, "sig": sig})
        genesis = chain.with_signatures(unsigned, signatures)
        # read as locally: each member's container with a read-only SAS scoped to it (Azure: the app's identity)
        own["CONSORTIUM_PEER_READ_URLS"] = json.dumps({
            e["member_id"]: e["endpoint"] + "?" + generate_container_sas(
                "bankb", e["endpoint"].rsplit("/", 1)[-1], account_key=azurite.ACCOUNT_KEY,
                permission=ContainerSasPermissions(read=True, list=True), expiry=datetime.now(UTC) + timedelta(hours=1))
            for e in entries[1:]
        })  # fmt: skip
        digest = chain.document_hash(genesis)
        for e in entries[1:]:
            _peer(e["member_id"], keys[e["member_id"]], e["endpoint"], genesis, digest, others)

        os.environ[metering.ENV] = str(root / "counts.json")
        try:
            clock = SystemClock()
            state = BlobStateStore(blob_service(own, **metering.hook("storage")).get_container_client(CONTAINER))
            events = Events(FakeQueues(), clock)
            me = ids[0]
            published = blob_service(own, **metering.hook("storage")).get_container_client(PUBLIC_CONTAINER)
            follower = Consortium(
                identity=Identity(me, f"{me}-governance", entries[0]["endpoint"]), genesis=digest, state=state,
                public=PublicBlobs(published),
                peers=PeerBlobs.from_settings(own), keys=keys[me], clock=clock, events=events,
                rejections=Rejections(state, events, clock),
            )  # fmt: skip
            follower.pin_genesis(genesis)
            mirror = NodeInfoMirror(me, follower.public, follower.peers, follower.rejections)

            def timer() -> None:  # what functions/consortium.py runs on each occurrence
                outcome = follower.follow_closely(lambda: True)
                mirror.after_tick(outcome, follower.head())

            for _ in range(3):  # warm-up: every head downloaded and stored once, our own head published
                timer()
                time.sleep(1)
            if len(follower.stored_heads()) != PEERS:
                raise RuntimeError(f"the follower believed {len(follower.stored_heads())} heads, not {PEERS}")
            with metering._lock:
                metering.COUNTS.clear()
                metering.DETAIL.clear()
            for _ in range(IDLE_TICKS):
                started = time.monotonic()
                timer()
                time.sleep(max(0.0, 1 - (time.monotonic() - started)))
            with metering._lock:
                total = sum(metering.COUNTS.values())
                detail = {k: v / IDLE_TICKS for k, v in metering.DETAIL.most_common()}
                metering.COUNTS.clear()
                metering.DETAIL.clear()
            mirror.last_at = None  # one run of the node-info mirror, as the timer makes once a minute
            if len(mirror.after_tick(TickOutcome(), follower.head())) != PEERS:
                raise RuntimeError("the mirror did not read every member")
            with metering._lock:
                mirrored = sum(metering.COUNTS.values())
        finally:
            metering.stop()
            os.environ.pop(metering.ENV, None)
        return total / IDLE_TICKS, mirrored, detail
    finally:
        azurite.stop_pid(proc.pid)
        with contextlib.suppress(Exception):
            proc.wait(timeout=10)


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        per_tick, per_mirror, detail = _idle(Path(tmp) / "idle")
    when = schedules()
    mirrors_per_minute = 60 / MIRROR_SECONDS
    per_minute = {
        where: per_tick * ticks_per_minute(schedule) + per_mirror * mirrors_per_minute
        for where, schedule in when.items()
    }
    cost = {where: n * MINUTES_PER_MONTH / 10_000 * READ_PRICE_USD_PER_10K for where, n in per_minute.items()}
    print(f"following {PEERS} members that change nothing: one deployment's consortium tick")
    print(f"{'figure':40} {'value':>10}")
    print(f"{'storage requests per tick':40} {per_tick:10.1f}")
    for what, n in list(detail.items())[:3]:
        print(f"{'  ' + what:40} {n:10.1f}")
    print(f"{'  ... and one conditional GET per member':40}")
    print(f"{'node-info mirror, requests per run':40} {per_mirror:10.1f}  (at most every {MIRROR_SECONDS:.0f} s)")
    for where, schedule in when.items():
        print(f"{'requests per minute, ' + where:40} {per_minute[where]:10.0f}  (CONSORTIUM_POLL_SCHEDULE {schedule})")
        print(f"{'USD per month (30 days), ' + where:40} {cost[where]:10.2f}")
    print(f"  at ${READ_PRICE_USD_PER_10K} per 10,000 reads ({READ_PRICE_SOURCE})")

    with tempfile.TemporaryDirectory() as tmp:
        print(f"\nadmissions of {NEWCOMER} by 4 members (5 when done), 5 local deployments on this machine")
        load_before = os.getloadavg()
        samples = _admissions(Path(tmp))
        load_after = os.getloadavg()
    print(f"{'load average (1 min) before / after':40} {load_before[0]:5.1f} / {load_after[0]:.1f}  "
          f"on {os.cpu_count()} core(s), other work included")  # fmt: skip
    p50, p99 = _percentile(samples, 0.5), _percentile(samples, 0.99)
    print(f"{'admission p50 (s)':40} {p50:10.2f}")
    print(f"{'admission p99 (s)':40} {p99:10.2f}  (goal <= 5 s; {len(samples)} admissions, "
          f"mean {statistics.mean(samples):.2f})")  # fmt: skip
    return {
        "admission_p50_seconds": round(p50, 3),
        "admission_p99_seconds": round(p99, 3),
        "idle_requests_per_tick_50_members": round(per_tick, 1),
        "idle_mirror_requests_per_run_50_members": round(per_mirror, 1),
        "idle_requests_per_minute_50_members": round(per_minute["azure"], 1),
        "idle_cost_usd_per_month_50_members": round(cost["azure"], 2),
        "idle_requests_per_minute_50_members_local_schedule": round(per_minute["local"], 1),
    }
