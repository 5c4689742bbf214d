"""The founders' genesis ceremony against a real Azurite (one account per member) and the Azure emulator
(one identity and one vault per member): each founder signs in its own vault, which the other founder's
identity cannot use; every member is given the hash the genesis verifies against; both founders hold
it privately and publish it; a second run signs nothing and changes nothing; a stored genesis that
was tampered with, or that another ceremony made, stops the ceremony with an error that says where."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from shared.adapters.keyvault import KeyVaultKeyStore
from shared.decisions import chain, corda_pki
from shared.errors import ForbiddenError
from shared.services import corda_root
from shared.settings import Settings
from tools import azurite, ceremony, emulator, member_settings, provision
from tools.emulator import EmulatorHandle

MEMBERS = azurite.MEMBER_IDS
PATH = "chain/00000000.json"


@dataclass(frozen=True)
class Stack:
    root: Path
    az: azurite.Azurite
    handle: EmulatorHandle

    def settings(self, member: str) -> dict[str, str]:
        return member_settings.read(member_settings.settings_path(member, self.root))[0]

    def blobs(self, member: str) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(self.az.connection_string_for(azurite.account_for(member)))

    def private(self, member: str) -> bytes:
        return bytes(self.blobs(member).get_blob_client("consortium", PATH).download_blob().readall())

    def public(self, member: str) -> bytes:
        return bytes(self.blobs(member).get_blob_client("consortium-public", PATH).download_blob().readall())

    def run(self, lines: list[str] | None = None) -> str:
        return ceremony.run(self.root, say=(lines if lines is not None else []).append)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, emulator_instance: EmulatorHandle) -> Iterator[Stack]:
    """Four members' accounts in an Azurite of this module's own, provisioned, and their settings files,
    each naming the member's own identity and vault in the emulator, as `make up` writes them."""
    root = Path(tmp_path_factory.mktemp("ceremony"))
    ports = azurite.free_ports(3)
    accounts = [azurite.account_for(m) for m in MEMBERS]
    az, proc = azurite.start(root / "azurite", ports=(ports[0], ports[1], ports[2]), log_file=root / "azurite.log",
                             accounts=accounts)  # fmt: skip
    try:
        for account in accounts:
            provision.provision(az.connection_string_for(account))
        principals = {m: emulator.register_principal(emulator_instance, m) for m in MEMBERS}
        where = member_settings.Emulator(emulator_instance.url, emulator_instance.ca, principals)
        member_settings.write_all(az, root=root, emulator=where)
        yield Stack(root, az, emulator_instance)
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def founded(stack: Stack) -> tuple[str, list[str]]:
    lines: list[str] = []
    return stack.run(lines), lines


def _genesis(stack: Stack) -> dict[str, Any]:
    return dict(json.loads(stack.private("bank-a")))


def test_the_ceremony_says_each_founders_step_and_ends_with_the_hash(founded: tuple[str, list[str]]) -> None:
    digest, lines = founded
    assert len(digest) == 64 and digest == digest.lower()
    for founder in ceremony.FOUNDERS:
        mine = [line for line in lines if f" {founder}: " in line]
        assert any("governance key" in line and "its own vault" in line for line in mine), lines
        assert any("signed the genesis with its own vault key" in line for line in mine), lines
        assert any(PATH in line and "consortium-public" in line for line in mine), lines
    assert lines[-1].endswith(f"genesis hash {digest}")


def test_the_genesis_lists_both_founders_and_verifies_against_the_hash_every_member_was_given(
    stack: Stack, founded: tuple[str, list[str]]
) -> None:
    digest, _ = founded
    for member in MEMBERS:
        assert stack.settings(member)[ceremony.GENESIS_SETTING] == digest, member
    genesis = _genesis(stack)
    trusted = chain.verify_genesis(digest, genesis)
    assert trusted.document.member_ids == ("bank-a", "bank-b")
    assert trusted.document.consortium == "credit-consortium"
    assert trusted.document.change.kind == chain.Kind.GENESIS and trusted.document.change.member_id == "bank-a"
    names = {m.member_id: m.legal_name for m in trusted.document.members}
    assert names == {"bank-a": "O=Bank A, L=London, C=GB", "bank-b": "O=Banque Générale, L=Paris, C=FR"}
    for m in trusted.document.members:  # each founder's endpoint is its own published container
        assert m.endpoint == stack.settings(m.member_id)["CONSORTIUM_PUBLIC_ENDPOINT"]
    record = json.loads((stack.root / ".local" / "genesis.json").read_text())
    assert record["hash"] == digest and record["genesis"] == genesis


