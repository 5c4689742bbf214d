"""The forgeries' stack: the local stack (``tools.harness.stack``, no hosts), each member's deployment
run in-process with the real adapters (its Key Vault client noting any key outside its own vault),
bank-c admitted for real, bank-d applying; and what a forgery must not change in an honest deployment.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from shared.adapters.compute import ArmScaleSets
from shared.adapters.keyvault import KeyVaultKeyStore
from shared.adapters.published_blobs import PublicBlobs
from shared.bootstrap import Platform
from shared.decisions import chain
from shared.decisions import consortium as rules
from shared.naming import KEY_KINDS, key_name, scale_set_name
from shared.ports.keys import KeyVersion
from shared.ports.scalesets import ScaleSetSpec
from shared.settings import Settings
from tools import azurite, ceremony
from tools.emulator import EmulatorHandle
from tools.harness.stack import FAST_EMULATOR, LocalStack
from tools.harness.wait import wait_until

MEMBERS = azurite.MEMBER_IDS
NEWCOMER = "bank-c"
OUTSIDER = "bank-d"
LEGAL = {"bank-c": "O=Bank C, L=Amsterdam, C=NL", "bank-d": "O=Bank D, L=Frankfurt, C=DE"}
T = TypeVar("T")


def _need(value: T | None, what: str) -> T:
    """``value``, which the stack built before must have given (a harness error otherwise)."""
    if value is None:
        raise RuntimeError(f"the stack has no {what}")
    return value


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class OwnVaultOnly:
    """A deployment's ``KeyStore`` that notes (in ``foreign``) every call naming a key outside its vault."""

    def __init__(self, inner: KeyVaultKeyStore, vault_url: str, member_id: str, foreign: list[str]):
        self.inner, self.vault, self.member_id, self.foreign = inner, vault_url.rstrip("/") + "/", member_id, foreign

    def _check(self, kid: str) -> None:
        if not kid.startswith(self.vault):
            self.foreign.append(f"{self.member_id} used {kid}")

    def sign(self, kid: str, digest: bytes) -> bytes:
        self._check(kid)
        return self.inner.sign(kid, digest)

    def verify(self, kid: str, digest: bytes, signature: bytes) -> bool:
        self._check(kid)
        return self.inner.verify(kid, digest, signature)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class Deployment:
    member_id: str
    values: dict[str, str]
    foreign: list[str]
    platform: Platform = field(init=False)

    def __post_init__(self) -> None:
        self.build()

    def build(self, **overrides: str) -> None:
        """A fresh deployment of this member (a new process): the same storage, vault and settings."""
        values = {**self.values, **overrides}
        self.platform = Platform(Settings(values))
        vault = values["AZURE_KEY_VAULT_URL"]
        self.platform.keys = OwnVaultOnly(  # type: ignore[assignment]
            KeyVaultKeyStore.from_settings(Settings(values)), vault, self.member_id, self.foreign
        )

    @property
    def consortium(self) -> Any:
        return self.platform.consortium

    @property
    def state(self) -> Any:
        return self.platform.state

    @cached_property
    def vault(self) -> KeyVaultKeyStore:
        """The member's own vault, as its operator (or a dishonest operator) uses it."""
        return KeyVaultKeyStore.from_settings(Settings(self.values))

    @cached_property
    def scalesets(self) -> ArmScaleSets:
        return ArmScaleSets.from_settings(Settings(self.values))

    @cached_property
    def public(self) -> PublicBlobs:
        return PublicBlobs.from_settings(self.values)

    @property
    def endpoint(self) -> str:
        return self.values["CONSORTIUM_PUBLIC_ENDPOINT"]

    def published(self) -> dict[str, bytes]:
        return {
            b.name: bytes(self.public.container.download_blob(b.name).readall())
            for b in self.public.container.list_blobs()
        }

    def unpublish(self, path: str) -> None:
        self.public.container.delete_blob(path)

    def tick(self) -> str:
        """One tick of its consortium service; what went wrong, if anything (a tick must not fail)."""
        try:
            self.consortium.tick()
        except Exception as error:  # a forgery that makes an honest tick raise is reported
            return f"tick raised {type(error).__name__}: {error}"
        return ""

    def governance(self) -> chain.Member | None:
        head = self.consortium.head()
        return head.document.member(self.member_id) if head else None


@dataclass
class Stack:
    root: Path
    handle: EmulatorHandle
    genesis: str
    deployments: dict[str, Deployment]
    foreign: list[str]
    seq: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, member_id: str) -> Deployment:
        return self.deployments[member_id]

    def tick(self, members: Iterable[str]) -> None:
        for m in members:
            problem = self[m].tick()
            if problem:
                raise RuntimeError(f"{m}: {problem}")

    def settle(self, members: Iterable[str], until: Callable[[], bool], what: str, timeout: float = 90) -> None:
        """Tick ``members`` until ``until()`` holds (in-process deployments move only when ticked)."""
        members = list(members)
        wait_until(what, until, timeout, every=0.05, between=lambda: self.tick(members), error=RuntimeError)


def _entry(deployment: Deployment, key: KeyVersion) -> dict[str, Any]:
    jwk = {"kty": "EC", "crv": "P-256", "x": str(key.public_jwk["x"]), "y": str(key.public_jwk["y"])}
    return {
        "member_id": deployment.member_id, "legal_name": LEGAL[deployment.member_id],
        "governance_key": {"kid": key.kid, "jwk": jwk}, "endpoint": deployment.endpoint,
    }  # fmt: skip


