"""Key rotation of one member's own keys in its own vault: the emulator's Key Vault through the real
SDK, as that member's identity (``AZURE_EMULATOR_PRINCIPAL``), its records and leases on Azurite.

The member founds a consortium of one (so its own tick adopts its rotate version: a majority of one
plus its old key and its new one); the published container is the fakes' (its adapters have their
own tests). The rotator runs with a FakeClock, so ages and overlaps pass in a blink.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import ContainerClient

from shared.adapters.blob_leases import BlobLeaseStore
from shared.adapters.blob_state import BlobStateStore
from shared.adapters.keyvault import KeyVaultKeyStore
from shared.adapters.storage import expand_connection_string
from shared.decisions import chain, published_keys
from shared.decisions.rotation import parse_policy
from shared.errors import ForbiddenError
from shared.fakes.clock import FakeClock
from shared.fakes.published import FakePeerReader, FakePublicStore, PublishedWorld
from shared.fakes.queues import FakeQueues
from shared.naming import key_name
from shared.services.consortium import Consortium, Identity
from shared.services.leadership import COORDINATOR
from shared.services.records import Events, Rejections, key_entry, member_path
from shared.services.rotation import KeyRotator, RotationRun
from shared.settings import Settings
from tests.conftest import member_settings
from tools.emulator import EmulatorHandle

pytestmark = pytest.mark.integration

POLICIES = {
    "tls": parse_policy("tls", "rotate=P90D overlap=P7D warn=P14D"),
    "governance": parse_policy("governance", "rotate=P365D overlap=P2D warn=P30D"),
    "identity": parse_policy("identity", "off rotate=P730D overlap=P30D warn=P60D", off_reason="off: R3's tool"),
}
ENDPOINT = "https://strot.blob.core.windows.net/consortium-public"


@pytest.fixture
def container(storage_connection_string: str) -> Iterator[ContainerClient]:
    client = ContainerClient.from_connection_string(
        expand_connection_string(storage_connection_string), "rot" + uuid.uuid4().hex[:20]
    )
    client.create_container()
    yield client
    client.delete_container()


class Member:
    """One member's deployment: its own vault (as its own identity), its storage, a consortium of one."""

    def __init__(self, handle: EmulatorHandle, base: Settings, container: ContainerClient):
        self.member_id = "rot-" + uuid.uuid4().hex[:8]
        self.settings = member_settings(handle, base, self.member_id)
        self.keys = KeyVaultKeyStore.from_settings(self.settings)
        self.state, self.leases = BlobStateStore(container), BlobLeaseStore(container)
        self.clock, self.queues, self.published = FakeClock(datetime.now(UTC)), FakeQueues(), PublishedWorld()
        events = Events(self.queues, self.clock)
        at = self.clock.now().isoformat(timespec="seconds").replace("+00:00", "Z")
        entries = {k: key_entry(self.keys.create_key(key_name(self.member_id, k), "EC", tags={"kind": k}), at)
                   for k in ("identity", "tls", "governance")}  # fmt: skip
        self.state.create(member_path(self.member_id), {
            "member_id": self.member_id, "legal_name": "O=Rot Bank, L=Amsterdam, C=NL", "status": "active",
            "request_id": "req-rot", "keys": entries,
        })  # fmt: skip
        governance = entries["governance"]
        unsigned = chain.unsigned_genesis("credit-consortium", [{
            "member_id": self.member_id, "legal_name": "O=Rot Bank, L=Amsterdam, C=NL", "endpoint": ENDPOINT,
            "governance_key": {"kid": governance["kid"], "jwk": governance["public_jwk"]},
        }], convener=self.member_id, issued_at=at)  # fmt: skip
        sig = self.keys.sign(governance["kid"], bytes.fromhex(chain.document_hash(unsigned)))
        genesis = chain.with_signatures(unsigned, [{"member_id": self.member_id, "kid": governance["kid"],
                                                    "sig": chain.b64u(sig)}])  # fmt: skip
        self.consortium = Consortium(
            identity=Identity(self.member_id, key_name(self.member_id, "governance"), ENDPOINT),
            genesis=chain.document_hash(genesis), state=self.state, public=FakePublicStore(self.published, ENDPOINT),
            peers=FakePeerReader(self.published, {}), keys=self.keys, clock=self.clock, events=events,
            rejections=Rejections(self.state, events, self.clock),
        )  # fmt: skip
        self.consortium.pin_genesis(genesis)
        self.rotator = KeyRotator(
            member_id=self.member_id, state=self.state, keys=self.keys, leases=self.leases, queues=self.queues,
            clock=self.clock, policies=POLICIES, holder="test/1", consortium=self.consortium,
        )  # fmt: skip
        grant = self.leases.try_acquire(COORDINATOR, "test/1", 60)
        assert grant is not None
        self.token = grant.fencing_token

    def run(self, **kwargs: object) -> dict[str, int]:
        return self.rotator.run(self.token, **kwargs).summary()  # type: ignore[arg-type]

    def versions(self, kind: str) -> list[bool]:
        return [v.enabled for v in self.keys.list_versions(key_name(self.member_id, kind))]

    def listed(self) -> str:
        head = self.consortium.head()
        entry = head.document.member(self.member_id) if head else None
        assert entry is not None
        return entry.governance_key.kid

    def travel(self, days: float) -> None:
        self.clock.advance(timedelta(days=days).total_seconds())