def test_each_founders_entry_carries_its_own_corda_root_made_in_its_own_vault(
    stack: Stack, founded: tuple[str, list[str]]
) -> None:
    """Contract v3: each founder its own root, its key in its own vault, constrained to its own name."""
    trusted = chain.verify_genesis(founded[0], _genesis(stack))
    for m, founder in zip(trusted.document.members, ceremony.local_founders(stack.root), strict=True):
        assert m.corda_root is not None and corda_pki.check_root(m.corda_root, m.member_id, m.legal_name).accepted
        key = founder.keys.get_key(corda_root.root_key_name(m.member_id))
        stored = founder.state.read(corda_root.ROOT_PATH)
        assert key is not None and stored is not None
        assert stored.body == {**stored.body, "kid": key.kid, "corda_root": m.corda_root}


def test_both_founders_hold_the_genesis_privately_and_publish_its_canonical_bytes(
    stack: Stack, founded: tuple[str, list[str]]
) -> None:
    digest, _ = founded
    published = set()
    for founder in ceremony.FOUNDERS:
        chain.verify_genesis(digest, json.loads(stack.private(founder)))
        raw = stack.public(founder)
        assert chain.verify_genesis(digest, chain.parse_published(raw)).hash == digest
        published.add(raw)
    assert len(published) == 1
    for member in ("bank-c", "bank-d"):  # not founders: nothing of theirs is written
        assert PATH not in [b.name for b in stack.blobs(member).get_container_client("consortium").list_blobs()]


def test_each_founders_signature_was_made_in_its_own_vault_which_the_other_founder_cannot_use(
    stack: Stack, founded: tuple[str, list[str]]
) -> None:
    digest, _ = founded
    genesis = chain.parse(_genesis(stack))
    for founder, other in (("bank-a", "bank-b"), ("bank-b", "bank-a")):
        own = Settings(stack.settings(founder))
        entry = genesis.member(founder)
        assert entry is not None
        kid = entry.governance_key.kid
        assert kid.startswith(own.text("AZURE_KEY_VAULT_URL").rstrip("/") + f"/keys/{founder}-governance/")
        held = KeyVaultKeyStore.from_settings(own).get_key(f"{founder}-governance", kid.rsplit("/", 1)[-1])
        assert held is not None and held.kid == kid
        assert {k: held.public_jwk[k] for k in ("kty", "crv", "x", "y")} == entry.governance_key.jwk.model_dump()
        signature = next(s for s in genesis.signatures if s.member_id == founder)
        assert signature.kid == kid
        assert chain.verify_signature(entry.governance_key.jwk, bytes.fromhex(digest), signature.sig)
        # the other founder's identity, pointed at this founder's vault: the emulator refuses it, as Azure would
        intruder = KeyVaultKeyStore.from_settings(Settings({**stack.settings(other), "AZURE_KEY_VAULT_URL":
                                                            own.text("AZURE_KEY_VAULT_URL")}))  # fmt: skip
        with pytest.raises(ForbiddenError, match="ForbiddenByRbac"):
            intruder.sign(kid, bytes.fromhex(digest))
        with pytest.raises(ForbiddenError):
            intruder.create_key(f"{founder}-governance", "EC", tags={})


def test_a_founder_signs_only_a_draft_that_lists_the_key_its_own_vault_holds(
    stack: Stack, founded: tuple[str, list[str]]
) -> None:
    genesis = _genesis(stack)
    draft = {**genesis, "signatures": []}
    team = {f.member_id: f for f in ceremony.local_founders(stack.root)}
    # bank-b asked to sign a draft that lists bank-a's key as bank-b's: it refuses
    entries = {m["member_id"]: m for m in draft["members"]}
    forged_b = {**entries["bank-b"], "governance_key": entries["bank-a"]["governance_key"]}
    with pytest.raises(ceremony.CeremonyError):
        ceremony.sign(team["bank-b"], {**draft, "members": [entries["bank-a"], forged_b]})
    without_b = {**draft, "members": [entries["bank-a"]]}
    with pytest.raises(ceremony.CeremonyError, match="does not list bank-b"):
        ceremony.sign(team["bank-b"], without_b)


