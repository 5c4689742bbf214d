"""The founders' genesis ceremony: one genesis that lists every founder, signed by each founder's own vault.

The consortium begins with version 0 of the membership chain (docs/contract.md, "The membership
chain"): it lists the founders and is signed by every one of them. No party may hold another's
key, so the ceremony is a sequence of steps in which each founder acts only through its own
deployment's settings: its own vault (its own identity; in the emulator its own principal, refused
with 403 anywhere else) and its own storage account. What passes between founders is public: entries
(public keys, endpoints), the unsigned draft, signatures, the signed genesis and its hash.

The steps, each a subcommand a founder's operator can run alone (``--member M`` picks its settings):

1. ``entry``   (each founder) finds its governance key ``{member}-governance`` in its own vault, or
   creates it there (EC P-256, non-exportable), and prints its chain entry: member id, legal name,
   the key's id and public JWK, and its endpoint (its ``CONSORTIUM_PUBLIC_ENDPOINT``);
2. ``draft``   (the convener) builds the one unsigned genesis from every founder's entry
   (``chain.unsigned_genesis``) and prints it with the hash every founder will sign;
3. ``sign``    (each founder) checks the draft lists it with the key its own vault holds, signs the
   draft's hash in its own vault (ES256, raw r||s, base64url) and prints the signature;
4. ``assemble`` (the convener) adds every signature (``chain.with_signatures``) and checks the result
   with ``chain.verify_genesis``: the genesis and its hash;
5. ``install`` (each founder) verifies the genesis against the hash it was told, stores it create-only
   as ``chain/00000000.json`` in its private ``consortium`` container and publishes its RFC 8785
   bytes at the same path in its ``consortium-public`` container.

Every deployment, founders and later members, is then given the hash as ``CONSORTIUM_GENESIS_HASH``.

**In Azure** each founder's operator runs the steps from a shell signed in (``az login``) as an
identity holding Key Vault Crypto Officer on its own vault, Storage Blob Data Contributor on its own
storage account (the private ``consortium`` container) and on its publication account's
``consortium-public`` container, on a machine that reaches the vault and the storage account through
their private endpoints (inside the member's network), with its deployment's settings exported
(``AZURE_CREDENTIAL=default``, ``AZURE_KEY_VAULT_URL``, ``AzureWebJobsStorage__blobServiceUri``,
``CONSORTIUM_PUBLIC_ENDPOINT``, ``CONSORTIUM_MEMBER_ID``) or in a file given with ``--settings``
(infra/README.md shows both). Only ``entry`` needs ``--legal-name`` (the local members' are known)::

    python -m tools.ceremony --member bank-a entry --legal-name "O=Bank A, L=London, C=GB" > bank-a.entry.json
    python -m tools.ceremony draft --convener bank-a bank-a.entry.json bank-b.entry.json > draft.json
    python -m tools.ceremony --member bank-a sign draft.json > bank-a.sig.json # each founder
    python -m tools.ceremony assemble draft.json bank-a.sig.json bank-b.sig.json > genesis.json
    python -m tools.ceremony --member bank-a install genesis.json --hash <hash> # each founder

then sets the hash on its Function App (``azd env set CONSORTIUM_GENESIS_HASH <hash>`` and
``azd provision``, or ``az functionapp config appsettings set ... CONSORTIUM_GENESIS_HASH=<hash>``).
The hash travels out of band (the founders read it to each other); a bank that joins later is given
it the same way.

**Locally** ``python -m tools.ceremony`` (what ``make up`` runs, before the hosts start) plays every
step for the founders bank-a and bank-b, each with its own ``.local/members/{id}/local.settings.json``,
writes ``CONSORTIUM_GENESIS_HASH`` into every member's settings file (bank-a..bank-d) and records the
genesis in ``.local/genesis.json``. It is idempotent: when a genesis is already stored (or recorded),
it is verified and installed where it is missing, and nothing is signed again; a stored genesis that
does not verify, differs between founders, or differs from the recorded one stops it with an error
that says where, and nothing is changed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

from shared.adapters.blob_state import CONTAINER as STATE_CONTAINER
from shared.adapters.blob_state import BlobStateStore
from shared.adapters.keyvault import KeyVaultKeyStore
from shared.adapters.published_blobs import PublicBlobs
from shared.adapters.storage import blob_service
from shared.decisions import chain
from shared.errors import ConflictError, ControlPlaneError
from shared.naming import key_name
from shared.ports.keys import KeyStore, KeyVersion
from shared.services import corda_root
from shared.services.consortium import chain_path
from shared.settings import Settings
from tools import azurite, member_settings
from tools.provision import PUBLIC_CONTAINER

ROOT = Path(__file__).resolve().parent.parent
CONSORTIUM = "credit-consortium"
#: The local founders, and the one who convenes the ceremony.
FOUNDERS = ("bank-a", "bank-b")
CONVENER = "bank-a"
#: The local members' legal names (Corda X.500 names; one non-ASCII, as real names are).
LEGAL_NAMES = {
    "bank-a": "O=Bank A, L=London, C=GB",
    "bank-b": "O=Banque Générale, L=Paris, C=FR",
    "bank-c": "O=Bank C, L=Frankfurt, C=DE",
    "bank-d": "O=Bank D, L=Amsterdam, C=NL",
}
GENESIS_SETTING = "CONSORTIUM_GENESIS_HASH"
GENESIS_PATH = chain_path(0)
_JSON = ContentSettings(content_type="application/json")


class CeremonyError(RuntimeError):
    """The ceremony cannot go on; the message names the founder, the place and the rule."""


def record_path(root: Path = ROOT) -> Path:
    return root / ".local" / "genesis.json"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Founder:
    """One founder acting through its own deployment's settings: its vault, its storage account."""

    member_id: str
    legal_name: str
    settings: Settings = field(repr=False)

    @cached_property
    def keys(self) -> KeyStore:
        return KeyVaultKeyStore.from_settings(self.settings)

    @cached_property
    def state(self) -> BlobStateStore:
        return BlobStateStore(blob_service(self.settings.values).get_container_client(STATE_CONTAINER))

    @cached_property
    def public(self) -> ContainerClient:
        """Its own ``consortium-public``, where the app publishes: locally in the state's account, in Azure the
        container ``CONSORTIUM_PUBLIC_ENDPOINT`` names, in the member's publication account."""
        return PublicBlobs.from_settings(self.settings.values).container

    @property
    def key_name(self) -> str:
        return key_name(self.member_id, "governance")

    def stored(self) -> dict[str, Any] | None:
        """The genesis in this founder's private ``consortium`` container, unverified, or None."""
        try:
            doc = self.state.read(GENESIS_PATH)
        except ValueError as error:  # not JSON at all
            where = f"{self.member_id}'s {STATE_CONTAINER} container at {GENESIS_PATH}"
            raise CeremonyError(f"{where} is not a JSON document ({error}): refusing to go on") from None
        if doc is not None and not isinstance(doc.body, dict):
            raise CeremonyError(
                f"{self.member_id}'s {STATE_CONTAINER} container at {GENESIS_PATH} is not a JSON object"
            )
        return doc.body if doc else None


