"""Key rotation at scale: the due keys of 1,000 members rotated on the local stack.

One Azurite and one emulator, started here on free ports; 1,000 active members seeded straight into
the state (three keys each in the emulator's Key Vault, a record, one network map), then the
rotator, as the coordinator, with its clock moved 91 days on: every member's TLS key is due (90 days).
The run is the real service through the real SDK clients: member leases, a new Key Vault version per
key, the records, one map publish, the ``key.rotated`` events. Figures:

- ``rotation_1000_members_seconds``: the run that rotates the 1,000 due keys (new versions created
  and published beside the old ones), wall clock;
- ``rotation_retire_1000_members_seconds``: the run after the overlap that retires the 1,000 old
  versions (out of the map, disabled);
- ``rotation_ops_per_key``: storage and Key Vault requests per rotated key over both runs, counted by
  a request hook on the SDK clients (the seeding not included).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared import settings as settings_module
from shared.adapters import metering
from shared.bootstrap import Platform
from shared.fakes.clock import FakeClock
from shared.fakes.queues import FakeQueues
from shared.naming import KEY_KINDS, key_name
from shared.services.leadership import COORDINATOR
from shared.services.network_map import NetworkMapPublisher
from shared.services.records import key_entry, member_path
from shared.services.rotation import KeyRotator
from shared.settings import Settings
from tools import azurite, emulator

MEMBERS = 1000
SEED_WORKERS = 16


def _seed(platform: Platform, member: str, at: str) -> None:
    entries = {}
    for kind in KEY_KINDS:
        key = platform.keys.create_key(key_name(member, kind), "EC", tags={"member_id": member, "kind": kind})
        entries[kind] = {**key_entry(key, at), "created_at": at}
    platform.state.create(member_path(member), {
        "member_id": member, "legal_name": f"O={member}, L=Amsterdam, C=NL", "status": "active",
        "request_id": f"req-{member}", "scale_set_id": f"/subscriptions/bench/vmss-{member}", "keys": entries,
    })  # fmt: skip


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ports = azurite.free_ports(4)
        az, az_proc = azurite.start(work / "azurite", ports=(ports[0], ports[1], ports[2]))
        em, em_proc = emulator.start(work / "emulator", ports[3])
        os.environ[metering.ENV] = str(work / "counts.json")  # count the requests of the clients built below
        try:
            values = {
                **settings_module.local_defaults(),
                "AzureWebJobsStorage": az.connection_string,
                "AZURE_ARM_ENDPOINT": em.url, "AZURE_METRICS_ENDPOINT": em.url, "AZURE_KEY_VAULT_URL": em.url,
                "AZURE_CA_BUNDLE": str(em.ca),
            }  # fmt: skip
            platform = Platform(Settings(values))
            clock = FakeClock(datetime.now(UTC))
            at = clock.now().isoformat(timespec="seconds").replace("+00:00", "Z")
            members = [f"bank-{i:04d}" for i in range(MEMBERS)]
            started = time.monotonic()
            with ThreadPoolExecutor(SEED_WORKERS) as pool:
                list(pool.map(lambda m: _seed(platform, m, at), members))
            NetworkMapPublisher(platform.state, platform.keys, clock).publish()
            print(f"seeded {MEMBERS} members ({MEMBERS * len(KEY_KINDS)} keys) in {time.monotonic() - started:.1f} s")
            grant = platform.leases.try_acquire(COORDINATOR, "bench/1", 60)
            if grant is None:
                raise RuntimeError("the coordinator lease of a fresh storage account is held by someone else")
            rotator = KeyRotator(
                state=platform.state, keys=platform.keys, leases=platform.leases, queues=FakeQueues(), clock=clock,
                policies=platform.key_policies, holder="bench/1", lease_seconds=platform.lease_seconds,
            )  # fmt: skip
            metering.COUNTS.clear()
            clock.advance(timedelta(days=91).total_seconds())
            started = time.monotonic()
            rotated = rotator.run(grant.fencing_token)
            rotate_seconds = time.monotonic() - started
            platform.leases.renew(grant)
            clock.advance(timedelta(days=8).total_seconds())
            started = time.monotonic()
            retired = rotator.run(grant.fencing_token)
            retire_seconds = time.monotonic() - started
            counts = dict(metering.COUNTS)
        finally:
            os.environ.pop(metering.ENV, None)
            metering.stop()
            azurite.stop_pid(em_proc.pid)
            azurite.stop_pid(az_proc.pid)
    keys = rotated.count_action("rotated")
    if keys != MEMBERS or retired.count_action("retired") != MEMBERS:
        raise RuntimeError(f"rotated {keys}, retired {retired.count_action('retired')} of {MEMBERS} due keys")
    ops = sum(counts.values()) / keys
    print(f"{MEMBERS} members, their TLS keys due; 1 coordinator, Azurite + emulator on this machine")
    print(f"{'figure':40} {'value':>10}")
    print(f"{'rotate 1,000 due keys (s)':40} {rotate_seconds:10.1f}  map v{rotated.map_version}")
    print(f"{'retire 1,000 old versions (s)':40} {retire_seconds:10.1f}  map v{retired.map_version}")
    per_service = json.dumps({k: round(v / keys, 1) for k, v in counts.items()})
    print(f"{'requests per rotated key':40} {ops:10.1f}  {per_service}")
    return {
        "rotation_1000_members_seconds": round(rotate_seconds, 2),
        "rotation_retire_1000_members_seconds": round(retire_seconds, 2),
        "rotation_ops_per_key": round(ops, 1),
    }
