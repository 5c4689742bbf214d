"""Forgeries against the membership chain, each run against every honest member's deployment on the local stack.

The stack is built here, in-process, on free ports, as ``make up`` builds it: one Azurite serving a storage
account per member (bank-a..bank-d), the Azure emulator with an identity, a subscription and a vault per
member, each member's settings, and the founders' ceremony (bank-a and bank-b): ``tools.harness.stack``
without the hosts. Each member's deployment is ``Platform(Settings(its settings))`` with the real adapters.
bank-c is then admitted for real: it creates its governance key in its own vault, proposes its admission
through its own ``Consortium``, bank-a and bank-b decide ``approve`` through theirs, and every deployment
ticks until all three hold
version 1. bank-d stays outside: a newcomer that applied and was never approved.

Then every attack of issue 15's list is run, each by one dishonest party that writes only into its own
storage account (its own ``consortium-public`` container, its own queues) or calls with its own
identity, and each honest deployment ticks after it. For each (forgery, honest deployment):

- **accepted**: the deployment's verified chain, its view of another member's decisions (the approvals
  and proposals it holds from members other than the attacker), its fork record, its keys or its scale
  set changed because of the forgery;
- **refused**: nothing of that changed and the reason was recorded (a new record under ``rejections/``
  in its own storage naming the source, the fork report naming who signed both, the rejection of the
  queue message, or the emulator's 403).

After each attack the attacker puts its container back as it was and publishes its genuine head again
(with a higher ``seq``), so the next attack starts from a clean consortium. The honest deployments'
Key Vault clients are wrapped to note any call to a key outside their own vault: "the app never
tries" is that list staying empty.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
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
from shared.errors import ControlPlaneError, ForbiddenError
from shared.naming import KEY_KINDS, key_name, scale_set_name
from shared.ports.keys import KeyVersion
from shared.ports.scalesets import ScaleSetSpec
from shared.services import onboarding as ob
from shared.services import rotation
from shared.services.consortium import HEAD, SELF, chain_path
from shared.services.records import update_record
from shared.settings import Settings
from tools import azurite, ceremony
from tools.emulator import EmulatorHandle
from tools.harness.stack import FAST_EMULATOR, LocalStack
from tools.harness.wait import wait_until

MEMBERS = azurite.MEMBER_IDS
NEWCOMER = "bank-c"
OUTSIDER = "bank-d"
LEGAL = {"bank-c": "O=Bank C, L=Amsterdam, C=NL", "bank-d": "O=Bank D, L=Frankfurt, C=DE"}

#: The rows of the table, in the order of issue 15's list.
KINDS = (
    "bad_signature", "missing_signature", "key_not_in_previous", "non_member", "too_few_members",
    "skipped_version", "repeated_version", "wrong_previous", "members_beyond_change", "unknown_fields",
    "non_canonical", "replayed_old_version", "genesis_not_pinned", "fork", "key_named_like_another",
    "asked_to_sign_for_another", "garbage_oversize_truncated", "onboarding_for_another", "cross_identity_403",
)  # fmt: skip


T = TypeVar("T")


def _need(value: T | None, what: str) -> T:
    """``value``, which the stack built before must have given (a harness error otherwise)."""
    if value is None:
        raise RuntimeError(f"the stack has no {what}")
    return value


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the honest deployments' Key Vault client: notes any key outside its own vault -------------------


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


# --- one member's deployment ---------------------------------------------------------------------


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


# --- the stack -----------------------------------------------------------------------------------


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


# --- what an honest deployment holds -------------------------------------------------------------


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


# --- the tally -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    kind: str
    attacker: str
    target: str
    variant: str
    accepted: bool
    recorded: bool
    detail: str = ""


@dataclass
class Tally:
    results: list[Result] = field(default_factory=list)

    @property
    def tried(self) -> int:
        return len(self.results)

    @property
    def accepted(self) -> list[Result]:
        return [r for r in self.results if r.accepted]

    @property
    def unrecorded(self) -> list[Result]:
        return [r for r in self.results if not r.accepted and not r.recorded]

    def by_kind(self) -> dict[str, tuple[int, int, int]]:
        rows: dict[str, list[int]] = {k: [0, 0, 0] for k in KINDS}
        for r in self.results:
            row = rows.setdefault(r.kind, [0, 0, 0])
            row[0] += 1
            row[1] += r.accepted
            row[2] += (not r.accepted) and r.recorded
        return {k: (v[0], v[1], v[2]) for k, v in rows.items()}

    def table(self) -> str:
        lines = [f"  {'attack':28} {'tried':>6} {'accepted':>9} {'refused+recorded':>17}"]
        for kind, (tried, accepted, recorded) in self.by_kind().items():
            lines.append(f"  {kind:28} {tried:6d} {accepted:9d} {recorded:17d}")
        lines.append(f"  {'total':28} {self.tried:6d} {len(self.accepted):9d} "
                     f"{sum(r.recorded and not r.accepted for r in self.results):17d}")  # fmt: skip
        return "\n".join(lines)


# --- the dishonest party's tools -----------------------------------------------------------------


class Attacker:
    """What a dishonest member can do: write its own container, sign with its own vault's keys."""

    def __init__(self, stack: Stack, member_id: str):
        self.stack, self.d = stack, stack[member_id]
        self.member_id = member_id

    @property
    def base(self) -> chain.Trusted:
        head = self.d.consortium.head()
        trusted: chain.Trusted = _need(head, f"{self.member_id}'s verified chain")
        return trusted

    def kid(self) -> str:
        """The kid its chain entry lists, or (an applicant) the key its application carries."""
        entry = self.base.document.member(self.member_id)
        if entry is not None:
            return entry.governance_key.kid
        key = self.d.vault.get_key(key_name(self.member_id, "governance"))
        key = _need(key, "key")
        return key.kid

    def sign(self, document: Mapping[str, Any], kid: str | None = None, as_member: str | None = None) -> dict[str, str]:
        kid = kid or self.kid()
        sig = chain.b64u(self.d.vault.sign(kid, bytes.fromhex(chain.document_hash(document))))
        return {"member_id": as_member or self.member_id, "kid": kid, "sig": sig}

    def genuine_head(self) -> dict[str, Any]:
        return dict(json.loads(self.d.published()[HEAD]))

    def head(self, changes: Mapping[str, Any] | None = None, *, kid: str | None = None) -> bytes:
        """Its head with ``changes``, a ``seq`` above any it published, signed with its own key ``kid``."""
        body = {k: v for k, v in self.genuine_head().items() if k != "sig"}
        body.update(changes or {})
        seq = max(self.stack.seq.get(self.member_id, 0), int(body.get("seq", 0))) + 1
        self.stack.seq[self.member_id] = seq
        body.update(seq=seq, updated_at=_now())
        kid = kid or str(body["kid"])
        body["sig"] = chain.b64u(self.d.vault.sign(kid, hashlib.sha256(rules.head_signing_bytes(body)).digest()))
        return chain.canonical(body)

    def claim(self, version: int, digest: str) -> bytes:
        return self.head({"chain": {"version": version, "hash": digest}})

    def restore(self, saved: Mapping[str, bytes]) -> None:
        """Its container back as it was, and its genuine head again with a higher seq."""
        current = self.d.published()
        for path in current:
            if path not in saved:
                self.d.unpublish(path)
        for path, data in saved.items():
            if path != HEAD and current.get(path) != data:
                self.d.public.put(path, data)
        if HEAD in saved:
            self.d.public.put(HEAD, saved[HEAD])
            body = {k: v for k, v in json.loads(saved[HEAD]).items() if k != "sig"}
            seq = max(self.stack.seq.get(self.member_id, 0), int(body.get("seq", 0))) + 1
            self.stack.seq[self.member_id] = seq
            body.update(seq=seq, updated_at=_now())
            body["sig"] = chain.b64u(
                self.d.vault.sign(str(body["kid"]), hashlib.sha256(rules.head_signing_bytes(body)).digest())
            )
            self.d.public.put(HEAD, chain.canonical(body))
            # its own deployment carries on above that seq
            update_record(self.d.state, SELF, lambda own: {**own, "seq": seq})


