// Least-privilege data-plane roles for the Function App's identity: its storage account (blobs for
// state and leases, queues, tables for the host), its Key Vault (create/rotate and sign), the member's
// resource group (scale sets) and Monitoring Reader for the metrics batch API.
param principalId string
param storageAccountName string
param keyVaultName string

var roleIds = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultCryptoOfficer: '14b46e9e-c2b7-41b4-b07b-48a6ebf60603'
  keyVaultCryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424'
  virtualMachineContributor: '9980e02c-c2be-4d73-94e8-173b1dc7cf3c'
  monitoringReader: '43d0d8ad-25c7-4714-9337-8ba259a9fe05'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in ['storageBlobDataOwner', 'storageQueueDataContributor', 'storageTableDataContributor']: {
  name: guid(storage.id, principalId, roleIds[role])
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds[role])
  }
}]

resource vaultRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in ['keyVaultCryptoOfficer', 'keyVaultCryptoUser']: {
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