def test_a_second_run_signs_nothing_and_changes_nothing(stack: Stack, founded: tuple[str, list[str]]) -> None:
    digest, _ = founded
    before = {m: member_settings.settings_path(m, stack.root).read_text() for m in MEMBERS}
    copies = {f: (stack.private(f), stack.public(f)) for f in ceremony.FOUNDERS}
    record = (stack.root / ".local" / "genesis.json").read_text()
    lines: list[str] = []
    assert stack.run(lines) == digest
    assert not any("signed" in line or "governance key" in line for line in lines), lines
    assert any("already founded" in line for line in lines)
    assert {m: member_settings.settings_path(m, stack.root).read_text() for m in MEMBERS} == before
    assert {f: (stack.private(f), stack.public(f)) for f in ceremony.FOUNDERS} == copies
    assert (stack.root / ".local" / "genesis.json").read_text() == record


def test_a_founder_that_lost_its_copies_gets_the_same_genesis_back_unsigned_again(
    stack: Stack, founded: tuple[str, list[str]]
) -> None:
    digest, _ = founded
    private, public = stack.private("bank-b"), stack.public("bank-b")
    stack.blobs("bank-b").get_blob_client("consortium", PATH).delete_blob()
    stack.blobs("bank-b").get_blob_client("consortium-public", PATH).delete_blob()
    record = stack.root / ".local" / "genesis.json"
    kept = record.read_text()
    record.unlink()  # and the record too: bank-a's copy is enough
    lines: list[str] = []
    assert stack.run(lines) == digest
    assert not any("signed" in line for line in lines), lines
    assert json.loads(stack.private("bank-b")) == json.loads(private)
    assert stack.public("bank-b") == public
    assert record.read_text() == kept


def _refused(stack: Stack, match: str) -> None:
    """The ceremony stops with an error that matches, and changes no settings file and no copy."""
    before = {m: member_settings.settings_path(m, stack.root).read_text() for m in MEMBERS}
    copies = {f: (stack.private(f), stack.public(f)) for f in ceremony.FOUNDERS}
    with pytest.raises(ceremony.CeremonyError, match=match):
        stack.run()
    assert {m: member_settings.settings_path(m, stack.root).read_text() for m in MEMBERS} == before
    assert {f: (stack.private(f), stack.public(f)) for f in ceremony.FOUNDERS} == copies


def test_a_tampered_stored_genesis_is_refused_naming_where_it_is(stack: Stack, founded: tuple[str, list[str]]) -> None:
    blob = stack.blobs("bank-b").get_blob_client("consortium", PATH)
    original = stack.private("bank-b")
    tampered = json.loads(original)
    # another locality: bank-a's root still names its organisation, so only the signatures break
    tampered["members"][0]["legal_name"] = "O=Bank A, L=Paris, C=GB"
    blob.upload_blob(json.dumps(tampered, sort_keys=True), overwrite=True)
    try:
        _refused(stack, r"bank-b's consortium container at chain/00000000\.json does not verify .*signature")
        blob.upload_blob(b"{not json", overwrite=True)
        _refused(stack, r"bank-b's consortium container at chain/00000000\.json is not a JSON document")
    finally:
        blob.upload_blob(original, overwrite=True)
    assert stack.run() == founded[0]


def test_another_valid_genesis_stored_by_one_founder_is_refused_as_a_difference(
    stack: Stack, founded: tuple[str, list[str]]
) -> None:
    digest, _ = founded
    team = ceremony.local_founders(stack.root)
    genesis = _genesis(stack)
    other = ceremony.draft(genesis["members"], convener="bank-b", issued_at="2030-01-01T00:00:00Z")
    rival, rival_hash = ceremony.assemble(other, [ceremony.sign(f, other) for f in team])
    assert rival_hash != digest  # a genesis both founders signed, but not the one they founded
    blob = stack.blobs("bank-a").get_blob_client("consortium", PATH)
    original = stack.private("bank-a")
    blob.upload_blob(json.dumps(rival, sort_keys=True), overwrite=True)
    try:
        _refused(stack, "genesis copies differ")
        # and install, asked to put the rival where the founded genesis is, refuses to replace it
        with pytest.raises(ceremony.CeremonyError, match="holds another document"):
            ceremony.install(team[1], rival, rival_hash)
    finally:
        blob.upload_blob(original, overwrite=True)
    assert stack.run() == digest


