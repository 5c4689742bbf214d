"""Who calls the emulator and what each caller may do: principals, their role assignments, and the
401 and 403 answers Azure gives when a token is missing or a role is.

Tokens. A bearer token ``emulator:{principal}`` names the principal that calls; the adapters build
it from ``AZURE_EMULATOR_PRINCIPAL`` (``shared/adapters/azure_common.py``). A request without a
bearer token, or with one that names no registered principal, gets 401 as Azure answers it (ARM:
``AuthenticationFailed`` / ``InvalidAuthenticationToken``; Key Vault: ``Unauthorized`` with its
bearer challenge, so the SDK's challenge handshake still runs first).

Principals. ``PUT /_admin/principals/{name}`` registers one: a subscription (derived from the name
unless given), a vault of its own served on a port of its own, and exactly three role assignments,
what a member's deployment gets in Azure:
- Virtual Machine Contributor on its subscription (its scale sets, their VMs and NICs),
- Monitoring Reader on its subscription (metrics, ``metrics:getBatch``),
- Key Vault Crypto Officer on its vault (keys and their rotation policies).
A call on any other scope is refused with 403 and the body Azure sends: ARM's ``AuthorizationFailed``
naming the client, the action and the scope; Key Vault's ``Forbidden`` with inner error
``ForbiddenByRbac`` naming the caller, the action and the resource.

Where the bodies come from (Azure's answers as quoted in public issue threads; the emulator keeps
their codes and wording and fills in its own names):
- ARM 403 ``{"error": {"code": "AuthorizationFailed", "message": "The client '…' with object id '…'
  does not have authorization to perform action 'Microsoft.Compute/virtualMachineScaleSets/write' over
  scope '…' or the scope is invalid. If access was recently granted, please refresh your
  credentials."}}`` (Azure/aad-pod-identity#788, Azure/azure-powershell#12115).
- Key Vault 403 ``{"error": {"code": "Forbidden", "message": "Caller is not authorized to perform
  action on resource.\r\n…Caller: …\r\nAction: '…'\r\nResource: '…'\r\nAssignment: (not found)
  \r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: …;location=…",
  "innererror": {"code": "ForbiddenByRbac"}}}`` (hashicorp/terraform-provider-azurerm#27817 and
  #23927, piyushsachdeva/Terraform_AKS#2).
- Key Vault 401 ``{"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer
  or PoP token."}}`` (Azure/azure-sdk-for-python#24557); ARM 401 ``InvalidAuthenticationToken`` "The
  access token is invalid." and ``AuthenticationFailed`` for a missing header (Azure/azure-powershell
  #27882 and others). The ``WWW-Authenticate`` header of ARM's 401 is written from memory.
- The metrics batch API answers errors in ARM's common ``ErrorResponse`` (azure-rest-api-specs,
  ``monitor/data-plane/Microsoft.Insights/stable/2024-02-01/metricBatch.json``); that its 403 reads
  as ARM's ``AuthorizationFailed`` for ``Microsoft.Insights/Metrics/Read`` is UNCONFIRMED.

Version 1 (one shared deployment, the shape issue 15 removes): the token ``emulator-token`` is the
principal ``LEGACY``, with the same three roles on the default subscription and on the default vault,
the one served at the emulator's root URL. It is always there, needs no registration, and goes away
when the local stack runs one deployment per member.
"""

from __future__ import annotations

import fnmatch
import uuid
from dataclasses import dataclass
from typing import Any

#: The principal of the version-1 token (see the module docstring); removed with version 1.
LEGACY = "consortium-v1"
LEGACY_TOKEN = "emulator-token"  # noqa: S105 - names a principal, grants nothing outside the emulator  # nosec B105
#: A principal's token is this prefix and its name, e.g. ``emulator:bank-a``.
TOKEN_PREFIX = "emulator:"  # noqa: S105 - a prefix, not a secret  # nosec B105
#: The subscription and vault of version 1: what the root URL serves.
DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_VAULT = "kv-consortium-local"
#: Resource group every emulated vault is reported in (ARM resource ids need one).
VAULT_RESOURCE_GROUP = "rg-consortium-local"
VAULT_LOCATION = "westeurope"
#: A principal's name, as member ids are named (docs/contract.md), or the legacy principal.
NAME_PATTERN = r"[a-z][a-z0-9-]{1,30}[a-z0-9]"

#: Built-in roles, reduced to what this emulator serves: (actions, data actions). ARM and metrics
#: check actions; Key Vault's data plane checks data actions only, so Monitoring Reader's ``*/read``
#: reads no key. The wildcards read as Azure's do: ``*`` stands for any run of characters, slashes
#: included.
ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Virtual Machine Contributor": (
        (
            "Microsoft.Compute/virtualMachineScaleSets/*",
            "Microsoft.Compute/locations/*",
            "Microsoft.Network/networkInterfaces/*",
        ),
        (),
    ),
    "Monitoring Reader": (("*/read",), ()),
    "Key Vault Crypto Officer": (
        ("Microsoft.KeyVault/vaults/read",),
        ("Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*"),
    ),
}
METRICS_READ = "Microsoft.Insights/Metrics/Read"


def subscription_for(name: str) -> str:
    """A member's subscription id, derived from its name: the same on every machine and every run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:consortium:subscription:{name}"))


def object_id_for(name: str) -> str:
    """The object id of a principal's (managed) identity, derived from its name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:consortium:principal:{name}"))


def token_for(name: str) -> str:
    return LEGACY_TOKEN if name == LEGACY else f"{TOKEN_PREFIX}{name}"