@dataclass
class Forgery:
    """One forgery published by ``attacker`` in its own container: files, then a head (bytes or None)."""

    kind: str
    attacker: str
    variant: str
    files: Callable[[Attacker], dict[str, bytes]]
    head: Callable[[Attacker], bytes | None]
    #: A substring every honest target's new rejection record must carry (``version 2 from bank-c``).
    expect: str
    #: Whom to run it against (default: every member but the attacker).
    targets: tuple[str, ...] | None = None


_counter = iter(range(1, 1_000_000))


def _pid() -> str:
    return f"prop-forged-{next(_counter)}-{secrets.token_hex(3)}"


def _changes(stack: Stack, attacker: str) -> list[tuple[str, dict[str, str], dict[str, Any] | None]]:
    """Change kinds the attacker can put in a version 2: (label, change, entry)."""
    members = [m for m in MEMBERS if m != OUTSIDER]
    out: list[tuple[str, dict[str, str], dict[str, Any] | None]] = []
    for victim in members:
        if victim != attacker:
            out.append((f"remove {victim}", {"kind": "remove", "member_id": victim, "proposal_id": _pid()}, None))
    base = stack[attacker].consortium.head()
    base = _need(base, "base")
    own = base.document.member(attacker)
    if own is not None:
        entry = own.model_dump(mode="json", exclude_none=True)
        moved = {**entry, "endpoint": f"{entry['endpoint']}/moved{next(_counter)}"}
        out.append((f"rotate {attacker}", {"kind": "rotate", "member_id": attacker, "proposal_id": _pid()}, moved))
        out.append((f"leave {attacker}", {"kind": "leave", "member_id": attacker, "proposal_id": _pid()}, None))
    outsider = stack[OUTSIDER].vault.get_key(key_name(OUTSIDER, "governance"))
    if outsider is not None:
        out.append((f"admit {OUTSIDER}", {"kind": "admit", "member_id": OUTSIDER, "proposal_id": _pid()},
                     _entry(stack[OUTSIDER], outsider)))  # fmt: skip
    return out


def _version2(a: Attacker, change: dict[str, str], entry: dict[str, Any] | None) -> dict[str, Any]:
    return chain.unsigned_next(a.base, change, issued_at=_now(), entry=entry)


