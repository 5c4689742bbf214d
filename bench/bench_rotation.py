"""Key rotation of one member's own keys, on the local stack's Azurite and emulator.

Version 2: a deployment rotates only its own member's keys, in its own vault, so the figure is per
member, not per consortium (version 1 measured 1,000 members' keys in one vault from one
coordinator; that work is now spread over the members' own deployments, each doing what is
measured here, in parallel). One Azurite and one emulator, started here on free ports; the member's
identity registered in the emulator, its three keys in its own vault, a consortium of one (so its
own tick adopts its rotate version), its clock moved on so its TLS key is due, and a forced request
for the governance key. Figures:

- ``rotation_member_seconds``: the run that rotates the member's due TLS key and starts its
  governance rotation (new versions, keys.json signed and published, the rotate proposal), wall clock;
- ``rotation_member_adopt_seconds``: the consortium ticks until the rotate version is adopted plus
  the run that marks the governance key rotated;
- ``rotation_member_retire_seconds``: the run after the overlaps that disables both old versions;
- ``rotation_ops_per_key``: storage and Key Vault requests per rotated key over the three, counted by
  a request hook on the SDK clients (the seeding not included).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared import settings as settings_module
from shared.adapters import metering
from shared.bootstrap import Platform
from shared.decisions import chain
from shared.fakes.clock import FakeClock
from shared.fakes.published import FakePeerReader, FakePublicStore, PublishedWorld
from shared.fakes.queues import FakeQueues
from shared.naming import KEY_KINDS, key_name
from shared.services.consortium import Consortium, Identity
from shared.services.leadership import COORDINATOR
from shared.services.records import Events, Rejections, key_entry, member_path
from shared.services.rotation import KeyRotator, Result
from shared.settings import Settings
from tools import emulator
from tools.harness.stack import running_azurite, running_emulator

MEMBER = "bank-bench"
ENDPOINT = "https://stbankbench.blob.core.windows.net/consortium-public"


def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as running:
        work = Path(tmp)
        az = running.enter_context(running_azurite(work / "azurite"))
        em = running.enter_context(running_emulator(work / "emulator"))
        os.environ[metering.ENV] = str(work / "counts.json")  # count the requests of the clients built below
        try:
            registered = emulator.register_principal(em, MEMBER)
            values = {
                **settings_module.local_defaults(),
                "AzureWebJobsStorage": az.connection_string, "AZURE_ARM_ENDPOINT": em.url,
                "AZURE_METRICS_ENDPOINT": em.url, "AZURE_CA_BUNDLE": str(em.ca), "CONSORTIUM_MEMBER_ID": MEMBER,
                "AZURE_EMULATOR_PRINCIPAL": MEMBER, "AZURE_SUBSCRIPTION_ID": registered["subscription_id"],
                "AZURE_KEY_VAULT_URL": registered["vault_url"],
            }  # fmt: skip
            platform = Platform(Settings(values))
            clock = FakeClock(datetime.now(UTC))
            at = clock.now().isoformat(timespec="seconds").replace("+00:00", "Z")
            entries = {
                kind: key_entry(platform.keys.create_key(key_name(MEMBER, kind), "EC", tags={"kind": kind}), at)
                for kind in KEY_KINDS
            }
            legal = "O=Bench Bank, L=Amsterdam, C=NL"
            platform.state.create(member_path(MEMBER), {"member_id": MEMBER, "legal_name": legal, "status": "active",
                                                        "request_id": "req-bench", "keys": entries})  # fmt: skip
            gov = entries["governance"]
            unsigned = chain.unsigned_genesis("credit-consortium", [{
                "member_id": MEMBER, "legal_name": legal, "endpoint": ENDPOINT,
                "governance_key": {"kid": gov["kid"], "jwk": gov["public_jwk"]},
            }], convener=MEMBER, issued_at=at)  # fmt: skip
            sig = chain.b64u(platform.keys.sign(gov["kid"], bytes.fromhex(chain.document_hash(unsigned))))
            genesis = chain.with_signatures(unsigned, [{"member_id": MEMBER, "kid": gov["kid"], "sig": sig}])
            events = Events(FakeQueues(), clock)
            published = PublishedWorld()
            consortium = Consortium(
                identity=Identity(MEMBER, key_name(MEMBER, "governance"), ENDPOINT),
                genesis=chain.document_hash(genesis), state=platform.state, public=FakePublicStore(published, ENDPOINT),
                peers=FakePeerReader(published, {}), keys=platform.keys, clock=clock, events=events,
                rejections=Rejections(platform.state, events, clock),
            )  # fmt: skip
            consortium.pin_genesis(genesis)
            grant = platform.leases.try_acquire(COORDINATOR, "bench/1", 60)
            if grant is None:
                raise RuntimeError("the coordinator lease of a fresh storage account is held by someone else")
            rotator = KeyRotator(
                member_id=MEMBER, state=platform.state, keys=platform.keys, leases=platform.leases,
                queues=FakeQueues(), clock=clock, policies=platform.key_policies, holder="bench/1",
                consortium=consortium, lease_seconds=platform.lease_seconds,
            )  # fmt: skip
            metering.COUNTS.clear()
            clock.advance(timedelta(days=91).total_seconds())
            started = time.monotonic()
            first = rotator.run(grant.fencing_token, force=True, request_id="rot-bench")
            rotate_seconds = time.monotonic() - started
            started = time.monotonic()
            for _ in range(5):
                consortium.tick()
                head = consortium.head()
                if head is not None and head.document.change.kind == chain.Kind.ROTATE:
                    break
            adopted = rotator.run(grant.fencing_token)
            adopt_seconds = time.monotonic() - started
            platform.leases.renew(grant)
            clock.advance(timedelta(days=400).total_seconds())
            started = time.monotonic()
            retired = rotator.run(grant.fencing_token)
            retire_seconds = time.monotonic() - started
            counts = dict(metering.COUNTS)
        finally:
            os.environ.pop(metering.ENV, None)
            metering.stop()
    keys = first.count_action(Result.ROTATED) + adopted.count_action(Result.ROTATED)
    if keys != 2 or retired.count_action(Result.RETIRED) != 2:
        raise RuntimeError(
            f"rotated {keys}, retired {retired.count_action(Result.RETIRED)} of 2 keys: {first.summary()}"
        )
    ops = sum(counts.values()) / keys
    print("one member's own keys (TLS due, governance forced); its coordinator, Azurite + emulator on this machine")
    print(f"{'figure':44} {'value':>10}")
    print(f"{'rotate TLS, start governance (s)':44} {rotate_seconds:10.2f}")
    print(f"{'adopt the rotate version, mark rotated (s)':44} {adopt_seconds:10.2f}")
    print(f"{'retire both old versions (s)':44} {retire_seconds:10.2f}")
    per_service = json.dumps({k: round(v / keys, 1) for k, v in counts.items()})
    print(f"{'requests per rotated key':44} {ops:10.1f}  {per_service}")
    return {
        "rotation_member_seconds": round(rotate_seconds, 3),
        "rotation_member_adopt_seconds": round(adopt_seconds, 3),
        "rotation_member_retire_seconds": round(retire_seconds, 3),
        "rotation_ops_per_key": round(ops, 1),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