def apply(deployment: Deployment) -> str:
    """The member creates its governance key in its own vault and proposes its own admission."""
    name = key_name(deployment.member_id, "governance")
    key = deployment.vault.get_key(name) or deployment.vault.create_key(
        name, "EC", tags={"member_id": deployment.member_id, "kind": "governance"}
    )
    proposal_id = f"prop-admit-{deployment.member_id}"
    deployment.consortium.propose(rules.Proposal(
        proposal_id=proposal_id, kind=chain.Kind.ADMIT, member_id=deployment.member_id,
        entry=chain.Member.model_validate(_entry(deployment, key)), proposer=deployment.member_id,
        proposed_at=_now(),
    ))  # fmt: skip
    return proposal_id


@contextmanager
def local_stack(root: Path, *, say: Callable[[str], None] = print) -> Iterator[Stack]:
    """The local stack (``tools.harness.stack``, no hosts: each deployment runs in-process here), the
    ceremony, bank-c admitted, bank-d applied."""
    root.mkdir(parents=True, exist_ok=True)
    local = LocalStack.start(root, MEMBERS, hosts=False, emulator_config=FAST_EMULATOR)
    try:
        digest = local.values(MEMBERS[0])[ceremony.GENESIS_SETTING]
        say(f"ceremony: bank-a and bank-b founded genesis {digest[:16]}…")
        foreign: list[str] = []
        deployments = {}
        for m in MEMBERS:
            deployments[m] = Deployment(m, {**local.values(m), "AGREEMENT_TIMEOUT_SECONDS": "1"}, foreign)
        stack = Stack(root, local.emulator, digest, deployments, foreign)
        _admit_newcomer(stack, say)
        yield stack
    finally:
        local.stop()


def _admit_newcomer(stack: Stack, say: Callable[[str], None]) -> None:
    members = ("bank-a", "bank-b", NEWCOMER)
    started = time.monotonic()
    proposal_id = apply(stack[NEWCOMER])
    stack.settle(members, lambda: all(stack[m].consortium.head() is not None for m in members), "genesis followed")
    stack.tick(members)  # the founders read the applicant's head
    for founder in ("bank-a", "bank-b"):
        stack[founder].consortium.decide(proposal_id, "approve")

    def admitted() -> bool:
        heads = [stack[m].consortium.head() for m in members]
        return all(h is not None and h.version == 1 for h in heads)

    stack.settle(members, admitted, "bank-c admitted")
    head = stack[NEWCOMER].consortium.head()
    if head is None or head.document.member_ids != members:
        raise RuntimeError(f"{NEWCOMER} admitted, but version 1 lists {head and head.document.member_ids}")
    say(f"admission: {NEWCOMER} admitted in version 1 in {time.monotonic() - started:.1f} s, "
        f"signed by {', '.join(s.member_id for s in head.document.signatures)}")  # fmt: skip
    # every member's own scale set, created with its own identity in its own subscription
    for m in MEMBERS:
        d = stack[m]
        spec = ScaleSetSpec.from_template(d.values["SCALE_SET_TEMPLATE"], name=scale_set_name(m), location="westeurope",
                                          capacity=1, tags={"member_id": m})  # fmt: skip
        d.scalesets.begin_create_or_update(spec)
    for m in MEMBERS:
        wait_until(f"{m}'s scale set to be created", functools.partial(_scale_set_created, stack[m]), 30, every=0.1,
                   error=RuntimeError)  # fmt: skip


def _scale_set_created(d: Deployment) -> bool:
    found = d.scalesets.get(scale_set_name(d.member_id))
    return found is not None and found.provisioning_state == "Succeeded"


def follow_outsider(stack: Stack) -> None:
    """bank-d, the newcomer, follows the chain and applies (an applicant nobody approves)."""
    d = stack[OUTSIDER]
    d.build()
    apply(d)
    stack.settle([OUTSIDER], lambda: (h := d.consortium.head()) is not None and h.version == 1, "bank-d follows")
    d.tick()  # its head, now with its application, published
    stack.tick(m for m in MEMBERS if m != OUTSIDER)


def holdings(d: Deployment, attacker: str) -> dict[str, Any]:
    """What a forgery must not change in ``d``: chain, others' decisions, fork record, keys, scale set."""
    service = d.consortium
    stored = []
    for path in d.state.list_paths("chain/"):
        doc = d.state.read(path)
        stored.append((path, chain.document_hash(doc.body) if doc else None))
    heads = dict(service.memory.heads)
    decisions = {m: sorted(h.approvals.items()) for m, h in heads.items() if m != attacker}
    proposals = {
        pid: (p.proposer, p.kind.value, p.member_id)
        for pid, p in service.known_proposals(heads).items()
        if p.proposer != attacker
    }
    keys = {
        kind: [(v.kid, v.enabled) for v in d.vault.list_versions(key_name(d.member_id, kind))] for kind in KEY_KINDS
    }
    scale_set = d.scalesets.get(scale_set_name(d.member_id))
    return {
        "chain": stored, "decisions": decisions, "proposals": proposals, "fork": service.own().get("fork"),
        "keys": keys, "scale_set": (scale_set.capacity, scale_set.etag) if scale_set else None,
    }  # fmt: skip


def rejections(d: Deployment) -> set[str]:
    return set(d.state.list_paths("rejections/"))


def new_rejections(d: Deployment, before: set[str]) -> list[dict[str, Any]]:
    found = []
    for path in sorted(rejections(d) - before):
        doc = d.state.read(path)
        if doc is not None:
            found.append(doc.body)
    return found