def _jwk(key: KeyVersion) -> dict[str, str]:
    jwk = key.public_jwk
    return {"kty": "EC", "crv": "P-256", "x": str(jwk.get("x")), "y": str(jwk.get("y"))}


def governance_key(founder: Founder) -> tuple[KeyVersion, bool]:
    """The founder's governance key in its own vault, created there (EC P-256, non-exportable) unless an
    enabled one exists; and whether it was created now."""
    key = founder.keys.get_key(founder.key_name)
    if key is not None and key.enabled:
        if key.key_type != "EC" or key.public_jwk.get("crv") != "P-256":
            raise CeremonyError(
                f"{founder.member_id}: {founder.key_name} in its vault is {key.key_type} "
                f"{key.public_jwk.get('crv', '')}, not EC P-256"
            )
        return key, False
    tags = {"member_id": founder.member_id, "kind": "governance"}
    return founder.keys.create_key(founder.key_name, "EC", tags=tags), True


def entry(founder: Founder, key: KeyVersion) -> dict[str, Any]:
    """The founder's chain entry, checked against the chain's model (a bad endpoint or name is named here),
    with its own Corda root (contract v3: made in its own vault, stored in its own state first)."""
    endpoint = founder.settings.text("CONSORTIUM_PUBLIC_ENDPOINT")
    if not endpoint:
        raise CeremonyError(f"{founder.member_id}: CONSORTIUM_PUBLIC_ENDPOINT is not set")
    root = corda_root.ensure_root(
        founder.keys, founder.state, member_id=founder.member_id, legal_name=founder.legal_name, now=datetime.now(UTC)
    )
    raw = {
        "member_id": founder.member_id,
        "legal_name": founder.legal_name,
        "governance_key": {"kid": key.kid, "jwk": _jwk(key)},
        "endpoint": endpoint,
        "corda_root": root,
    }
    try:
        chain.Member.model_validate(raw)
    except ValueError as error:
        raise CeremonyError(f"{founder.member_id}: its entry is not a valid chain entry: {error}") from None
    return raw


