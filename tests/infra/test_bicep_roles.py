"""Every role assignment the Bicep makes, by role, scope and principal: a change that widens one fails here.

Role definition ids are Azure's built-in ones (the same in every tenant).
"""

from __future__ import annotations

from typing import Any

from tests.infra import bicep

ASSIGNMENT = "Microsoft.Authorization/roleAssignments"
BUILT_IN = {
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603": "Key Vault Crypto Officer",
    "9980e02c-c2be-4d73-94e8-173b1dc7cf3c": "Virtual Machine Contributor",
    "43d0d8ad-25c7-4714-9337-8ba259a9fe05": "Monitoring Reader",
    "f1a07417-d97a-45cb-824c-7a7467783830": "Managed Identity Operator",
}
#: (file, scope resource or "resourceGroup", principal parameter, role): every assignment there is.
EXPECTED = {
    ("modules/roles.bicep", "storage", "principalId", "Storage Blob Data Contributor"),
    ("modules/roles.bicep", "storage", "principalId", "Storage Queue Data Contributor"),
    ("modules/roles.bicep", "storage", "principalId", "Storage Table Data Contributor"),
    ("modules/roles.bicep", "vault", "principalId", "Key Vault Crypto Officer"),
    ("modules/roles.bicep", "resourceGroup", "principalId", "Virtual Machine Contributor"),
    ("modules/roles.bicep", "resourceGroup", "principalId", "Monitoring Reader"),
    # assigning the nodes' identity to the scale set the app creates (Virtual Machine Contributor has the
    # subnet and backend pool join actions, not Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action)
    ("modules/roles.bicep", "nodesIdentity", "principalId", "Managed Identity Operator"),
    # the nodes' agents offer their NodeInfo files in the private inbox container, their identity keepers lease
    # the identities they run in identity-leases (a blob lease is a write), and they write nothing else
    ("modules/storage.bicep", "inbox", "nodesPrincipalId", "Storage Blob Data Contributor"),
    ("modules/storage.bicep", "identityLeases", "nodesPrincipalId", "Storage Blob Data Contributor"),
    ("modules/publication.bicep", "container", "appPrincipalId", "Storage Blob Data Contributor"),
    ("modules/publication.bicep", "container", "nodesPrincipalId", "Storage Blob Data Reader"),
    ("modules/publication.bicep", "container", "readerPrincipalIds", "Storage Blob Data Reader"),
}


def _role_ids(relative: str, resource: dict[str, Any]) -> list[str]:
    variables = {k: v["value"] for k, v in bicep.parse(relative).get("variables", {}).items()}
    name = bicep.body(resource)["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    if isinstance(name, str):
        return [variables[name]]
    operands = name["operator"]["operands"]  # roleIds[role], looped over a literal list of keys
    assert (
        bicep.loop_items(resource) is not None
        and operands["operand_2"] == resource["config"]["loop_type"]["detail"]["item_name"]
    )
    return [variables[operands["operand_1"]][key] for key in bicep.loop_items(resource) or []]


def _principal(resource: dict[str, Any]) -> str:
    principal = bicep.body(resource)["properties"]["principalId"]
    loop = resource["config"].get("loop_type")
    if loop and principal == loop["detail"]["item_name"]:
        return str(loop["detail"]["array_name"])  # one assignment per id in that parameter
    return str(principal)


def assignments() -> set[tuple[str, str, str, str]]:
    found = set()
    for relative in bicep.files():
        for resource in bicep.resources(relative, ASSIGNMENT).values():
            scope = bicep.body(resource).get("scope") or "resourceGroup"
            for role_id in _role_ids(relative, resource):
                assert role_id in BUILT_IN, f"{relative}: role {role_id} is not one this deployment should grant"
                found.add((relative, scope, _principal(resource), BUILT_IN[role_id]))
    return found


def test_the_role_assignments_are_exactly_the_least_privileged_ones() -> None:
    assert assignments() == EXPECTED


def test_the_published_container_is_the_only_thing_the_readers_reach() -> None:
    containers = bicep.resources(
        "modules/publication.bicep", "Microsoft.Storage/storageAccounts/blobServices/containers"
    )
    assert {bicep.body(c)["name"] for c in containers.values()} == {"consortium-public"}
    assert set(containers) == {"container"}
    account = bicep.body(bicep.resources("modules/publication.bicep", "Microsoft.Storage/storageAccounts")["account"])
    properties = account["properties"]
    assert properties["allowSharedKeyAccess"] is False, "only Entra principals with a role get in"
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"


def test_the_app_runs_as_its_user_assigned_identity() -> None:
    site = bicep.body(bicep.resources("modules/functionapp.bicep", "Microsoft.Web/sites")["site"])
    assert site["identity"]["type"] == "UserAssigned"
    storage = site["properties"]["functionAppConfig"]["deployment"]["storage"]["authentication"]
    assert storage == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    settings = {s["name"]: s["value"] for s in site["properties"]["siteConfig"]["appSettings"]}
    assert settings["AzureWebJobsStorage__clientId"] == settings["AZURE_CLIENT_ID"] == "identityClientId"
    assert settings["CONSORTIUM_READER_CLIENT_ID"] == "readerClientId"