def _publish_version(
    kind: str, attacker: str, variant: str, build: Callable[[Attacker], dict[str, Any] | bytes], *,
    path_version: int = 2, claim_version: int = 2, expect: str | None = None, targets: tuple[str, ...] | None = None,
) -> Forgery:  # fmt: skip
    """A forged document at ``chain/{path_version}`` and a head claiming ``claim_version`` with its hash."""
    made: dict[str, bytes] = {}

    def files(a: Attacker) -> dict[str, bytes]:
        built = build(a)
        data = built if isinstance(built, bytes) else chain.published_bytes(built)
        made["data"] = data
        return {chain_path(path_version): data}

    def head(a: Attacker) -> bytes:
        try:
            digest = chain.document_hash(json.loads(made["data"]))
        except (ValueError, chain.ChainError, AttributeError):
            digest = hashlib.sha256(made["data"]).hexdigest()
        return a.claim(claim_version, digest)

    return Forgery(kind, attacker, variant, files, head, expect or f"version {path_version} from {attacker}", targets)


def _flip(sig: str) -> str:
    raw = bytearray(chain._b64u_decode(sig))
    raw[5] ^= 0x40
    return chain.b64u(bytes(raw))


# --- the forgeries, kind by kind -----------------------------------------------------------------

MEMBER_ATTACKERS = ("bank-a", "bank-b", "bank-c")


def _others(member_id: str) -> list[str]:
    return [m for m in MEMBER_ATTACKERS if m != member_id]


def _signed_by(
    kind: str, attacker: str, variant: str, change: dict[str, str], entry: dict[str, Any] | None,
    signatures: Callable[[Attacker, dict[str, Any]], list[dict[str, str]]],
    edit: Callable[[Attacker, dict[str, Any]], dict[str, Any]] = lambda _a, doc: doc,
) -> Forgery:  # fmt: skip
    """A version 2 that applies ``change``, edited by ``edit``, carrying ``signatures``."""

    def build(a: Attacker) -> dict[str, Any]:
        doc = edit(a, _version2(a, change, entry))
        return {**doc, "signatures": sorted(signatures(a, doc), key=lambda s: (s["member_id"], s["kid"]))}

    return _publish_version(kind, attacker, variant, build)


def _listed_kid(a: Attacker, member_id: str) -> str:
    entry = a.base.document.member(member_id)
    entry = _need(entry, "entry")
    return entry.governance_key.kid


def _own_key(stack: Stack, owner: str, name: str) -> KeyVersion:
    """A key named ``name`` in ``owner``'s own vault (created there if it is not)."""
    vault = stack[owner].vault
    return vault.get_key(name) or vault.create_key(name, "EC", tags={"made_by": owner})


def bad_signature(stack: Stack) -> list[Forgery]:
    out = []
    for x in MEMBER_ATTACKERS:
        for label, change, entry in _changes(stack, x)[:2]:

            def flipped(a: Attacker, doc: dict[str, Any]) -> list[dict[str, str]]:
                s = a.sign(doc)
                return [{**s, "sig": _flip(s["sig"])}]

            out.append(_signed_by("bad_signature", x, f"{label}: its own signature altered", change, entry, flipped))
        y = _others(x)[0]

        def random_for(a: Attacker, doc: dict[str, Any], y: str = y) -> list[dict[str, str]]:
            return [a.sign(doc), {"member_id": y, "kid": _listed_kid(a, y), "sig": chain.b64u(secrets.token_bytes(64))}]

        label, change, entry = _changes(stack, x)[0]
        out.append(
            _signed_by("bad_signature", x, f"{label}: {y}'s listed key, random bytes", change, entry, random_for)
        )
    return out


def missing_signature(stack: Stack) -> list[Forgery]:
    out = []
    for x in MEMBER_ATTACKERS:
        changes = _changes(stack, x)
        label, change, entry = changes[0]
        out.append(_signed_by("missing_signature", x, f"{label}: no signatures", change, entry, lambda _a, _d: []))

        def no_sig(a: Attacker, doc: dict[str, Any]) -> list[dict[str, str]]:
            s = a.sign(doc)
            return [{"member_id": s["member_id"], "kid": s["kid"]}]

        out.append(_signed_by("missing_signature", x, f"{label}: a signature without sig", change, entry, no_sig))
        admit = next(c for c in changes if c[0].startswith("admit"))

        def without_newcomer(a: Attacker, doc: dict[str, Any]) -> list[dict[str, str]]:
            return [a.sign(doc)]  # the newcomer's own signature, which an admit needs, is missing

        out.append(_signed_by("missing_signature", x, f"{admit[0]} without {OUTSIDER}'s signature", admit[1],
                              admit[2], without_newcomer))  # fmt: skip
    return out


def key_not_in_previous(stack: Stack) -> list[Forgery]:
    out = []
    for x in MEMBER_ATTACKERS:
        for n, (label, change, entry) in enumerate(_changes(stack, x)[:2]):
            claimed = x if n == 0 else _others(x)[0]
            fresh = _own_key(stack, x, f"{x}-forged-{n}")

            def new_key(
                a: Attacker, doc: dict[str, Any], kid: str = fresh.kid, claimed: str = claimed
            ) -> list[dict[str, str]]:
                return [a.sign(doc), a.sign(doc, kid, as_member=claimed)]

            out.append(_signed_by("key_not_in_previous", x, f"{label}: a new key of {x}'s vault, as {claimed}",
                                  change, entry, new_key))  # fmt: skip
    return out