def draft(
    entries: Sequence[Mapping[str, Any]], *, convener: str, consortium: str = CONSORTIUM, issued_at: str | None = None
) -> dict[str, Any]:
    """The one unsigned genesis listing every founder's entry, checked for shape."""
    if convener not in {e.get("member_id") for e in entries}:
        raise CeremonyError(f"the convener {convener} is not among the founders")
    unsigned = chain.unsigned_genesis(consortium, entries, convener=convener, issued_at=issued_at or _now())
    try:
        chain.parse(unsigned)
    except chain.ChainError as error:
        raise CeremonyError(f"the draft genesis is not a membership document: {error}") from None
    return unsigned


def sign(founder: Founder, unsigned: Mapping[str, Any]) -> dict[str, str]:
    """The founder's signature of ``unsigned``, made in its own vault; only if the draft is a genesis that
    lists this founder with the governance key its vault holds (it signs for itself, nothing else)."""
    try:
        document = chain.parse(unsigned)
    except chain.ChainError as error:
        raise CeremonyError(f"{founder.member_id}: the draft is not a membership document: {error}") from None
    if document.version != 0 or document.change.kind != chain.Kind.GENESIS:
        raise CeremonyError(f"{founder.member_id}: the draft is {document.label}, not a genesis")
    listed = document.member(founder.member_id)
    if listed is None:
        raise CeremonyError(f"{founder.member_id}: the draft does not list {founder.member_id}")
    kid = listed.governance_key.kid
    held = founder.keys.get_key(founder.key_name, kid.rstrip("/").rsplit("/", 1)[-1])
    if held is None or held.kid != kid or _jwk(held) != listed.governance_key.jwk.model_dump():
        raise CeremonyError(
            f"{founder.member_id}: the draft lists a governance key its own vault does not hold ({kid}); not signing"
        )
    digest = bytes.fromhex(chain.document_hash(unsigned))
    sig = chain.b64u(founder.keys.sign(kid, digest))
    if not chain.verify_signature(listed.governance_key.jwk, digest, sig):
        raise CeremonyError(f"{founder.member_id}: the vault's signature does not verify with the listed key")
    return {"member_id": founder.member_id, "kid": kid, "sig": sig}


def assemble(unsigned: Mapping[str, Any], signatures: Iterable[Mapping[str, str]]) -> tuple[dict[str, Any], str]:
    """The signed genesis and its hash, once ``chain.verify_genesis`` accepts it."""
    genesis = chain.with_signatures(unsigned, signatures)
    digest = chain.document_hash(genesis)
    try:
        chain.verify_genesis(digest, genesis)
    except chain.ChainError as error:
        raise CeremonyError(f"the assembled genesis does not verify: {error}") from None
    return genesis, digest