def test_the_steps_an_azure_founder_runs_one_by_one_give_a_genesis_that_verifies(
    stack: Stack, founded: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest, _ = founded

    def step(*argv: str) -> tuple[int, str, str]:
        code = ceremony.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    settings = {m: str(member_settings.settings_path(m, stack.root)) for m in ceremony.FOUNDERS}
    files = []
    for member in ceremony.FOUNDERS:
        code, out, err = step("--member", member, "--settings", settings[member], "entry")
        assert code == 0 and "found" in err  # the key the ceremony created, found again in its own vault
        files.append(tmp_path / f"{member}.entry.json")
        files[-1].write_text(out)
    code, out, err = step("draft", "--convener", "bank-a", *map(str, files))
    assert code == 0 and "hash to sign" in err
    (tmp_path / "draft.json").write_text(out)
    sigs = []
    for member in ceremony.FOUNDERS:
        code, out, _ = step("--member", member, "--settings", settings[member], "sign", str(tmp_path / "draft.json"))
        assert code == 0
        sigs.append(tmp_path / f"{member}.sig.json")
        sigs[-1].write_text(out)
    code, out, err = step("assemble", str(tmp_path / "draft.json"), *map(str, sigs))
    assert code == 0
    rival_hash = err.split("genesis hash: ")[1].strip()
    chain.verify_genesis(rival_hash, json.loads(out))
    (tmp_path / "genesis.json").write_text(out)
    # a founder acts only as itself: bank-b's settings cannot sign as bank-a
    code, _, err = step("--member", "bank-a", "--settings", settings["bank-b"], "sign", str(tmp_path / "draft.json"))
    assert code == 1 and "serve bank-b, not bank-a" in err
    # this new genesis is not the one the founders hold: install refuses to replace theirs
    as_b = ("--member", "bank-b", "--settings", settings["bank-b"])
    code, _, err = step(*as_b, "install", str(tmp_path / "genesis.json"), "--hash", rival_hash)
    assert code == 1 and "holds another document" in err
    (tmp_path / "founded.json").write_text(json.dumps(_genesis(stack)))
    code, _, err = step(*as_b, "install", str(tmp_path / "founded.json"), "--hash", digest)
    assert code == 0 and "present in consortium, present in consortium-public" in err


def test_a_founder_outside_the_local_stack_signs_and_installs_without_a_legal_name(
    stack: Stack, founded: tuple[str, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    digest, _ = founded
    monkeypatch.setattr(ceremony, "LEGAL_NAMES", {})  # no name known for any member: as in Azure
    settings = str(member_settings.settings_path("bank-a", stack.root))
    (tmp_path / "founded.json").write_text(json.dumps(_genesis(stack)))
    as_a = ("--member", "bank-a", "--settings", settings)
    assert ceremony.main([*as_a, "install", str(tmp_path / "founded.json"), "--hash", digest]) == 0
    unsigned = {**_genesis(stack), "signatures": []}
    (tmp_path / "draft.json").write_text(json.dumps(unsigned))
    capsys.readouterr()
    assert ceremony.main([*as_a, "sign", str(tmp_path / "draft.json")]) == 0
    assert json.loads(capsys.readouterr().out)["member_id"] == "bank-a"
    with pytest.raises(SystemExit) as usage:
        ceremony.main([*as_a, "entry"])  # the entry alone carries the legal name
    assert usage.value.code == 2 and "--legal-name" in capsys.readouterr().err


def test_in_azure_a_founder_publishes_in_the_container_its_public_endpoint_names() -> None:
    endpoint = "https://stpubbankx0123456789.blob.core.windows.net/consortium-public"
    values = {
        "CONSORTIUM_MEMBER_ID": "bank-x",
        "AzureWebJobsStorage__blobServiceUri": "https://stbankx0123456789.blob.core.windows.net/",
        "CONSORTIUM_PUBLIC_ENDPOINT": endpoint,
    }
    founder = ceremony.Founder("bank-x", "O=Bank X, L=Oslo, C=NO", Settings(values))
    assert founder.public.url == endpoint, "the publication account, not the private state account"
    assert founder.state.container.url.startswith("https://stbankx0123456789.blob.core.windows.net/")
