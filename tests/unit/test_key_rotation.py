"""Key rotation, one deployment per member, in a consortium on the fakes.

Each member rotates only its own keys in its own vault. A new governance key becomes a ``rotate``
version that every member adopts; the old version stays enabled (the member signs with it) until a
verified version lists the new kid and the overlap has passed. TLS keys are published in the
member's signed ``keys.json``. A repeated tick rotates once; a run stopped at any change resumes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.decisions import chain, published_keys
from shared.decisions import consortium as rules
from shared.errors import FencedError
from shared.messages import Rejection
from shared.naming import key_name
from shared.services.leadership import COORDINATOR
from shared.services.rotation import PUBLISHED_PATH, RotationRun
from tests.support.consortium_world import chain_time
from tests.support.rotation_world import RotationWorld

A = "bank-a"


def founded() -> RotationWorld:
    world = RotationWorld()
    world.found(*world.members)
    return world


def the_listed_key_is_enabled(world: RotationWorld) -> None:
    """What Consortium.publish_head and _sign_final sign with must be usable in the member's own vault."""
    kid = world.listed_kid(A, A)
    assert kid is not None
    version = kid.rsplit("/", 1)[-1]
    key = world.members[A].keys.get_key(key_name(A, "governance"), version)
    assert key is not None and key.enabled, f"{A}'s chain lists {version[:8]}, and it must stay enabled"


def tick_until(world: RotationWorld, what: str, done: Any, rounds: int = 60) -> None:
    for _ in range(rounds):
        world.tick()
        the_listed_key_is_enabled(world)
        if done():
            return
    raise AssertionError(f"not within {rounds} rounds: {what} (versions {world.versions()})")


def adopted_rotate(world: RotationWorld) -> bool:
    return all(world.head(m).document.change.kind == chain.Kind.ROTATE for m in world.members)


def keys_document(world: RotationWorld, reader: str = "bank-b") -> published_keys.KeysDocument:
    """A's keys.json as ``reader`` checks it: with the governance key ``reader``'s chain lists for A."""
    raw = world.published.containers[world.members[A].service.identity.endpoint][published_keys.PATH][0]
    entry = world.head(reader).document.member(A)
    assert entry is not None
    return published_keys.verify_keys_document(json.loads(raw), member_id=A, key=entry.governance_key)


def test_a_governance_rotation_goes_through_a_rotate_version_and_the_old_key_retires_only_after_it() -> None:
    world = founded()
    old = world.listed_kid(A, A)
    base = world.head(A).version
    a = world.deployments[A]

    assert a.run(force=True, request_id="rot-1") == {"rotated": 1, "awaiting": 1, "none": 1}  # tls, governance
    new = world.record(A)["keys"]["governance"]["kid"]
    assert new != old and [v.enabled for v in world.key_versions(A, "governance")] == [True, True]
    proposal = world.members[A].service.own()["proposals"][-1]
    assert (proposal["kind"], proposal["member_id"], proposal["entry"]["governance_key"]["kid"]) == ("rotate", A, new)

    # The others are down: the rotate cannot become a version, and the overlap passes meanwhile.
    world.down = {"bank-b", "bank-c", "bank-d"}
    for _ in range(5):
        world.tick(A)
    world.travel(3)
    assert a.run() == {"awaiting": 1, "wait": 1, "none": 1}
    assert world.listed_kid(A, A) == old
    assert [v.enabled for v in world.key_versions(A, "governance")] == [True, True], "never retired before adoption"
    the_listed_key_is_enabled(world)

    world.down = set()
    tick_until(world, "every member adopts it", lambda: all(world.listed_kid(m, A) == new for m in world.members))
    adopted = world.head(A)
    assert (adopted.version, adopted.document.change.kind) == (base + 1, chain.Kind.ROTATE)
    signers = {(s.member_id, s.kid) for s in adopted.document.signatures}
    assert {(A, old), (A, new)} <= signers, "signed by the member with its old key and with its new one"
    assert len({m for m, _ in signers}) >= 3, "and by a majority"
    assert ("rotated", base + 1) in world.members[A].membership

    assert a.run() == {"rotated": 1, "wait": 1, "none": 1}
    assert world.members[A].events("key.rotated")[-1]["chain_version"] == base + 1
    world.travel(1)
    assert a.run() == {"wait": 2, "none": 1}, "the overlap runs from the adoption"
    assert all(v.enabled for v in world.key_versions(A, "governance"))
    world.travel(1.1)
    assert a.run() == {"retired": 1, "wait": 1, "none": 1}
    first, second = world.key_versions(A, "governance")
    assert (first.kid, first.enabled, second.kid, second.enabled) == (old, False, new, True)
    assert a.run() == {"wait": 1, "none": 2}

    # The member still takes part, signing with the new key: with bank-c down, bank-d's leave needs it.
    world.down = {"bank-c"}
    world.members["bank-d"].service.propose(rules.Proposal(
        proposal_id="prop-leave-bank-d", kind=chain.Kind.LEAVE, member_id="bank-d", proposer="bank-d",
        proposed_at=chain_time(world.clock),
    ))  # fmt: skip
    tick_until(world, "bank-d's leave", lambda: all(world.versions()[m] == base + 2 for m in ("bank-a", "bank-b")))
    final = world.members[A].service.own()["final"]
    assert (final["version"], final["signature"]["kid"]) == (base + 2, new), "bank-a signs with its new key"
    assert keys_document(world).kid == new, "the keys document is signed with the key the chain lists"
    assert not world.members["bank-b"].state.list_paths("rejections/"), "no member refused anything of bank-a"