def install(founder: Founder, genesis: Mapping[str, Any], pinned: str) -> tuple[str, str]:
    """Store ``genesis`` create-only in the founder's private container and publish it in its public one.

    Returns what happened to each copy (``stored``/``present``, ``published``/``present``/``republished``).
    A different document already stored is refused: the founder already holds another genesis.
    """
    try:
        trusted = chain.verify_genesis(pinned, genesis)
    except chain.ChainError as error:
        raise CeremonyError(f"{founder.member_id}: the genesis does not verify against {pinned}: {error}") from None
    where = f"{founder.member_id}'s {STATE_CONTAINER} container at {GENESIS_PATH}"
    try:
        founder.state.create(GENESIS_PATH, dict(genesis))
        private = "stored"
    except ConflictError:
        stored = founder.stored()
        if stored is None or chain.published_bytes(stored) != trusted.published():
            found = chain.document_hash(stored) if stored else "nothing readable"
            raise CeremonyError(
                f"{where} holds another document (hash {found}) than the genesis {pinned}: refusing to replace it"
            ) from None
        private = "present"
    blob = founder.public.get_blob_client(GENESIS_PATH)
    data = trusted.published()
    try:
        download = blob.download_blob()
        current, etag = download.readall(), download.properties.etag
    except ResourceNotFoundError:
        current, etag = None, None
    if current == data:
        return private, "present"
    try:
        if etag is None:
            blob.upload_blob(data, overwrite=False, content_settings=_JSON)
        else:  # its own published copy differs from what it verified: publish the verified bytes again
            blob.upload_blob(data, overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified,
                             content_settings=_JSON)  # fmt: skip
    except ResourceExistsError:
        raise CeremonyError(
            f"{founder.member_id}'s {PUBLIC_CONTAINER} {GENESIS_PATH} changed while it was written"
        ) from None
    return private, "published" if etag is None else "republished"


# --- the local ceremony (`make up`) --------------------------------------------------------------


def _read_record(root: Path) -> dict[str, Any] | None:
    path = record_path(root)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CeremonyError(f"{path} is not JSON ({error}); remove it only together with the stack's storage") from None
    if not isinstance(record, dict) or not isinstance(record.get("genesis"), dict):
        raise CeremonyError(f"{path} does not hold a genesis")
    return record


def _verified(where: str, body: Mapping[str, Any]) -> str:
    digest = chain.document_hash(body)
    try:
        chain.verify_genesis(digest, body)
    except chain.ChainError as error:
        raise CeremonyError(f"the genesis in {where} does not verify ({error}): refusing to go on") from None
    return digest


def existing_genesis(
    founders: Sequence[Founder], record: Mapping[str, Any] | None, *, record_where: str = ".local/genesis.json"
) -> tuple[dict[str, Any], str] | None:
    """The genesis the founders already hold (or the record keeps), once every copy verifies and all agree."""
    copies: dict[str, tuple[str, dict[str, Any]]] = {}
    if record is not None:
        body = dict(record["genesis"])
        digest = _verified(record_where, body)
        if record.get("hash") != digest:
            raise CeremonyError(f"{record_where} names hash {record.get('hash')} but holds a genesis of hash {digest}")
        copies[record_where] = (digest, body)
    for founder in founders:
        held = founder.stored()
        if held is not None:
            where = f"{founder.member_id}'s {STATE_CONTAINER} container at {GENESIS_PATH}"
            copies[where] = (_verified(where, held), held)
    if not copies:
        return None
    hashes = {digest for digest, _ in copies.values()}
    if len(hashes) > 1:
        seen = "; ".join(f"{where}: {digest}" for where, (digest, _) in copies.items())
        raise CeremonyError(f"the founders' genesis copies differ ({seen}): refusing to go on")
    digest, body = next(iter(copies.values()))
    listed = sorted(m["member_id"] for m in body["members"])
    if listed != sorted(f.member_id for f in founders):
        raise CeremonyError(f"the stored genesis {digest} lists {', '.join(listed)}, not these founders")
    return body, digest