def non_member(stack: Stack) -> list[Forgery]:
    out = []
    # the outsider alone, from its own container (an applicant's head carries its key)
    for label, change, entry in _changes(stack, OUTSIDER):
        out.append(_signed_by("non_member", OUTSIDER, f"{label}: signed by {OUTSIDER} only", change, entry,
                              lambda a, doc: [a.sign(doc)]))  # fmt: skip
    # a member publishes a version that counts the outsider's signature
    for x in MEMBER_ATTACKERS:
        label, change, entry = _changes(stack, x)[0]

        def with_outsider(a: Attacker, doc: dict[str, Any]) -> list[dict[str, str]]:
            return [a.sign(doc), Attacker(a.stack, OUTSIDER).sign(doc)]

        out.append(_signed_by("non_member", x, f"{label}: {x} and {OUTSIDER}", change, entry, with_outsider))
    return out


def too_few_members(stack: Stack) -> list[Forgery]:
    out = []
    for x in MEMBER_ATTACKERS:
        for label, change, entry in _changes(stack, x):

            def alone(
                a: Attacker, doc: dict[str, Any], admit: bool = change["kind"] == "admit"
            ) -> list[dict[str, str]]:
                return [a.sign(doc), *([Attacker(a.stack, OUTSIDER).sign(doc)] if admit else [])]

            out.append(_signed_by("too_few_members", x, f"{label}: 1 of the 2 needed", change, entry, alone))
    return out


def skipped_version(stack: Stack) -> list[Forgery]:
    out = []
    for x in MEMBER_ATTACKERS:
        for version in (3, 9, 2**40):
            label, change, entry = _changes(stack, x)[0]

            def skip(_a: Attacker, doc: dict[str, Any], version: int = version) -> dict[str, Any]:
                return {**doc, "version": version}

            out.append(_signed_by("skipped_version", x, f"{label} as version {version}", change, entry,
                                  lambda a, doc: [a.sign(doc)], skip))  # fmt: skip
    return out


def repeated_version(stack: Stack) -> list[Forgery]:
    out = []
    for x in MEMBER_ATTACKERS:
        label, change, entry = _changes(stack, x)[0]

        def again(a: Attacker, doc: dict[str, Any]) -> dict[str, Any]:
            return {**doc, "version": 1, "previous": a.d.consortium.verified()[0].hash}

        out.append(_signed_by("repeated_version", x, f"{label} numbered 1 again, after version 1", change, entry,
                              lambda a, doc: [a.sign(doc)], again))  # fmt: skip

        def rival_one(a: Attacker, change: dict[str, str] = change) -> dict[str, Any]:
            genesis = a.d.consortium.verified()[0]
            doc = chain.unsigned_next(
                genesis,
                {**change, "kind": "rotate", "member_id": "bank-a"},
                issued_at=_now(),
                entry={**_entry_of(genesis, "bank-a"), "endpoint": a.d.endpoint + "/rival"},
            )
            return {**doc, "signatures": [a.sign(doc)]}

        out.append(_publish_version("repeated_version", x, "another version 1 in place of version 1", rival_one,
                                    path_version=1, claim_version=1))  # fmt: skip
    return out


def _entry_of(trusted: chain.Trusted, member_id: str) -> dict[str, Any]:
    entry = trusted.document.member(member_id)
    entry = _need(entry, "entry")
    return entry.model_dump(mode="json", exclude_none=True)


def wrong_previous(stack: Stack) -> list[Forgery]:
    out = []
    for x in MEMBER_ATTACKERS:
        for what in ("random", "genesis", "altered"):
            label, change, entry = _changes(stack, x)[0]

            def previous(a: Attacker, doc: dict[str, Any], what: str = what) -> dict[str, Any]:
                value = {"random": secrets.token_hex(32), "genesis": a.d.consortium.verified()[0].hash,
                         "altered": ("0" if a.base.hash[0] != "0" else "1") + a.base.hash[1:]}[what]  # fmt: skip
                return {**doc, "previous": value}

            out.append(_signed_by("wrong_previous", x, f"{label}, previous: {what}", change, entry,
                                  lambda a, doc: [a.sign(doc)], previous))  # fmt: skip
    return out


def members_beyond_change(stack: Stack) -> list[Forgery]:
    out = []
    for x in MEMBER_ATTACKERS:
        for label, change, entry in _changes(stack, x):
            y = next(m for m in _others(x) if m != change["member_id"])

            def beyond(a: Attacker, doc: dict[str, Any], y: str = y, kind: str = change["kind"]) -> dict[str, Any]:
                members = [dict(m) for m in doc["members"]]
                if kind == "leave":  # the leaver stays listed
                    members = sorted([*members, _entry_of(a.base, a.member_id)], key=lambda m: m["member_id"])
                else:  # and one more member's endpoint moved
                    members = [{**m, "endpoint": m["endpoint"] + "/hijacked"} if m["member_id"] == y else m
                               for m in members]  # fmt: skip
                return {**doc, "members": members}

            out.append(_signed_by("members_beyond_change", x, f"{label}, and {y} changed too", change, entry,
                                  lambda a, doc: [a.sign(doc)], beyond))  # fmt: skip
    return out


def _applying(
    edit: Callable[[dict[str, Any]], dict[str, Any]],
) -> Callable[[Attacker, dict[str, Any]], dict[str, Any]]:
    return lambda _a, doc: edit(doc)