def test_a_repeated_tick_or_request_rotates_once() -> None:
    world = founded()
    a = world.deployments[A]
    request = json.dumps({"request_id": "rot-twice", "member_id": A, "force": True})
    for _ in range(3):
        run = a.rotator.take_request(request, a.coordinate())
        assert isinstance(run, RotationRun)
        a.run()
        world.tick()
    assert len(world.key_versions(A, "tls")) == 2 and len(world.key_versions(A, "governance")) == 2
    rotates = [p for p in world.members[A].service.own()["proposals"] if p["kind"] == "rotate"]
    assert len(rotates) == 1
    tick_until(world, "the rotate adopted", lambda: adopted_rotate(world))
    for _ in range(3):
        a.run()
    world.travel(8)
    for _ in range(3):
        a.run()
        a.rotator.take_request(request, a.coordinate())
    for kind in ("tls", "governance"):
        versions = world.key_versions(A, kind)
        assert [v.enabled for v in versions] == [False, True], f"{kind}: one new version, the old disabled"
        assert len(world.record(A)["keys"][kind]["rotations"]) == 1
    assert len(world.key_versions(A, "identity")) == 1, "identity keys are not rotated, even forced"
    assert all(len(world.key_versions(m, k)) == 1 for m in ("bank-b", "bank-c") for k in ("tls", "governance"))
    assert [e["key_name"] for e in world.members[A].events("key.rotated")] == [
        key_name(A, "tls"),
        key_name(A, "governance"),
    ]


def test_tls_keys_are_published_old_and_new_in_a_signed_keys_document_then_the_new_alone() -> None:
    world = founded()
    a = world.deployments[A]
    a.run()
    before = keys_document(world)
    tls = world.record(A)["keys"]["tls"]
    assert [r.kid for r in before.keys["tls"]] == [tls["kid"]] and "identity" in before.keys

    world.travel(77)  # 14 days before the 90
    assert a.run() == {"warn": 1, "none": 2}
    world.travel(14)
    assert a.run() == {"rotated": 1, "none": 2}
    tls = world.record(A)["keys"]["tls"]
    during = keys_document(world)
    assert [r.kid for r in during.keys["tls"]] == [tls["kid"], tls["previous"]["kid"]] and during.seq > before.seq
    world.travel(7)
    assert a.run() == {"retired": 1, "none": 2}
    after = keys_document(world)
    assert [r.kid for r in after.keys["tls"]] == [tls["kid"]] and after.seq > during.seq
    with pytest.raises(published_keys.KeysDocumentError, match="not after"):
        published_keys.verify_keys_document(after.model_dump(mode="json"), member_id=A,
                                            key=world.head("bank-b").document.members[0].governance_key,
                                            after_seq=after.seq)  # fmt: skip
    forged = {**after.model_dump(mode="json"), "seq": after.seq + 1}
    with pytest.raises(published_keys.KeysDocumentError, match="does not verify"):
        published_keys.verify_keys_document(forged, member_id=A,
                                            key=world.head("bank-b").document.members[0].governance_key)  # fmt: skip
    other = world.head("bank-b").document.member("bank-b")
    assert other is not None
    with pytest.raises(published_keys.KeysDocumentError, match="does not list"):
        published_keys.verify_keys_document(after.model_dump(mode="json"), member_id=A, key=other.governance_key)


class Crash(Exception):
    """The process dies here."""


class Crashing:
    """Passes calls through to ``inner``, and dies at the ``at``-th call of a method that changes something."""

    CHANGES = frozenset({"create", "replace", "create_key", "set_enabled", "send", "sign", "put"})

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