def write_genesis_hash(paths: Mapping[str, Path], digest: str) -> list[str]:
    """``CONSORTIUM_GENESIS_HASH`` in each member's settings file; the members whose file changed."""
    changed = []
    for member, path in paths.items():
        document = json.loads(path.read_text())
        if document.get("Values", {}).get(GENESIS_SETTING) == digest:
            continue
        document.setdefault("Values", {})[GENESIS_SETTING] = digest
        path.write_text(json.dumps(document, indent=2) + "\n")
        changed.append(member)
    return changed


def local_founders(root: Path = ROOT, founders: Iterable[str] = FOUNDERS) -> list[Founder]:
    """The founders as the local stack runs them: each on its own ``.local/members/{id}/local.settings.json``."""
    out = []
    for member in founders:
        path = member_settings.settings_path(member, root)
        if not path.exists():
            raise CeremonyError(f"{member}: no settings at {path} (the stack writes them before the ceremony)")
        values, _ = member_settings.read(path)
        if values.get("CONSORTIUM_MEMBER_ID") != member:
            raise CeremonyError(f"{path} serves {values.get('CONSORTIUM_MEMBER_ID')!r}, not {member}")
        out.append(Founder(member, LEGAL_NAMES[member], Settings(values)))
    return out


def run(
    root: Path = ROOT,
    *,
    founders: Sequence[str] = FOUNDERS,
    members: Sequence[str] = azurite.MEMBER_IDS,
    convener: str = CONVENER,
    issued_at: str | None = None,
    say: Callable[[str], None] = print,
) -> str:
    """The local ceremony: every step for every founder, each through its own settings; returns the hash."""
    label = "ceremony"
    team = local_founders(root, founders)
    record = _read_record(root)
    found = existing_genesis(team, record, record_where=str(record_path(root)))
    if found is not None:
        genesis, digest = found
        say(f"{label:14} genesis {digest[:16]}… already founded: verified, nothing to sign")
    else:
        entries = []
        for founder in team:
            key, created = governance_key(founder)
            entries.append(entry(founder, key))
            say(f"{label:14} {founder.member_id}: governance key {key.name}/{key.version[:8]} "
                f"{'created in' if created else 'found in'} its own vault")  # fmt: skip
        unsigned = draft(entries, convener=convener, issued_at=issued_at)
        drafted = chain.document_hash(unsigned)[:16]
        say(f"{label:14} {convener}: drafted the genesis of {', '.join(founders)} ({drafted}…)")
        signatures = []
        for founder in team:
            signatures.append(sign(founder, unsigned))
            say(f"{label:14} {founder.member_id}: signed the genesis with its own vault key")
        genesis, digest = assemble(unsigned, signatures)
        say(f"{label:14} genesis verifies: signed by every founder")
    for founder in team:
        private, public = install(founder, genesis, digest)
        copies = f"{GENESIS_PATH} {private} in {STATE_CONTAINER}, {public} in {PUBLIC_CONTAINER}"
        say(f"{label:14} {founder.member_id}: {copies}")
    paths = {m: member_settings.settings_path(m, root) for m in members}
    missing = [m for m, p in paths.items() if not p.exists()]
    if missing:
        raise CeremonyError(f"no settings file for {', '.join(missing)} (the stack writes them before the ceremony)")
    changed = write_genesis_hash(paths, digest)
    say(f"{label:14} {GENESIS_SETTING} in the settings of {', '.join(members)} ({len(changed)} changed)")
    # the genesis in its canonical key order, so the record reads the same whichever copy it came from
    canonical = json.loads(chain.published_bytes(genesis))
    wanted = {"consortium": genesis["consortium"], "hash": digest, "founders": list(founders), "genesis": canonical}
    if record != wanted:
        record_path(root).parent.mkdir(parents=True, exist_ok=True)
        record_path(root).write_text(json.dumps(wanted, indent=2, ensure_ascii=False) + "\n")
    say(f"{label:14} genesis hash {digest}")
    return digest


