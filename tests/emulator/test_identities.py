"""One identity per member: each acts on its own vault, subscription, scale sets and metrics, and the
emulator refuses the rest with 403 as Azure does, through the real SDK clients and the adapters."""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.compute import ArmScaleSets
from shared.adapters.keyvault import KeyVaultKeyStore
from shared.adapters.metrics import MonitorMetrics
from shared.errors import ForbiddenError, PermanentError
from shared.ports.keys import RotationPolicy
from shared.ports.scalesets import ScaleSetSpec
from shared.settings import Settings
from tests.conftest import member_settings
from tools import azurite, emulator
from tools.emulator import EmulatorHandle
from tools.emulator.identity import object_id_for, subscription_for
from tools.harness.stack import admin

pytestmark = pytest.mark.integration

CPU = "Percentage CPU"
ARM_FORBIDDEN = re.compile(
    r"^The client '(?P<client>[^']+)' with object id '(?P<oid>[0-9a-f-]{36})' does not have authorization to "
    r"perform action '(?P<action>[^']+)' over scope '(?P<scope>[^']+)' or the scope is invalid\. If access was "
    r"recently granted, please refresh your credentials\.$"
)


def spec(name: str, capacity: int = 1) -> ScaleSetSpec:
    return ScaleSetSpec(name, "westeurope", capacity, "Standard_D2s_v5", "a:b:c:d", "", "", "", "")


