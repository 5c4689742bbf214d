// Least-privilege roles for the Function App's identity: its storage account (Blob Data Contributor
// for the state, the leases and the published container; Queue and Table Data Contributor, which the
// Functions host needs for its queues and timers), its Key Vault (Crypto Officer alone: it creates,
// rotates and disables keys, and its data actions, Microsoft.KeyVault/vaults/keys/*, include sign and
// verify, so Crypto User would add nothing), the member's resource group (Virtual Machine Contributor:
// scale sets, and the subnet and backend pool join actions a scale set's NICs need), Monitoring Reader
// for the metrics batch API, and Managed Identity Operator on the nodes' identity alone: assigning a
// user-assigned identity to the scale set it creates needs
// Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action, which Virtual Machine Contributor
// lacks. tests/infra/test_bicep_roles.py fails a change that widens one.
param principalId string
param storageAccountName string
param keyVaultName string
@description('Name of the Corda nodes\' user-assigned identity, which the app assigns to the scale set it creates.')
param nodesIdentityName string

var roleIds = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultCryptoOfficer: '14b46e9e-c2b7-41b4-b07b-48a6ebf60603'
  virtualMachineContributor: '9980e02c-c2be-4d73-94e8-173b1dc7cf3c'
  monitoringReader: '43d0d8ad-25c7-4714-9337-8ba259a9fe05'
  managedIdentityOperator: 'f1a07417-d97a-45cb-824c-7a7467783830'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource nodesIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: nodesIdentityName
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in ['storageBlobDataContributor', 'storageQueueDataContributor', 'storageTableDataContributor']: {
  name: guid(storage.id, principalId, roleIds[role])
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds[role])
  }
}]

resource vaultRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in ['keyVaultCryptoOfficer']: {
  name: guid(vault.id, principalId, roleIds[role])
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds[role])
  }
}]

resource groupRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in ['virtualMachineContributor', 'monitoringReader']: {
  name: guid(resourceGroup().id, principalId, roleIds[role])
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds[role])
  }
}]

resource nodesIdentityRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in ['managedIdentityOperator']: {
  name: guid(nodesIdentity.id, principalId, roleIds[role])
  scope: nodesIdentity
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds[role])
  }
}]