def crashing_run(world: RotationWorld, crash_at: int | None, **kwargs: Any) -> int:
    """One run of A's rotator whose state, vault and events die at the ``crash_at``-th change."""
    counter = [0]
    a = world.deployments[A]
    rotator, token = a.rotator, a.coordinate()
    saved = (rotator.state, rotator.keys, rotator.events.queues)
    rotator.state = Crashing(saved[0], counter, crash_at)
    rotator.keys = Crashing(saved[1], counter, crash_at)
    rotator.events.queues = Crashing(saved[2], counter, crash_at)
    try:
        rotator.run(token, **kwargs)
    finally:
        rotator.state, rotator.keys, rotator.events.queues = saved
    return counter[0]


@pytest.mark.parametrize("phase", ["start", "retire"])
def test_a_rotation_stopped_at_any_change_resumes_where_it_stopped(phase: str) -> None:
    def world_at() -> RotationWorld:
        world = founded()
        if phase == "retire":
            crashing_run(world, None, force=True, request_id="rot-crash")
            tick_until(world, "the rotate", lambda: adopted_rotate(world))
            crashing_run(world, None)
            world.travel(8)
        return world

    forced = {"force": True, "request_id": "rot-crash"} if phase == "start" else {}
    changes = crashing_run(world_at(), None, **forced)
    assert changes >= 6, "a run makes several changes (intent, versions, records, keys document, events)"
    for crash_at in range(1, changes + 1):
        world = world_at()
        with pytest.raises(Crash):
            crashing_run(world, crash_at, **forced)
        the_listed_key_is_enabled(world)
        crashing_run(world, None, force=True, request_id="rot-crash")  # the request comes again: it resumes
        tick_until(world, "the rotate", lambda w=world: adopted_rotate(w))
        crashing_run(world, None)
        world.travel(8)
        crashing_run(world, None)
        for kind in ("tls", "governance"):
            versions = world.key_versions(A, kind)
            assert [v.enabled for v in versions] == [False, True], f"crash at {crash_at}: {kind} rotated once"
            assert world.record(A)["keys"][kind]["kid"] == versions[1].kid
        assert world.listed_kid("bank-d", A) == world.key_versions(A, "governance")[1].kid
        assert [r.kid for r in keys_document(world).keys["tls"]] == [world.key_versions(A, "tls")[1].kid]


def test_requests_for_another_member_or_an_inactive_one_are_rejected_with_their_reason() -> None:
    world = founded()
    a = world.deployments[A]
    refused = a.rotator.take_request(json.dumps({"request_id": "r1", "member_id": "bank-b", "force": True}),
                                     a.coordinate())  # fmt: skip
    assert isinstance(refused, Rejection) and refused.reason == "not_this_member"
    refused = a.rotator.take_request(b'{"request_id": "r2", "force": "yes please"}', a.coordinate())
    assert isinstance(refused, Rejection) and refused.field == "force"
    world.members[A].state.replace(
        f"members/{A}.json", {**world.record(A), "status": "left"},
        world.members[A].state.read(f"members/{A}.json").etag,  # type: ignore[union-attr]
    )  # fmt: skip
    refused = a.rotator.take_request(json.dumps({"request_id": "r3", "force": True}), a.coordinate())
    assert isinstance(refused, Rejection) and refused.reason == "not_active"
    assert all(len(world.key_versions(m, k)) == 1 for m in world.members for k in ("tls", "governance"))


def test_a_member_outside_the_chain_does_not_start_a_governance_rotation() -> None:
    world = RotationWorld()
    world.found("bank-a", "bank-b")
    c = world.deployments["bank-c"]
    assert c.run(force=True, request_id="rot-c") == {"rotated": 1, "none": 2}  # tls only
    assert len(world.key_versions("bank-c", "governance")) == 1
    assert world.record("bank-c")["keys"]["governance"].get("rotation") is None


def test_a_stale_coordinator_cannot_rotate() -> None:
    world = founded()
    a = world.deployments[A]
    stale = a.coordinate()
    a.leases.release(a.grant)  # another instance of the member's deployment takes over while this one is paused
    newer = a.leases.try_acquire(COORDINATOR, f"{A}/2", 60)
    assert newer is not None and newer.fencing_token > stale
    before = world.record(A)
    with pytest.raises(FencedError):
        a.rotator.run(stale, force=True, request_id="stale")
    assert world.record(A) == before and len(world.key_versions(A, "tls")) == 1
    assert world.members[A].state.read(PUBLISHED_PATH) is None