def vault_resource_id(subscription: str, vault: str) -> str:
    """A vault's ARM id, lowercased after the subscription as Key Vault prints it in its errors."""
    return f"/subscriptions/{subscription}/resourcegroups/{VAULT_RESOURCE_GROUP.lower()}/providers/microsoft.keyvault/vaults/{vault}"


def assignments(subscription: str, vault: str) -> list[dict[str, str]]:
    """The role assignments of a member's identity: its own subscription and its own vault, nothing else."""
    return [
        {"role": "Virtual Machine Contributor", "scope": f"/subscriptions/{subscription}"},
        {"role": "Monitoring Reader", "scope": f"/subscriptions/{subscription}"},
        {"role": "Key Vault Crypto Officer", "scope": vault_resource_id(subscription, vault)},
    ]


@dataclass(frozen=True)
class Principal:
    name: str
    object_id: str
    subscription_id: str
    vault: str
    roles: tuple[tuple[str, str], ...]

    @classmethod
    def from_record(cls, name: str, record: dict[str, Any]) -> Principal:
        return cls(name, record["object_id"], record["subscription_id"], record["vault"],
                   tuple((a["role"], a["scope"]) for a in record["roles"]))  # fmt: skip

    def may(self, action: str, scope: str, *, data: bool = False) -> bool:
        """Whether a role assigned on ``scope`` or above it grants ``action`` (a data action if ``data``)."""
        wanted = scope.rstrip("/").lower()
        for role, at in self.roles:
            at = at.rstrip("/").lower()
            if wanted != at and not wanted.startswith(at + "/"):
                continue
            patterns = ROLES[role][1 if data else 0]
            if any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in patterns):
                return True
        return False


def legacy_record() -> dict[str, Any]:
    return {"object_id": object_id_for(LEGACY), "subscription_id": DEFAULT_SUBSCRIPTION, "vault": DEFAULT_VAULT,
            "roles": assignments(DEFAULT_SUBSCRIPTION, DEFAULT_VAULT), "vault_port": None}  # fmt: skip


def caller(principals: dict[str, Any], authorization: str) -> Principal | None:
    """The principal a request's Authorization header names, or None (no bearer token, or an unknown one)."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    if token == LEGACY_TOKEN:
        return Principal.from_record(LEGACY, legacy_record())
    if not token.startswith(TOKEN_PREFIX):
        return None
    name = token.removeprefix(TOKEN_PREFIX)
    record = principals.get(name)
    return Principal.from_record(name, record) if record else None


def arm_operation(method: str, path: str) -> tuple[str, str]:
    """(action, scope) of an ARM request, named as ARM names them.

    The action is the provider namespace and the resource types of the path, then ``read`` (GET),
    ``write`` (PUT, PATCH), ``delete`` or, for a POST, ``{name}/action``:
    ``POST .../virtualMachineScaleSets/v/virtualMachines/0/restart`` is
    ``Microsoft.Compute/virtualMachineScaleSets/virtualMachines/restart/action`` over
    ``.../virtualMachineScaleSets/v/virtualMachines/0``.
    """
    parts = [p for p in path.split("/") if p]
    lower = [p.lower() for p in parts]
    if "providers" not in lower:
        return "Microsoft.Resources/subscriptions/resourceGroups/read", path
    at = lower.index("providers")
    namespace, rest = parts[at + 1], parts[at + 2 :]
    verb = {"GET": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(method, "read")
    if method == "POST" and len(rest) % 2 == 1:
        verb, rest = f"{rest[-1]}/action", rest[:-1]
    scope = "/" + "/".join(parts[: at + 2] + rest)
    return "/".join([namespace, *rest[0::2], verb]), scope


def _body(code: str, message: str, inner: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return {"error": error}


def arm_unauthenticated(authorization: str) -> tuple[dict[str, Any], dict[str, str]]:
    """ARM's 401: no Authorization header, or a token it does not accept."""
    if not authorization:
        return _body("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."), {}
    challenge = ('Bearer authorization_uri="https://login.windows.net/", error="invalid_token", '
                 'error_description="The access token is invalid."')  # fmt: skip
    return _body("InvalidAuthenticationToken", "The access token is invalid."), {"WWW-Authenticate": challenge}


def arm_forbidden(who: Principal, action: str, scope: str) -> dict[str, Any]:
    """ARM's 403 (``AuthorizationFailed``), worded as ARM words it."""
    return _body(
        "AuthorizationFailed",
        f"The client '{who.name}' with object id '{who.object_id}' does not have authorization to perform action "
        f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh "
        "your credentials.",
    )


def keyvault_unauthenticated(authorization: str) -> dict[str, Any]:
    """Key Vault's 401 body (its bearer challenge goes with it)."""
    if not authorization.lower().startswith("bearer "):
        return _body("Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
    return _body("Unauthorized", "The bearer token names no principal this emulator knows (emulator:{name}).")


def keyvault_forbidden(who: Principal, action: str, resource: str, vault: str) -> dict[str, Any]:
    """Key Vault's 403 for a caller without a role on the vault (RBAC), worded as Key Vault words it."""
    message = (
        "Caller is not authorized to perform action on resource.\r\n"
        "If role assignments, deny assignments or role definitions were changed recently, please observe "
        "propagation time.\r\n"
        f"Caller: name={who.name};appid={who.object_id};oid={who.object_id};iss=https://sts.windows.net/emulator/\r\n"
        f"Action: '{action}'\r\n"
        f"Resource: '{resource}'\r\n"
        "Assignment: (not found)\r\n"
        "DenyAssignmentId: null\r\n"
        "DecisionReason: 'DeniedWithNoValidRBAC' \r\n"
        f"Vault: {vault};location={VAULT_LOCATION}\r\n"
    )
    return _body("Forbidden", message, "ForbiddenByRbac")