# --- the command line (one founder's operator, or the local stack) ------------------------------


def _settings_for(member: str, path: str | None, root: Path = ROOT) -> Settings:
    """A founder's settings: ``--settings`` (a local.settings.json), the local stack's file, or the environment."""
    if path is not None:
        values: Mapping[str, str] = json.loads(Path(path).read_text())["Values"]
    elif member_settings.settings_path(member, root).exists():
        values = member_settings.read(member_settings.settings_path(member, root))[0]
    else:
        values = dict(os.environ)
    serves = values.get("CONSORTIUM_MEMBER_ID")
    if serves and serves != member:
        raise CeremonyError(f"these settings serve {serves}, not {member}: a founder acts only as itself")
    return Settings({str(k): str(v) for k, v in values.items()})


def _load(path: str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _emit(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def build_parser() -> argparse.ArgumentParser:
    """The command line of the ceremony (infra/README.md runs it; tests/infra checks its commands parse)."""
    parser = argparse.ArgumentParser(prog="python -m tools.ceremony", description=__doc__.splitlines()[0])
    parser.add_argument("--member", help="the founder acting (its own vault and storage)")
    parser.add_argument("--settings", help="that founder's settings file (local.settings.json form)")
    sub = parser.add_subparsers(dest="step")
    p = sub.add_parser("entry", help="find or create the governance key in its own vault; print the chain entry")
    p.add_argument("--legal-name", help="its X.500 legal name (default: the local stack's)")
    p = sub.add_parser("draft", help="the convener: the unsigned genesis from every founder's entry")
    p.add_argument("--convener", required=True)
    p.add_argument("--consortium", default=CONSORTIUM)
    p.add_argument("entries", nargs="+", help="each founder's entry (JSON files)")
    p = sub.add_parser("sign", help="sign the draft with its own vault key; print the signature")
    p.add_argument("draft")
    p = sub.add_parser("assemble", help="the convener: the signed genesis from the draft and every signature")
    p.add_argument("draft")
    p.add_argument("signatures", nargs="+")
    p = sub.add_parser("install", help="verify the genesis against its hash; store and publish it")
    p.add_argument("genesis")
    p.add_argument("--hash", required=True, help="the genesis hash the founders agreed on")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.step is None:  # the whole local ceremony
            run()
            return 0
        if args.step in ("entry", "sign", "install"):
            if not args.member:
                parser.error(f"{args.step} needs --member: a founder acts only through its own settings")
            legal = getattr(args, "legal_name", None) or LEGAL_NAMES.get(args.member)
            if legal is None and args.step == "entry":  # only the entry carries it; sign and install check keys
                parser.error("--legal-name is needed for a member the local stack does not know")
            founder = Founder(args.member, legal or "", _settings_for(args.member, args.settings))
            if args.step == "entry":
                key, created = governance_key(founder)
                print(f"{key.name}/{key.version}: {'created' if created else 'found'}", file=sys.stderr)
                _emit(entry(founder, key))
            elif args.step == "sign":
                _emit(sign(founder, _load(args.draft)))
            else:
                private, public = install(founder, _load(args.genesis), args.hash)
                print(
                    f"{GENESIS_PATH}: {private} in {STATE_CONTAINER}, {public} in {PUBLIC_CONTAINER}", file=sys.stderr
                )
        elif args.step == "draft":
            unsigned = draft([_load(e) for e in args.entries], convener=args.convener, consortium=args.consortium)
            print(f"hash to sign: {chain.document_hash(unsigned)}", file=sys.stderr)
            _emit(unsigned)
        else:
            genesis, digest = assemble(_load(args.draft), [_load(s) for s in args.signatures])
            print(f"genesis hash: {digest}", file=sys.stderr)
            _emit(genesis)
    except (CeremonyError, ControlPlaneError) as error:
        print(f"ceremony: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
