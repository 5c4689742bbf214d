"""Key rotation on Azurite and the emulator's Key Vault through the real SDK, travelling in time.

The rotator runs with a FakeClock, so ages, warnings and overlaps pass in a blink; the keys, their
versions, enabling and signing are the emulator's, reached through azure-keyvault-keys; the records,
the map and the leases are Azurite's. Events are captured in memory (the queue adapter has its own tests).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.storage.blob import ContainerClient

from shared.adapters.blob_leases import BlobLeaseStore
from shared.adapters.blob_state import BlobStateStore
from shared.adapters.keyvault import KeyVaultKeyStore
from shared.adapters.storage import expand_connection_string
from shared.errors import FencedError
from shared.fakes.clock import FakeClock
from shared.fakes.queues import FakeQueues
from shared.messages import Rejection
from shared.naming import NETWORK_MAP_SIGNER, key_name
from shared.services.leadership import COORDINATOR
from shared.services.network_map import SIGNER_PATH, NodeTrust, verify_map
from shared.services.rotation import STATE_PATH, RotationRun, request_report_path
from shared.settings import Settings
from tests.rotation.world import RotationWorld

pytestmark = pytest.mark.integration


class Crash(Exception):
    """The process dies here."""


class Crashing:
    """Passes calls through to ``inner``, and dies at the ``at``-th call of a method that changes something."""

    CHANGES = frozenset({"create", "replace", "create_key", "set_enabled", "send", "sign"})

    def __init__(self, inner: Any, counter: list[int], at: int | None):
        self._inner, self._counter, self._at = inner, counter, at

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name not in self.CHANGES:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._counter[0] += 1
            if self._at is not None and self._counter[0] == self._at:
                raise Crash(f"crashed at change {self._at} ({name})")
            return attribute(*args, **kwargs)

        return call


@pytest.fixture
def make_world(storage_connection_string: str, azure_settings: Settings) -> Iterator[Callable[[], RotationWorld]]:
    keys = KeyVaultKeyStore.from_settings(azure_settings)
    containers: list[ContainerClient] = []

    def make() -> RotationWorld:
        container = ContainerClient.from_connection_string(
            expand_connection_string(storage_connection_string), "rot" + uuid.uuid4().hex[:20]
        )
        container.create_container()
        containers.append(container)
        queues = FakeQueues()

        def events() -> list[dict[str, Any]]:
            return [json.loads(s.body) for s in queues.sent if s.queue == "member-events"]

        clock = FakeClock(datetime.now(UTC))
        return RotationWorld(BlobStateStore(container), keys, BlobLeaseStore(container), queues, clock, events)

    yield make
    for container in containers:
        container.delete_container()


def member() -> str:
    return "rot-" + uuid.uuid4().hex[:10]


def assert_rotated_once(world: RotationWorld, member_id: str, kind: str) -> None:
    """One new version, enabled and current; the old one disabled, kept; the map names only the new."""
    versions = world.versions_of(member_id, kind)
    assert len(versions) == 2, f"{kind}: {len(versions)} versions, expected the original and one new"
    old, new = versions
    assert (old.enabled, new.enabled) == (False, True)
    entry = world.record(member_id)["keys"][kind]
    assert entry["version"] == new.version and "previous" not in entry and "rotation" not in entry
    assert len(entry["rotations"]) == 1
    shown = next(m for m in world.network_map()["members"] if m["member_id"] == member_id)["keys"][kind]
    assert shown["kid"] == new.kid and "previous" not in shown
    assert verify_map(world.network_map(), world.keys)


def test_due_keys_warn_then_rotate_once_with_an_overlap_then_retire(make_world: Callable[[], RotationWorld]) -> None:
    world = make_world()
    a, b = member(), member()
    world.seed_member(a)
    world.seed_member(b)
    token = world.become_coordinator()
    rotator = world.rotator()

    world.travel(80)  # tls warns 14 days before its 90
    assert rotator.run(token, member_id=a).summary() == {"warn": 1, "none": 2}
    assert rotator.run(token, member_id=a).summary() == {"none": 3}, "key.expiring is announced once per version"
    assert world.event_types().count("key.expiring") == 1

    world.travel(11)  # 91 days: tls is due
    version_before = world.network_map()["version"]
    run = rotator.run(token, member_id=a)
    assert run.summary() == {"rotated": 1, "none": 2}
    tls = world.record(a)["keys"]["tls"]
    assert tls["rotation"]["stage"] == "published" and tls["previous"]["version"] != tls["version"]
    shown = next(m for m in world.network_map()["members"] if m["member_id"] == a)["keys"]["tls"]
    assert (shown["kid"], shown["previous"]["kid"]) == (tls["kid"], tls["previous"]["kid"]), "old and new in the map"
    assert world.network_map()["version"] == version_before + 1
    assert next(e for e in world.events() if e["type"] == "key.rotated")["key_name"] == key_name(a, "tls")
    assert all(v.enabled for v in world.versions_of(a, "tls")), "the old version stays enabled in the overlap"

    assert rotator.run(token, member_id=a).summary() == {"wait": 1, "none": 2}, "a repeated run rotates once"
    assert len(world.versions_of(a, "tls")) == 2

    world.travel(7)  # the overlap is over
    assert rotator.run(token, member_id=a).summary() == {"retired": 1, "none": 2}
    assert_rotated_once(world, a, "tls")
    assert "key.retired" in world.event_types()
    assert rotator.run(token, member_id=a).summary() == {"none": 3}
    assert len(world.versions_of(b, "tls")) == 1, "another member's keys are untouched"
    assert len(world.versions_of(a, "identity")) == 1, "identity keys are not rotated"


def test_a_forced_request_rotates_once_however_often_it_comes(make_world: Callable[[], RotationWorld]) -> None:
    world = make_world()
    a = member()
    world.seed_member(a)
    token = world.become_coordinator()
    rotator = world.rotator()
    request = json.dumps({"request_id": "rot-twice", "member_id": a, "force": True})

    def take() -> dict[str, int]:
        run = rotator.take_request(request, token)
        assert isinstance(run, RotationRun)
        return run.summary()

    assert take() == {"rotated": 2, "none": 1}  # tls, governance; identity is off
    assert take() == {"wait": 2, "none": 1}
    world.travel(31)
    rotator.run(token, member_id=a)
    assert take() == {"none": 3}
    for kind in ("tls", "governance"):
        assert_rotated_once(world, a, kind)
    report = world.state.read(request_report_path("rot-twice"))
    assert report is not None and (report.body["request_id"], report.body["runs"]) == ("rot-twice", 3)


def test_bad_requests_are_rejected_with_their_reason(make_world: Callable[[], RotationWorld]) -> None:
    world = make_world()
    token = world.become_coordinator()
    rotator = world.rotator()
    refused = rotator.take_request(b'{"request_id": "x", "force": "yes please"}', token)
    assert isinstance(refused, Rejection) and refused.field == "force"
    refused = rotator.take_request(json.dumps({"request_id": "y", "member_id": "no-such-bank"}), token)
    assert isinstance(refused, Rejection) and refused.reason == "not_active"
    reasons = sorted(doc.body["reason"] for p in world.state.list_paths("rejections/") if (doc := world.state.read(p)))
    assert reasons == ["not_active", "schema"]


def test_a_stale_coordinator_cannot_rotate(make_world: Callable[[], RotationWorld]) -> None:
    world = make_world()
    a = member()
    world.seed_member(a)
    stale = world.become_coordinator()
    assert world.grant is not None
    world.leases.release(world.grant)  # another deployment takes over while this one is paused
    newer = world.leases.try_acquire(COORDINATOR, "test/2", 60)
    assert newer is not None and newer.fencing_token > stale
    before = world.record(a)
    with pytest.raises(FencedError):
        world.rotator().run(stale, member_id=a, force=True, request_id="stale")
    assert world.record(a) == before and len(world.versions_of(a, "tls")) == 1


def test_the_signer_rotation_keeps_nodes_following_the_map(make_world: Callable[[], RotationWorld]) -> None:
    world = make_world()
    world.seed_member(member())
    first = world.network_map()
    signer = world.keys.get_key(NETWORK_MAP_SIGNER, first["signing_key_id"].rsplit("/", 1)[-1])
    assert signer is not None
    node = NodeTrust({signer.kid: signer.public_jwk})
    assert node.accept(first)
    token = world.become_coordinator()
    rotator = world.rotator()

    rotator.run(token, force=True, request_id="signer-now")
    overlap = world.network_map()
    assert overlap["signing_key_id"] == signer.kid, "the outgoing signer still signs during the overlap"
    incoming = overlap["next_signing_key"]["kid"]
    assert incoming != signer.kid and node.accept(overlap) and incoming in node.trusted

    world.travel(15)
    rotator.run(token)
    after = world.network_map()
    assert after["signing_key_id"] == incoming and "next_signing_key" not in after
    assert node.accept(after), "a node that only ever trusted the first signer follows to the new one"
    assert verify_map(after, world.keys)
    old = world.keys.get_key(NETWORK_MAP_SIGNER, signer.version)
    assert old is not None and not old.enabled
    assert not NodeTrust({signer.kid: signer.public_jwk}).accept(after), "the new key is trusted only if announced"
    record = world.state.read(SIGNER_PATH)
    assert record is not None and record.body["keys"]["signer"]["kid"] == incoming
    assert world.state.read(STATE_PATH) is not None


def _run(world: RotationWorld, token: int, member_id: str, crash_at: int | None, *, force: bool) -> int:
    """One run whose state, keys and events die at the ``crash_at``-th change; returns the changes it made."""
    counter = [0]
    rotator = world.rotator(
        state=Crashing(world.state, counter, crash_at), keys=Crashing(world.keys, counter, crash_at)
    )
    rotator.events.queues = Crashing(world.queues, counter, crash_at)
    if force:
        rotator.run(token, member_id=member_id, force=True, request_id="rot-crash")
    else:
        rotator.run(token, member_id=member_id)
    return counter[0]


def _world_at(make_world: Callable[[], RotationWorld], phase: str) -> tuple[RotationWorld, int, str]:
    """A member seeded; for the retire phase, already rotated and past its overlap."""
    world = make_world()
    a = member()
    world.seed_member(a)
    token = world.become_coordinator()
    if phase == "retire":
        _run(world, token, a, None, force=True)
        world.travel(31)
    return world, token, a


@pytest.mark.parametrize("phase", ["rotate", "retire"])
def test_a_rotation_stopped_at_any_change_resumes_where_it_stopped(
    make_world: Callable[[], RotationWorld], phase: str
) -> None:
    world, token, a = _world_at(make_world, phase)
    changes = _run(world, token, a, None, force=phase == "rotate")
    assert changes >= 6, "a run makes several changes (intent, versions, records, map, events)"
    for crash_at in range(1, changes + 1):
        world, token, a = _world_at(make_world, phase)
        versions: list[int] = [world.network_map()["version"]]
        with pytest.raises(Crash):
            _run(world, token, a, crash_at, force=phase == "rotate")
        versions.append(world.network_map()["version"])
        _run(world, token, a, None, force=True)  # the request comes again (or the next tick): it resumes
        versions.append(world.network_map()["version"])
        world.travel(31)
        _run(world, token, a, None, force=False)
        _run(world, token, a, None, force=False)
        versions.append(world.network_map()["version"])
        assert versions == sorted(versions), f"crash at change {crash_at}: the map's version went back"
        for kind in ("tls", "governance"):
            assert_rotated_once(world, a, kind)
