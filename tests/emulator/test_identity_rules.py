"""The emulator's authorization rules, one row per boundary: which action ARM names a request by, and
which role on which scope grants it. Pure: no emulator is started."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from tools.emulator import identity
from tools.emulator.identity import Principal, arm_operation, assignments, caller, subscription_for

A, B = subscription_for("bank-a"), subscription_for("bank-b")
VMSS = f"/subscriptions/{A}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets"
BANK_A = Principal("bank-a", identity.object_id_for("bank-a"), A, "kv-bank-a",
                   tuple((r["role"], r["scope"]) for r in assignments(A, "kv-bank-a")))  # fmt: skip


@dataclass(frozen=True)
class Operation:
    why: str
    method: str
    path: str
    action: str
    scope: str


OPERATIONS = [
    Operation("reading a scale set is its type's read", "GET", f"{VMSS}/v1",
              "Microsoft.Compute/virtualMachineScaleSets/read", f"{VMSS}/v1"),
    Operation("listing a resource group's scale sets reads the collection", "GET", VMSS,
              "Microsoft.Compute/virtualMachineScaleSets/read", VMSS),
    Operation("creating a scale set is a write", "PUT", f"{VMSS}/v1",
              "Microsoft.Compute/virtualMachineScaleSets/write", f"{VMSS}/v1"),
    Operation("changing its capacity is a write too", "PATCH", f"{VMSS}/v1",
              "Microsoft.Compute/virtualMachineScaleSets/write", f"{VMSS}/v1"),
    Operation("a VM of a scale set has the nested type", "GET", f"{VMSS}/v1/virtualMachines/0",
              "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read", f"{VMSS}/v1/virtualMachines/0"),
    Operation("a POST names an action, over the resource it acts on", "POST", f"{VMSS}/v1/virtualMachines/0/restart",
              "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/restart/action",
              f"{VMSS}/v1/virtualMachines/0"),
    Operation("an operation's status is read under its location", "GET",
              f"/subscriptions/{A}/providers/Microsoft.Compute/locations/westeurope/operations/abc",
              "Microsoft.Compute/locations/operations/read",
              f"/subscriptions/{A}/providers/Microsoft.Compute/locations/westeurope/operations/abc"),
]  # fmt: skip


@pytest.mark.parametrize("row", OPERATIONS, ids=[r.why for r in OPERATIONS])
def test_an_arm_request_is_named_by_the_action_and_scope_arm_checks(row: Operation) -> None:
    assert arm_operation(row.method, row.path) == (row.action, row.scope)


@dataclass(frozen=True)
class Grant:
    why: str
    action: str
    scope: str
    allowed: bool
    #: A data action (Key Vault's data plane), which only a role's data actions grant.
    data: bool = False


KV_A = identity.vault_resource_id(A, "kv-bank-a")
KV_B = identity.vault_resource_id(B, "kv-bank-b")
GRANTS = [
    Grant("its own scale set: Virtual Machine Contributor on its subscription",
          "Microsoft.Compute/virtualMachineScaleSets/write", f"{VMSS}/v1", True),
    Grant("the same scale set named in another case is the same scope",
          "Microsoft.Compute/virtualMachineScaleSets/write", f"{VMSS}/V1".lower(), True),
    Grant("its own metrics: Monitoring Reader on its subscription", identity.METRICS_READ, f"{VMSS}/v1", True),
    Grant("another member's scale set: no role on that subscription",
          "Microsoft.Compute/virtualMachineScaleSets/read", VMSS.replace(A, B) + "/v1", False),
    Grant("a subscription whose id only starts like its own is another scope",
          "Microsoft.Compute/virtualMachineScaleSets/read", f"/subscriptions/{A}0/resourceGroups/rg", False),
    Grant("another member's metrics", identity.METRICS_READ, f"/subscriptions/{B}", False),
    Grant("assigning itself more roles: none of its roles grants that, even on its own subscription",
          "Microsoft.Authorization/roleAssignments/write", f"/subscriptions/{A}", False),
    Grant("signing with a key in its own vault: Key Vault Crypto Officer",
          "Microsoft.KeyVault/vaults/keys/sign/action", f"{KV_A}/keys/gov", True, data=True),
    Grant("setting a rotation policy in its own vault", "Microsoft.KeyVault/vaults/keyrotationpolicies/write",
          f"{KV_A}/keys/gov", True, data=True),
    Grant("signing in another member's vault", "Microsoft.KeyVault/vaults/keys/sign/action", f"{KV_B}/keys/gov",
          False, data=True),
    Grant("another vault in its own subscription: Monitoring Reader's */read there is an action, not a data action",
          "Microsoft.KeyVault/vaults/keys/read", identity.vault_resource_id(A, "kv-bank-ab") + "/keys/gov",
          False, data=True),
    Grant("secrets are not keys: Crypto Officer does not grant them",
          "Microsoft.KeyVault/vaults/secrets/getSecret/action", f"{KV_A}/secrets/s", False, data=True),
]  # fmt: skip


@pytest.mark.parametrize("row", GRANTS, ids=[r.why for r in GRANTS])
def test_a_member_identity_may_act_on_its_own_resources_and_nothing_else(row: Grant) -> None:
    assert BANK_A.may(row.action, row.scope, data=row.data) is row.allowed


def test_a_subscription_is_a_guid_derived_from_the_member_id_alone() -> None:
    assert subscription_for("bank-a") == subscription_for("bank-a") != subscription_for("bank-b")
    assert str(uuid.UUID(subscription_for("bank-a"))) == subscription_for("bank-a")


def test_a_token_names_a_registered_principal_or_nobody() -> None:
    registered = {"bank-a": {"object_id": BANK_A.object_id, "subscription_id": A, "vault": "kv-bank-a",
                             "roles": assignments(A, "kv-bank-a")}}  # fmt: skip
    assert caller(registered, "Bearer emulator:bank-a") == BANK_A
    assert caller(registered, "Bearer emulator:bank-b") is None, "an unregistered member has no identity"
    assert caller(registered, "Bearer bank-a") is None and caller(registered, "") is None
    assert caller(registered, "Basic emulator:bank-a") is None
    legacy = caller(registered, "Bearer emulator-token")
    assert legacy is not None and legacy.name == identity.LEGACY
    assert legacy.may(
        "Microsoft.Compute/virtualMachineScaleSets/write", f"/subscriptions/{identity.DEFAULT_SUBSCRIPTION}"
    )
    assert not legacy.may("Microsoft.KeyVault/vaults/keys/read", f"{KV_A}/keys/gov", data=True), "nor bank-a's vault"