def unknown_fields(stack: Stack) -> list[Forgery]:
    out = []
    edits: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "top-level votes": lambda doc: {**doc, "votes": ["bank-a", "bank-b"]},
        "member role": lambda doc: {**doc, "members": [{**doc["members"][0], "role": "admin"}, *doc["members"][1:]]},
        "change approved_by": lambda doc: {**doc, "change": {**doc["change"], "approved_by": ["bank-a", "bank-b"]}},
    }
    for x in MEMBER_ATTACKERS:
        for what, edit in edits.items():
            label, change, entry = _changes(stack, x)[0]
            out.append(_signed_by("unknown_fields", x, f"{label}, {what}", change, entry,
                                  lambda a, doc: [a.sign(doc)], _applying(edit)))  # fmt: skip
    return out


def non_canonical(stack: Stack) -> list[Forgery]:
    out = []
    forms: dict[str, Callable[[dict[str, Any]], bytes]] = {
        "indented": lambda doc: json.dumps(doc, indent=1).encode(),
        "keys unsorted": lambda doc: json.dumps(dict(reversed(list(doc.items()))), separators=(",", ":")).encode(),
        "trailing newline": lambda doc: chain.published_bytes(doc) + b"\n",
        "a key twice": lambda doc: chain.published_bytes(doc)[:-1] + b',"version":2}',
    }
    for x in MEMBER_ATTACKERS:
        for what, form in forms.items():
            label, change, entry = _changes(stack, x)[0]

            def build(a: Attacker, change: dict[str, str] = change, entry: Any = entry, form: Any = form) -> bytes:
                doc = _version2(a, change, entry)
                return bytes(form({**doc, "signatures": [a.sign(doc)]}))

            out.append(_publish_version("non_canonical", x, f"{label}, {what}", build))
    return out


def replayed_old_version(stack: Stack) -> list[Forgery]:
    out = []
    for x in MEMBER_ATTACKERS:
        for old in (0, 1):

            def replay(a: Attacker, old: int = old) -> dict[str, Any]:
                return dict(a.d.consortium.verified()[old].raw)

            out.append(_publish_version("replayed_old_version", x, f"version {old} replayed as version 2", replay))
        out.append(_publish_version("replayed_old_version", x, "version 0 replayed as version 1",
                                    lambda a: dict(a.d.consortium.verified()[0].raw), path_version=1,
                                    claim_version=1))  # fmt: skip
    return out


def _forged_genesis(stack: Stack, x: str, how: str) -> bytes:
    a = Attacker(stack, x)
    genuine = dict(a.d.consortium.verified()[0].raw)
    if how == "its own":  # a genesis of the attacker alone, signed by it: valid, but not the one given
        listed = a.base.document.member(x)
        key = _own_key(stack, x, key_name(x, "governance"))
        own = listed.model_dump(mode="json", exclude_none=True) if listed else _entry(a.d, key)
        unsigned = chain.unsigned_genesis(genuine["consortium"], [own], convener=x, issued_at=_now())
        return chain.published_bytes({**unsigned, "signatures": [a.sign(unsigned)]})
    if how == "renamed":  # the founders' genesis with a legal name changed (their signatures kept)
        city = {"bank-a": "London", "bank-b": "Paris", "bank-c": "Amsterdam"}.get(x, "Frankfurt")
        members = [{**m, "legal_name": f"O=Bank Z, L={city}, C=GB"} if i == 0 else m
                   for i, m in enumerate(genuine["members"])]  # fmt: skip
        return chain.published_bytes({**genuine, "members": members})
    if how == "another date":  # the same founders, another issued_at, signed by the attacker alone
        unsigned = {**genuine, "issued_at": _now(), "signatures": []}
        return chain.published_bytes({**unsigned, "signatures": [a.sign(unsigned)]})
    # the genuine genesis, not in canonical form (indented by each attacker its own way: one record each)
    return json.dumps(genuine, indent=1 + MEMBERS.index(x)).encode()


GENESIS_FORMS = ("its own", "renamed", "another date", "indented")


def genesis_against_newcomer(stack: Stack, tally: Tally, per_kind: int | None) -> None:
    """A genesis that is not the pinned one, offered to a newcomer introduced only to the attacker."""
    d = stack[OUTSIDER]
    urls = json.loads(d.values["CONSORTIUM_PEER_READ_URLS"])
    cases = [(x, how) for how in GENESIS_FORMS for x in MEMBER_ATTACKERS]
    for x, how in cases[:per_kind]:
        a = Attacker(stack, x)
        saved = a.d.published()
        d.build(CONSORTIUM_PEER_READ_URLS=json.dumps({x: urls[x]}))  # a fresh newcomer, given x's endpoint
        before, seen = holdings(d, x), rejections(d)
        forged = _forged_genesis(stack, x, how)
        a.d.public.put(chain_path(0), forged)
        problem = d.tick()
        after = holdings(d, x)
        changed = [k for k in after if after[k] != before[k]]
        recorded = any(f"from {x}" in r["message"] for r in new_rejections(d, seen)) and not problem
        tally.results.append(Result("genesis_not_pinned", x, OUTSIDER, f"newcomer offered {how} genesis",
                                    bool(changed), recorded, problem or ", ".join(changed)))  # fmt: skip
        a.restore(saved)
    d.build()