def raw(url: str, ca: Path, *, method: str = "GET", token: str | None = None, body: Any = None) -> tuple[int, Any, Any]:
    """Status, JSON body and headers of one request, without an SDK in the way."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as r:  # nosec B310 - https://localhost
            text = r.read()
            return r.status, json.loads(text) if text else None, r.headers
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, json.loads(text) if text else None, e.headers


def owned_scale_set(settings: Settings) -> tuple[ArmScaleSets, str, str]:
    scalesets = ArmScaleSets.from_settings(settings)
    name = f"vmss-i{uuid.uuid4().hex[:10]}"
    scalesets.begin_create_or_update(spec(name))
    found = scalesets.get(name)
    assert found is not None
    return scalesets, name, found.id


def as_other(settings: Settings, **changes: str) -> Settings:
    return Settings({**settings.values, **changes})


def test_each_member_gets_a_subscription_derived_from_its_id_and_a_vault_of_its_own(
    emulator_instance: EmulatorHandle, bank_a_settings: Settings, bank_b_settings: Settings
) -> None:
    a = admin(emulator_instance, "GET", "/_admin/principals/bank-a")
    assert isinstance(a, dict)
    assert a["subscription_id"] == subscription_for("bank-a") == bank_a_settings.text("AZURE_SUBSCRIPTION_ID")
    assert subscription_for("bank-a") != subscription_for("bank-b") == bank_b_settings.text("AZURE_SUBSCRIPTION_ID")
    assert a["token"] == "emulator:bank-a" and a["object_id"] == object_id_for("bank-a") and a["vault"] == "kv-bank-a"
    vaults = {bank_a_settings.text("AZURE_KEY_VAULT_URL"), bank_b_settings.text("AZURE_KEY_VAULT_URL")}
    assert len(vaults) == 2 and emulator_instance.url not in vaults, "each member's vault has its own URL"
    assert {r["role"] for r in a["roles"]} == {
        "Virtual Machine Contributor", "Monitoring Reader", "Key Vault Crypto Officer",
    }  # fmt: skip
    assert all(r["scope"].startswith(f"/subscriptions/{a['subscription_id']}") for r in a["roles"])
    again = member_settings(emulator_instance, bank_a_settings, "bank-a")
    assert again.values == bank_a_settings.values, "registering again changes nothing, the vault keeps its port"


def test_a_member_creates_signs_rotates_and_disables_keys_in_its_own_vault(bank_a_settings: Settings) -> None:
    keys = KeyVaultKeyStore.from_settings(bank_a_settings)
    key = keys.create_key(f"gov-{uuid.uuid4().hex[:8]}", "EC", tags={"request_id": "req-bank-a"})
    assert key.kid.startswith(bank_a_settings.text("AZURE_KEY_VAULT_URL") + "/keys/")
    digest = hashlib.sha256(b"version 1 of the chain").digest()
    assert keys.verify(key.kid, digest, keys.sign(key.kid, digest))
    rotated = keys.rotate(key.name)
    assert [v.version for v in keys.list_versions(key.name)] == [key.version, rotated.version]
    assert not keys.set_enabled(key.name, key.version, enabled=False).enabled
    policy = RotationPolicy(rotate_after="P90D", notify_before_expiry="P30D", expires_after="P180D")
    assert keys.set_rotation_policy(key.name, policy) == policy


def test_a_member_creates_and_scales_its_own_scale_set_and_reads_its_metrics(
    emulator_instance: EmulatorHandle, bank_a_settings: Settings
) -> None:
    scalesets, name, rid = owned_scale_set(bank_a_settings)
    assert rid.startswith(f"/subscriptions/{subscription_for('bank-a')}/")
    current = scalesets.get(name)
    assert current is not None
    assert scalesets.set_capacity(name, 2, etag=current.etag).capacity == 2
    assert len(scalesets.list_instances(name)) == 2
    admin(emulator_instance, "PUT", f"/_admin/load/{name}", {"tpm": 500})
    batch = MonitorMetrics.from_settings(bank_a_settings).query(
        [rid], [CPU], window=timedelta(minutes=3), grain=timedelta(minutes=1), aggregation="Average"
    )
    assert batch.missing == () and batch.series[0].resource_id == rid


def test_another_members_vault_refuses_create_sign_get_and_list_with_forbidden_by_rbac(
    bank_a_settings: Settings, bank_b_settings: Settings
) -> None:
    theirs = KeyVaultKeyStore.from_settings(bank_b_settings).create_key(f"gov-{uuid.uuid4().hex[:8]}", "EC", tags={})
    intruder = KeyVaultKeyStore.from_settings(
        as_other(bank_a_settings, AZURE_KEY_VAULT_URL=bank_b_settings.text("AZURE_KEY_VAULT_URL"))
    )
    attempts = {
        "keys/create/action": lambda: intruder.create_key(theirs.name, "EC", tags={}),
        "keys/sign/action": lambda: intruder.sign(theirs.kid, hashlib.sha256(b"forged").digest()),
        "keys/read": lambda: intruder.get_key(theirs.name),
        "keys/rotate/action": lambda: intruder.rotate(theirs.name),
    }
    for action, attempt in attempts.items():
        with pytest.raises(ForbiddenError) as refused:
            attempt()
        assert refused.value.reason == "forbidden"
        assert "Forbidden/ForbiddenByRbac" in refused.value.refusal
        assert f"Action: 'Microsoft.KeyVault/vaults/{action}'" in refused.value.refusal
        assert f"/vaults/kv-bank-b/keys/{theirs.name}'" in refused.value.refusal
        assert "Caller: name=bank-a;" in refused.value.refusal
    with pytest.raises(ForbiddenError, match="list versions of"):
        intruder.list_versions(theirs.name)
    still = KeyVaultKeyStore.from_settings(bank_b_settings).list_versions(theirs.name)
    assert [v.version for v in still] == [theirs.version], "nothing the intruder tried changed bank-b's key"


def test_key_vault_refuses_with_its_own_error_body(
    emulator_instance: EmulatorHandle, bank_b_settings: Settings
) -> None:
    vault = bank_b_settings.text("AZURE_KEY_VAULT_URL")
    status, body, _ = raw(f"{vault}/keys/anything/create?api-version=7.6", emulator_instance.ca, method="POST",
                          token="emulator:bank-a", body={"kty": "EC", "crv": "P-256"})  # fmt: skip
    assert status == 403 and set(body["error"]) == {"code", "message", "innererror"}
    assert body["error"]["code"] == "Forbidden" and body["error"]["innererror"] == {"code": "ForbiddenByRbac"}
    lines = body["error"]["message"].split("\r\n")
    assert lines[0] == "Caller is not authorized to perform action on resource."
    assert lines[2] == f"Caller: name=bank-a;appid={object_id_for('bank-a')};oid={object_id_for('bank-a')};" \
                       "iss=https://sts.windows.net/emulator/"  # fmt: skip
    assert lines[3] == "Action: 'Microsoft.KeyVault/vaults/keys/create/action'"
    assert lines[4] == (
        f"Resource: '/subscriptions/{subscription_for('bank-b')}/resourcegroups/rg-consortium-local"
        "/providers/microsoft.keyvault/vaults/kv-bank-b/keys/anything'"
    )
    assert lines[5:8] == [
        "Assignment: (not found)",
        "DenyAssignmentId: null",
        "DecisionReason: 'DeniedWithNoValidRBAC' ",
    ]
    assert lines[8] == "Vault: kv-bank-b;location=westeurope"


def test_another_members_scale_set_refuses_read_scale_and_list_with_authorization_failed(
    bank_a_settings: Settings, bank_b_settings: Settings
) -> None:
    theirs, name, rid = owned_scale_set(bank_b_settings)
    current = theirs.get(name)
    assert current is not None
    intruder = ArmScaleSets.from_settings(
        as_other(bank_a_settings, AZURE_SUBSCRIPTION_ID=bank_b_settings.text("AZURE_SUBSCRIPTION_ID"))
    )
    attempts = {
        "Microsoft.Compute/virtualMachineScaleSets/read": lambda: intruder.get(name),
        "Microsoft.Compute/virtualMachineScaleSets/write": lambda: intruder.set_capacity(name, 0, etag=current.etag),
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read": lambda: intruder.list_instances(name),
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/restart/action": lambda: intruder.restart(name, "0"),
    }
    for action, attempt in attempts.items():
        with pytest.raises(ForbiddenError) as refused:
            attempt()
        assert refused.value.reason == "forbidden" and refused.value.refusal.startswith("AuthorizationFailed: ")
        found = ARM_FORBIDDEN.match(refused.value.refusal.removeprefix("AuthorizationFailed: "))
        assert found is not None, refused.value.refusal
        assert found["client"] == "bank-a" and found["oid"] == object_id_for("bank-a") and found["action"] == action
        assert found["scope"].startswith(rid)
    with pytest.raises(ForbiddenError, match="over scope '/subscriptions/"):
        intruder.list_all()
    after = theirs.get(name)
    assert after is not None and after.capacity == 1 and after.etag == current.etag, "bank-b's scale set is untouched"


def test_another_members_metrics_are_refused_with_authorization_failed(
    emulator_instance: EmulatorHandle, bank_a_settings: Settings, bank_b_settings: Settings
) -> None:
    _, _, theirs = owned_scale_set(bank_b_settings)
    _, _, mine = owned_scale_set(bank_a_settings)
    metrics = MonitorMetrics.from_settings(bank_a_settings)
    with pytest.raises(ForbiddenError) as refused:
        metrics.query([theirs], [CPU], window=timedelta(minutes=3), grain=timedelta(minutes=1), aggregation="Average")
    assert refused.value.refusal.startswith("AuthorizationFailed: The client 'bank-a'")
    assert f"'Microsoft.Insights/Metrics/Read' over scope '/subscriptions/{subscription_for('bank-b')}" in str(
        refused.value
    )
    # Slipping another member's resource into a batch on one's own subscription refuses the whole batch.
    sub = subscription_for("bank-a")
    query = "metricnames=Percentage%20CPU&api-version=2024-02-01"
    url = f"{emulator_instance.url}/subscriptions/{sub}/metrics:getBatch?{query}"
    status, body, _ = raw(url, emulator_instance.ca, method="POST", token="emulator:bank-a",
                          body={"resourceids": [mine, theirs]})  # fmt: skip
    assert status == 403 and body["error"]["code"] == "AuthorizationFailed"
    found = ARM_FORBIDDEN.match(body["error"]["message"])
    assert found is not None and found["scope"] == theirs


def test_a_key_named_like_another_members_lives_only_in_the_attackers_vault(
    azure_settings: Settings, bank_a_settings: Settings, bank_b_settings: Settings
) -> None:
    name = f"bank-b-governance-{uuid.uuid4().hex[:6]}"
    genuine = KeyVaultKeyStore.from_settings(bank_b_settings).create_key(name, "EC", tags={"member_id": "bank-b"})
    impostor = KeyVaultKeyStore.from_settings(bank_a_settings).create_key(name, "EC", tags={"member_id": "bank-b"})
    assert impostor.kid.startswith(bank_a_settings.text("AZURE_KEY_VAULT_URL") + "/")
    assert impostor.public_jwk != genuine.public_jwk
    seen_by_b = KeyVaultKeyStore.from_settings(bank_b_settings).list_versions(name)
    assert [v.kid for v in seen_by_b] == [genuine.kid], "bank-b's vault holds only its own key"
    assert KeyVaultKeyStore.from_settings(azure_settings).get_key(name) is None, "nor is it in version 1's vault"


def test_a_missing_or_unknown_token_is_refused_with_401(
    emulator_instance: EmulatorHandle, bank_a_settings: Settings
) -> None:
    sub = subscription_for("bank-a")
    arm = (
        f"{emulator_instance.url}/subscriptions/{sub}/resourceGroups/rg-consortium-local"
        "/providers/Microsoft.Compute/virtualMachineScaleSets?api-version=2024-07-01"
    )
    status, body, _ = raw(arm, emulator_instance.ca)
    assert status == 401 and body["error"]["code"] == "AuthenticationFailed"
    status, body, headers = raw(arm, emulator_instance.ca, token="emulator:bank-z")
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationToken"
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    vault = bank_a_settings.text("AZURE_KEY_VAULT_URL")
    for token in (None, "emulator:bank-z", "not-a-principal"):
        status, body, headers = raw(f"{vault}/keys/k/versions?api-version=7.6", emulator_instance.ca, token=token)
        assert status == 401 and body["error"]["code"] == "Unauthorized"
        assert 'resource="https://vault.azure.net"' in headers["WWW-Authenticate"], "the SDK's handshake still runs"
    stranger = as_other(bank_a_settings, AZURE_EMULATOR_PRINCIPAL="bank-z")
    with pytest.raises(PermanentError) as refused:
        KeyVaultKeyStore.from_settings(stranger).create_key("k", "EC", tags={})
    assert refused.value.reason == "auth"
    with pytest.raises(PermanentError) as refused:
        ArmScaleSets.from_settings(stranger).list_all()
    assert refused.value.reason == "auth"
    _, _, mine = owned_scale_set(bank_a_settings)
    with pytest.raises(PermanentError) as refused:
        MonitorMetrics.from_settings(stranger).query(
            [mine], [CPU], window=timedelta(minutes=3), grain=timedelta(minutes=1), aggregation="Average"
        )
    assert refused.value.reason == "auth"


def test_version_1_identity_and_member_identities_stay_apart(
    emulator_instance: EmulatorHandle, azure_settings: Settings, bank_a_settings: Settings
) -> None:
    legacy_in_member_vault = as_other(azure_settings, AZURE_KEY_VAULT_URL=bank_a_settings.text("AZURE_KEY_VAULT_URL"))
    with pytest.raises(ForbiddenError):
        KeyVaultKeyStore.from_settings(legacy_in_member_vault).create_key("k", "EC", tags={})
    member_in_root_vault = as_other(bank_a_settings, AZURE_KEY_VAULT_URL=emulator_instance.url)
    with pytest.raises(ForbiddenError, match="vaults/kv-consortium-local/keys/k'"):
        KeyVaultKeyStore.from_settings(member_in_root_vault).create_key("k", "EC", tags={})
    member_on_default_subscription = as_other(
        bank_a_settings, AZURE_SUBSCRIPTION_ID=azure_settings.text("AZURE_SUBSCRIPTION_ID")
    )
    with pytest.raises(ForbiddenError):
        ArmScaleSets.from_settings(member_on_default_subscription).list_all()


def test_a_vault_serves_key_vault_and_nothing_else(
    emulator_instance: EmulatorHandle, bank_a_settings: Settings
) -> None:
    vault = bank_a_settings.text("AZURE_KEY_VAULT_URL")
    status, _, _ = raw(f"{vault}/_admin/health", emulator_instance.ca)
    assert status == 404
    sub = subscription_for("bank-a")
    compute = f"{vault}/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets"
    status, _, _ = raw(compute, emulator_instance.ca, token="emulator:bank-a")
    assert status == 404


def test_the_admin_api_refuses_bad_principals_and_a_vault_that_is_taken(emulator_instance: EmulatorHandle) -> None:
    def put(name: str, body: object) -> int:
        try:
            admin(emulator_instance, "PUT", f"/_admin/principals/{name}", body)
        except urllib.error.HTTPError as e:
            return e.code
        return 200

    assert put("Bank_A", {}) == 400
    assert put("bank-q", {"subscription_id": "not-a-guid"}) == 400
    assert put("bank-q", {"role": "Owner"}) == 400, "roles are what a member gets, never asked for"
    assert put("bank-q", {"vault": "kv-consortium-local"}) == 409, "version 1's vault belongs to nobody else"
    admin(emulator_instance, "PUT", "/_admin/principals/bank-b")
    assert put("bank-q", {"vault": "kv-bank-b"}) == 409


def test_principals_and_their_vaults_survive_a_restart(tmp_path: Path, azure_settings: Settings) -> None:
    port, vault_port = azurite.free_ports(2)
    handle, proc = emulator.start(tmp_path, port)
    try:
        admin(handle, "PUT", "/_admin/principals/bank-c", {"vault_port": vault_port})
        settings = member_settings(handle, as_other(azure_settings, AZURE_CA_BUNDLE=str(handle.ca)), "bank-c")
        assert settings.text("AZURE_KEY_VAULT_URL") == f"https://localhost:{vault_port}"
        key = KeyVaultKeyStore.from_settings(settings).create_key("survivor", "EC", tags={})
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait()
    handle, proc = emulator.start(tmp_path, port)
    try:
        again = KeyVaultKeyStore.from_settings(settings).get_key("survivor")
        assert again is not None and again.version == key.version
        assert member_settings(handle, settings, "bank-c").values == settings.values
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait()
