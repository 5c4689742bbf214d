"""Every forgery, kind by kind (issue 15's list): what a dishonest member can do (write its own container,
sign with its own vault's keys, post to its own queues) and each forged version, head or message it
makes that way.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.decisions import chain, corda_pki
from shared.decisions import consortium as rules
from shared.naming import key_name
from shared.ports.keys import KeyVersion
from shared.services import onboarding as ob
from shared.services import rotation
from shared.services.consortium import HEAD, SELF, chain_path
from shared.services.records import update_record
from tools.forgeries.deployments import MEMBERS, NEWCOMER, OUTSIDER, Stack, _entry, _need, _now

#: The rows of the table, in the order of issue 15's list.
KINDS = (
    "bad_signature", "missing_signature", "key_not_in_previous", "non_member", "too_few_members",
    "skipped_version", "repeated_version", "wrong_previous", "members_beyond_change", "unknown_fields",
    "non_canonical", "replayed_old_version", "genesis_not_pinned", "fork", "key_named_like_another",
    "asked_to_sign_for_another", "garbage_oversize_truncated", "onboarding_for_another", "cross_identity_403",
    "root_for_another_member", "parameters_by_minority", "parameters_epoch_not_stepping",
    "network_outside_parameters",
)  # fmt: skip


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


def _root_for(a: Attacker, victim: str) -> str:
    """A Corda root the attacker makes in its own vault (the only place it can sign) for ``victim``'s
    organisation: subject and name constraints are the victim's, the key is the attacker's."""
    vault = a.d.vault
    name = f"{a.member_id}-corda-root-forged"
    key = vault.get_key(name) or vault.create_key(name, "EC", tags={"made_by": a.member_id})
    legal_name = _need(a.base.document.member(victim), f"{victim}'s entry").legal_name
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    public_key = corda_pki.public_key_from_jwk(key.public_jwk)
    tbs = corda_pki.root_tbs(a.member_id, legal_name, public_key, serial=corda_pki.serial_for(key.kid), not_before=day)
    return corda_pki.encode(corda_pki.assemble(tbs, vault.sign(key.kid, hashlib.sha256(tbs).digest())))


def root_for_another_member(stack: Stack) -> list[Forgery]:
    """Contract v3: a member's chain entry carrying a Corda root that vouches for another member's
    organisation, so that its nodes could speak as that member; refused by every member whoever signs."""
    out = []
    for x in MEMBER_ATTACKERS:
        y = _others(x)[0]
        change = {"kind": "rotate", "member_id": x, "proposal_id": _pid()}

        def rooted(a: Attacker, doc: dict[str, Any], y: str = y) -> dict[str, Any]:
            members = [{**m, "corda_root": _root_for(a, y)} if m["member_id"] == a.member_id else m
                       for m in doc["members"]]  # fmt: skip
            return {**doc, "members": members}

        def own_entry(x: str = x) -> dict[str, Any]:
            entry = _entry_of(_need(stack[x].consortium.head(), "base"), x)
            return {**entry, "endpoint": f"{entry['endpoint']}/rooted{next(_counter)}"}

        out.append(_signed_by("root_for_another_member", x, f"rotate {x}: a root of its own for {y}'s name", change,
                              own_entry(), lambda a, doc: [a.sign(doc)], rooted))  # fmt: skip
    return out


def _network(a: Attacker, step: int = 1) -> dict[str, Any]:
    """A new ``network`` ``step`` epochs past the trusted head's (1 is the rule), for parameters bytes the
    attacker made up, switching tomorrow."""
    before = a.base.raw.get("network")
    epoch = (int(before["epoch"]) if before else 0) + step
    switch = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    return {"epoch": epoch, "parameters_sha256": hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
            "switch_at": switch.strftime("%Y-%m-%dT%H:%M:%SZ")}  # fmt: skip


def _majority_with(a: Attacker, doc: Mapping[str, Any]) -> list[dict[str, str]]:
    """The attacker's signature and a colluding member's: a majority of the three, signing what the third
    member's deployment (and both colluders' own deployments) must still refuse."""
    accomplice = _others(a.member_id)[0]
    signatures = [a.sign(doc), Attacker(a.stack, accomplice).sign(doc, _listed_kid(a, accomplice))]
    return sorted(signatures, key=lambda s: s["member_id"])


def _parameters_version(a: Attacker, network: dict[str, Any]) -> dict[str, Any]:
    change = {"kind": "parameters", "member_id": a.member_id, "proposal_id": _pid()}
    return chain.unsigned_next(a.base, change, issued_at=_now(), network=network)


def parameters_by_minority(stack: Stack) -> list[Forgery]:
    """Contract v3: new network parameters (the next epoch, as the rule says) signed by one member alone."""
    out = []
    for x in MEMBER_ATTACKERS:

        def alone(a: Attacker) -> dict[str, Any]:
            doc = _parameters_version(a, _network(a))
            return {**doc, "signatures": [a.sign(doc)]}

        out.append(_publish_version("parameters_by_minority", x, f"parameters (next epoch) signed by {x} alone", alone))
    return out


def parameters_epoch_not_stepping(stack: Stack) -> list[Forgery]:
    """Contract v3: a ``parameters`` version signed by a majority (two colluding members) whose epoch does not
    step by one; refused by every deployment's one verification, the colluders' own included."""
    out = []
    for x in MEMBER_ATTACKERS:
        for step, what in ((2, "skipping an epoch"), (7, "jumping six epochs ahead")):

            def jumped(a: Attacker, step: int = step) -> dict[str, Any]:
                doc = _parameters_version(a, _network(a, step))
                return {**doc, "signatures": _majority_with(a, doc)}

            out.append(_publish_version("parameters_epoch_not_stepping", x, f"parameters {what}, signed by a majority",
                                        jumped))  # fmt: skip
    return out


def network_outside_parameters(stack: Stack) -> list[Forgery]:
    """Contract v3: a majority-signed version of another kind (a rotate) that changes ``network``."""
    out = []
    for x in MEMBER_ATTACKERS:

        def smuggled(a: Attacker) -> dict[str, Any]:
            entry = _entry_of(a.base, a.member_id)
            change = {"kind": "rotate", "member_id": a.member_id, "proposal_id": _pid()}
            moved = {**entry, "endpoint": f"{entry['endpoint']}/net{next(_counter)}"}
            doc = {**chain.unsigned_next(a.base, change, issued_at=_now(), entry=moved), "network": _network(a)}
            return {**doc, "signatures": _majority_with(a, doc)}

        out.append(_publish_version("network_outside_parameters", x, f"rotate {x} changing network, majority-signed",
                                    smuggled))  # fmt: skip
    return out


PUBLISHED: tuple[Callable[[Stack], list[Forgery]], ...] = (
    bad_signature, missing_signature, key_not_in_previous, non_member, too_few_members, skipped_version,
    repeated_version, wrong_previous, members_beyond_change, unknown_fields, non_canonical, replayed_old_version,
    genesis_against_members, key_named_like_another, garbage, root_for_another_member, parameters_by_minority,
    parameters_epoch_not_stepping, network_outside_parameters,
)  # fmt: skip


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