def genesis_against_members(stack: Stack) -> list[Forgery]:
    out = []
    for x in (*MEMBER_ATTACKERS, OUTSIDER):
        for how in GENESIS_FORMS[:2]:

            def files(a: Attacker, how: str = how) -> dict[str, bytes]:
                return {chain_path(0): _forged_genesis(a.stack, a.member_id, how)}

            def head(a: Attacker) -> bytes:
                forged = a.d.published()[chain_path(0)]
                try:
                    digest = chain.document_hash(json.loads(forged))
                except ValueError:
                    digest = hashlib.sha256(forged).hexdigest()
                return a.claim(0, digest)

            out.append(Forgery("genesis_not_pinned", x, f"head names {how} genesis", files, head, f"from {x}"))
    return out


def key_named_like_another(stack: Stack) -> list[Forgery]:
    out = []
    for x in (*MEMBER_ATTACKERS, OUTSIDER):
        y = next(m for m in MEMBER_ATTACKERS if m != x)
        impostor = _own_key(stack, x, key_name(y, "governance"))
        label, change, entry = _changes(stack, x)[0]

        def as_y(a: Attacker, doc: dict[str, Any], y: str = y, kid: str = impostor.kid) -> list[dict[str, str]]:
            return [a.sign(doc), a.sign(doc, kid, as_member=y)]

        out.append(_signed_by("key_named_like_another", x, f"{label}: signed as {y} with {x}'s {y}-governance",
                              change, entry, as_y))  # fmt: skip

        def head_as_y(a: Attacker, y: str = y, kid: str = impostor.kid) -> bytes:
            return a.head({"member_id": y, "kid": kid, "approvals": {"prop-anything": "approve"}}, kid=kid)

        out.append(Forgery("key_named_like_another", x, f"a head naming {y}, signed with {x}'s {y}-governance",
                           lambda _a: {}, head_as_y, f"head of {x}"))  # fmt: skip

        def own_head_other_key(a: Attacker, kid: str = impostor.kid) -> bytes:
            return a.head({"kid": kid, "approvals": {"prop-anything-else": "reject"}}, kid=kid)

        out.append(Forgery("key_named_like_another", x, f"its own head signed with its {y}-governance",
                           lambda _a: {}, own_head_other_key, f"head of {x}"))  # fmt: skip
    return out