def test_a_member_rotates_its_own_keys_in_its_own_vault_through_a_rotate_version(
    emulator_instance: EmulatorHandle, azure_settings: Settings, container: ContainerClient
) -> None:
    m = Member(emulator_instance, azure_settings, container)
    old = m.listed()
    assert m.run(force=True, request_id="rot-1") == {"rotated": 1, "awaiting": 1, "none": 1}
    assert m.versions("governance") == [True, True] and m.versions("identity") == [True]
    m.travel(3)
    assert m.run() == {"awaiting": 1, "wait": 1, "none": 1}, "no version lists the new kid yet: nothing retires"
    assert m.versions("governance") == [True, True]

    m.consortium.tick()  # a consortium of one: it pre-signs with old and new, agrees, signs, adopts
    m.consortium.tick()
    head = m.consortium.head()
    assert head is not None and head.document.change.kind == chain.Kind.ROTATE
    new = m.listed()
    assert new != old and {s.kid for s in head.document.signatures} == {old, new}
    assert m.run() == {"rotated": 1, "wait": 1, "none": 1}
    m.travel(5)
    assert m.run() == {"retired": 2, "none": 1}
    assert m.versions("governance") == [False, True] and m.versions("tls") == [False, True]
    with pytest.raises(ForbiddenError):
        m.keys.sign(old, b"\0" * 32)  # disabled in the vault, kept
    m.consortium.tick()  # the member still signs its head, now with its new key
    raw = m.published.containers[ENDPOINT][published_keys.PATH][0]
    document = published_keys.verify_keys_document(json.loads(raw), member_id=m.member_id, key=head.document.members[0]
                                                   .governance_key)  # fmt: skip
    assert len(document.keys["tls"]) == 1 and document.kid == new
    again = m.rotator.take_request(json.dumps({"request_id": "rot-1", "force": True}), m.token)
    assert isinstance(again, RotationRun) and again.summary() == {"none": 3}, "the same request rotates once"


def test_another_members_identity_cannot_reach_this_members_vault(
    emulator_instance: EmulatorHandle, azure_settings: Settings, container: ContainerClient
) -> None:
    m = Member(emulator_instance, azure_settings, container)
    other = "rot-" + uuid.uuid4().hex[:8]
    member_settings(emulator_instance, azure_settings, other)  # registered, with a vault of its own
    stranger = KeyVaultKeyStore.from_settings(Settings({**m.settings.values, "AZURE_EMULATOR_PRINCIPAL": other}))
    with pytest.raises(ForbiddenError):
        stranger.create_key(key_name(m.member_id, "governance"), "EC", tags={})
    assert m.versions("governance") == [True]
