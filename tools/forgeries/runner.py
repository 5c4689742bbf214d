"""Each forgery run against every honest deployment: published in the attacker's own container, posted
to its own queues or called with its own identity; each honest deployment ticks, and the tally counts
what was accepted and what was refused with a record.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.adapters.compute import ArmScaleSets
from shared.adapters.keyvault import KeyVaultKeyStore
from shared.decisions import chain
from shared.errors import ControlPlaneError, ForbiddenError
from shared.naming import KEY_KINDS, key_name, scale_set_name
from shared.services import onboarding as ob
from shared.services import rotation
from shared.services.consortium import HEAD, SELF, chain_path
from shared.services.records import update_record
from shared.settings import Settings
from tools.forgeries.catalogue import (
    GENESIS_FORMS,
    KINDS,
    MEMBER_ATTACKERS,
    PUBLISHED,
    Attacker,
    Forgery,
    _forged_genesis,
    _messages,
    fork_forgeries,
)
from tools.forgeries.deployments import (
    MEMBERS,
    OUTSIDER,
    Deployment,
    Stack,
    _need,
    follow_outsider,
    holdings,
    new_rejections,
    rejections,
)


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