def garbage(stack: Stack) -> list[Forgery]:
    out = []
    for x in (*MEMBER_ATTACKERS, OUTSIDER):

        def junk(a: Attacker) -> bytes:
            return b"\x00\xffgarbage " + a.member_id.encode() + secrets.token_bytes(8)

        def truncated(a: Attacker) -> bytes:
            whole = a.head({"approvals": {f"prop-{secrets.token_hex(3)}": "approve"}})
            return whole[: len(whole) // 2]

        def oversize_head(a: Attacker) -> bytes:
            return b'{"member_id":"' + a.member_id.encode() + b'","pad":"' + b"x" * (rules.MAX_HEAD_BYTES
                   + secrets.randbelow(4096)) + b'"}'  # fmt: skip

        for what, make in (("garbage", junk), ("truncated", truncated), ("oversize", oversize_head)):
            out.append(Forgery("garbage_oversize_truncated", x, f"{what} head.json", lambda _a: {},
                               make, f"head of {x}"))  # fmt: skip

        def chain_junk(a: Attacker) -> bytes:
            return b"\x00\xffnot a version " + secrets.token_bytes(8)

        def chain_truncated(a: Attacker) -> bytes:
            doc = _version2(a, *_changes(a.stack, a.member_id)[0][1:])
            whole = chain.published_bytes({**doc, "signatures": [a.sign(doc)]})
            return whole[: len(whole) - 40]

        def chain_oversize(a: Attacker) -> bytes:
            return b'{"pad":"' + b"x" * (chain.MAX_DOCUMENT_BYTES + secrets.randbelow(4096)) + b'"}'

        for what, make in (("garbage", chain_junk), ("truncated", chain_truncated), ("oversize", chain_oversize)):
            out.append(_publish_version("garbage_oversize_truncated", x, f"{what} chain/00000002.json",
                                        make))  # fmt: skip
    return out


def fork_forgeries(stack: Stack) -> list[Forgery]:
    """bank-a and bank-b each sign a second version 1 with their own keys; one of them publishes it."""
    out = []
    alternatives = ("rotate bank-a", "rotate bank-b", f"admit {OUTSIDER}")
    for what in alternatives:
        for publisher in ("bank-b", "bank-a"):

            def build(a: Attacker, what: str = what) -> dict[str, Any]:
                genesis = a.d.consortium.verified()[0]
                kind, subject = what.split(" ")
                change = {"kind": kind, "member_id": subject, "proposal_id": _pid()}
                if kind == "rotate":
                    entry = {
                        **_entry_of(genesis, subject),
                        "endpoint": stack[subject].endpoint + f"/fork{next(_counter)}",
                    }
                else:
                    key = stack[OUTSIDER].vault.get_key(key_name(OUTSIDER, "governance"))
                    key = _need(key, "key")
                    entry = _entry(stack[OUTSIDER], key)
                doc = chain.unsigned_next(genesis, change, issued_at=_now(), entry=entry)
                signers = ["bank-a", "bank-b", *([OUTSIDER] if kind == "admit" else [])]
                sigs = [Attacker(a.stack, m).sign(doc, _listed_kid(Attacker(a.stack, m), m)
                                                  if m != OUTSIDER else None) for m in signers]  # fmt: skip
                return {**doc, "signatures": sorted(sigs, key=lambda s: (s["member_id"], s["kid"]))}

            out.append(_publish_version("fork", publisher, f"a second version 1 ({what}) published by {publisher}",
                                        build, path_version=1, claim_version=1,
                                        targets=(NEWCOMER, OUTSIDER)))  # fmt: skip
    return out


PUBLISHED: tuple[Callable[[Stack], list[Forgery]], ...] = (
    bad_signature, missing_signature, key_not_in_previous, non_member, too_few_members, skipped_version,
    repeated_version, wrong_previous, members_beyond_change, unknown_fields, non_canonical, replayed_old_version,
    genesis_against_members, key_named_like_another, garbage,
)  # fmt: skip


def _recorded_before(d: Deployment, data: Iterable[bytes]) -> bool:
    """The exact document was refused and recorded earlier (a record is kept once per document)."""
    from shared.services.consortium import PEER_REJECTIONS
    from shared.services.records import rejection_path

    for raw in data:
        candidates = [raw]
        try:
            candidates.append(chain.canonical(json.loads(raw)))
        except (ValueError, chain.ChainError):
            pass
        if any(d.state.read(rejection_path(PEER_REJECTIONS, c)) is not None for c in candidates):
            return True
    return False


def run_published(stack: Stack, forgery: Forgery, tally: Tally) -> None:
    a = Attacker(stack, forgery.attacker)
    targets = forgery.targets or tuple(m for m in MEMBERS if m != forgery.attacker)
    saved = a.d.published()
    before = {t: (holdings(stack[t], forgery.attacker), rejections(stack[t])) for t in targets}
    files = forgery.files(a)
    for path, data in files.items():
        a.d.public.put(path, data)
    head = forgery.head(a)
    if head is not None:
        a.d.public.put(HEAD, head)
    problems = {t: stack[t].tick() for t in targets}
    for t in targets:
        after = holdings(stack[t], forgery.attacker)
        changed = [k for k in after if after[k] != before[t][0][k] and not (forgery.kind == "fork" and k == "fork")]
        if forgery.kind == "fork":
            fork = after["fork"] or {}
            recorded = fork.get("version") == 1 and fork.get("signed_both") == ["bank-a", "bank-b"]
        else:
            found = new_rejections(stack[t], before[t][1])
            recorded = any(forgery.expect in r["message"] for r in found) or _recorded_before(
                stack[t], [*files.values(), *([head] if head else [])]
            )
        detail = problems[t] or ("changed " + ", ".join(changed) if changed else "")
        tally.results.append(Result(forgery.kind, forgery.attacker, t, forgery.variant, bool(changed),
                                    recorded and not problems[t], detail))  # fmt: skip
    a.restore(saved)
    for t in targets:
        if forgery.kind == "fork":  # its operator looked into the fork report; clear it for the next attack
            update_record(stack[t].state, SELF, lambda own: {k: v for k, v in own.items() if k != "fork"})
        stack[t].tick()


# --- messages on the attacker's own queues, and calls with its own identity -----------------------


def _deliver(d: Deployment, queue: str, body: str) -> tuple[str, str]:
    """Post ``body`` to the member's own ``queue`` and hand it to the handler, as the Functions host does."""
    d.platform.queues.send(queue, body)
    client = d.platform.queues.service.get_queue_client(queue)
    handlers: dict[str, Callable[[str], Any]] = {
        ob.APPROVALS: d.platform.onboarding.decide,
        ob.REQUESTS: d.platform.onboarding.intake,
        ob.STEP_QUEUES["keys"]: lambda raw: d.platform.onboarding.step(raw, "keys"),
        ob.STEP_QUEUES["propose"]: lambda raw: d.platform.onboarding.step(raw, "propose"),
        rotation.REQUESTS: lambda raw: d.platform.rotator.take_request(raw, 1),
    }
    outcome = ""
    for message in client.receive_messages(max_messages=32, visibility_timeout=30):
        try:
            outcome = str(getattr(handlers[queue](message.content), "action", "rejected"))
        except ControlPlaneError as error:
            outcome = f"raised {error}"
        client.delete_message(message)
    return queue, outcome


def _messages(asked: str, victim: str, proposal_id: str) -> list[tuple[str, str, str, str]]:
    """(kind, variant, queue, body): messages asking ``asked``'s deployment to act for ``victim``."""
    rid = f"req-{secrets.token_hex(4)}"
    return [
        ("asked_to_sign_for_another", f"approve as {victim}", ob.APPROVALS,
         json.dumps({"proposal_id": proposal_id, "decision": "approve", "member_id": victim})),
        ("asked_to_sign_for_another", f"reject as {victim}, with a signature", ob.APPROVALS,
         json.dumps({"proposal_id": proposal_id, "decision": "reject", "approver_id": victim, "signature": "AAAA"})),
        ("asked_to_sign_for_another", f"rotate {victim}'s keys", rotation.REQUESTS,
         json.dumps({"request_id": rid, "member_id": victim, "force": True})),
        ("asked_to_sign_for_another", f"create {victim}'s keys", ob.STEP_QUEUES["keys"],
         json.dumps({"request_id": rid, "member_id": victim, "step": "keys"})),
        ("asked_to_sign_for_another", f"propose {victim}'s admission", ob.STEP_QUEUES["propose"],
         json.dumps({"request_id": rid, "member_id": victim, "step": "propose"})),
        ("onboarding_for_another", f"onboard {victim}", ob.REQUESTS,
         json.dumps({"request_id": rid, "member_id": victim, "legal_name": f"O=Not {victim}, L=Paris, C=FR",
                     "region": "westeurope", "node_count": 2, "contact_email": "ops@attacker.example"})),
    ]  # fmt: skip


def victim_keys(d: Deployment, victim: str) -> list[str]:
    """The key versions named for ``victim`` in ``d``'s own vault."""
    return sorted(v.kid for kind in KEY_KINDS for v in d.vault.list_versions(key_name(victim, kind)))


def run_messages(stack: Stack, tally: Tally, per_kind: int | None) -> None:
    """Each deployment asked, on its own queues, to act for another member: it refuses and records it."""
    proposal_id = f"prop-admit-{OUTSIDER}"
    cases: list[tuple[str, str, tuple[str, str, str, str]]] = []
    for asked in MEMBERS:
        for victim in [m for m in MEMBERS if m != asked] + ["bank-z"]:
            cases.extend((asked, victim, m) for m in _messages(asked, victim, proposal_id))
    counts: Counter[str] = Counter()
    honest = list(MEMBERS)
    for asked, victim, (kind, variant, queue, body) in cases:
        if per_kind is not None and counts[kind] >= per_kind:
            continue
        counts[kind] += 1
        d = stack[asked]
        before = {t: holdings(stack[t], asked) for t in honest}
        own = d.consortium.own().get("approvals", {})
        seen = rejections(d)
        keys_before = victim_keys(d, victim)
        _, outcome = _deliver(d, queue, body)
        for t in honest:
            stack[t].tick()
        changed = [f"{t}: {k}" for t in honest for k, v in holdings(stack[t], asked).items() if v != before[t][k]]
        if d.consortium.own().get("approvals", {}) != own:
            changed.append(f"{asked}: its own decisions")
        if victim_keys(d, victim) != keys_before:
            changed.append(f"{asked}'s vault gained keys of {victim}")
        if d.state.read(f"members/{victim}.json") is not None:
            changed.append(f"{asked} holds a record of {victim}")
        recorded = any(r.get("queue") == queue for r in new_rejections(d, seen))
        tally.results.append(Result(kind, asked, asked, f"{variant} ({queue})", bool(changed), recorded,
                                    ", ".join(changed) or outcome))  # fmt: skip


def _intrude(stack: Stack, x: str, y: str, op: str) -> None:
    """``x``'s identity on ``y``'s vault or scale set (named by ``op``): raises what the emulator answers."""
    victim, mine = stack[y], stack[x].values
    if op == "scale":
        current = victim.scalesets.get(scale_set_name(y))
        current = _need(current, "current")
        theirs = {**mine, "AZURE_SUBSCRIPTION_ID": victim.values["AZURE_SUBSCRIPTION_ID"]}
        ArmScaleSets.from_settings(Settings(theirs)).set_capacity(scale_set_name(y), 0, etag=current.etag)
        return
    vault = KeyVaultKeyStore.from_settings(
        Settings({**mine, "AZURE_KEY_VAULT_URL": victim.values["AZURE_KEY_VAULT_URL"]})
    )
    if op == "sign":
        key = victim.vault.get_key(key_name(y, "governance"))
        key = _need(key, "key")
        vault.sign(key.kid, hashlib.sha256(b"forged by " + x.encode()).digest())
    else:
        vault.create_key(key_name(y, "governance"), "EC", tags={"member_id": y})


def run_cross_identity(stack: Stack, tally: Tally, per_kind: int | None) -> None:
    """One member's identity on another member's vault and scale set: the emulator answers 403."""
    cases = [(x, y, op) for x in MEMBERS for y in MEMBERS if x != y for op in ("sign", "create key", "scale")]
    for x, y, op in cases[:per_kind]:
        victim = stack[y]
        before = holdings(victim, x)
        try:
            _intrude(stack, x, y, op)
            refused, why = False, "the call succeeded"
        except ForbiddenError as error:
            refused, why = True, error.refusal.splitlines()[0][:120]
        changed = [k for k, v in holdings(victim, x).items() if v != before[k]]
        tally.results.append(Result("cross_identity_403", x, y, f"{op} as {x} on {y}'s", bool(changed) or not refused,
                                    refused, ", ".join(changed) or why))  # fmt: skip


# --- everything ----------------------------------------------------------------------------------


def run_attacks(stack: Stack, *, per_kind: int | None = None, say: Callable[[str], None] = print) -> Tally:
    """Every attack (at most ``per_kind`` forgeries of each kind), against every honest deployment."""
    tally = Tally()
    genesis_against_newcomer(stack, tally, per_kind)
    follow_outsider(stack)
    say(f"setup: {OUTSIDER} follows version 1 and applies; nobody approves it")
    for make in PUBLISHED:
        forgeries = make(stack)
        for forgery in forgeries[:per_kind]:
            run_published(stack, forgery, tally)
        say(f"  {make.__name__}: {min(len(forgeries), per_kind or len(forgeries))} forgeries")
    run_messages(stack, tally, per_kind)
    run_cross_identity(stack, tally, per_kind)
    for forgery in fork_forgeries(stack)[:per_kind]:
        run_published(stack, forgery, tally)
    return tally
