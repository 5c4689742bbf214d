// The member's publication account: only the `consortium-public` container, where the control plane
// publishes the chain, its head, the membership and its keys for the other members (and its own nodes)
// to read. It is reached across tenants and networks over its public endpoint, restricted by identity:
// shared-key access and anonymous access are off, so a request needs an Entra token of a principal with
// a role on this container, and only these hold one:
// - the app's identity: Storage Blob Data Contributor (it publishes);
// - the nodes' identity: Storage Blob Data Reader (the node agent reads the verified membership);
// - each other member's app registration (its service principal in this tenant): Storage Blob Data
//   Reader. Nothing else is in this account; the state, queues and leases stay in the private one.
param location string
param name string
param logAnalyticsId string
@description('Principal id of the Function App\'s user-assigned identity.')
param appPrincipalId string
@description('Principal id of the Corda nodes\' user-assigned identity.')
param nodesPrincipalId string
@description('Object ids, in this tenant, of the other members\' app registrations\' service principals.')
param readerPrincipalIds array
param tags object

var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var blobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_59:The other members, in other tenants and networks, read this container over its public endpoint; shared-key and anonymous access are off, so only Entra principals with a role on the container get in.
  // checkov:skip=CKV_AZURE_35:Same reason: no network rule can name another tenant's identities; the role assignments on the container are the restriction.
  name: name
  location: location
  tags: tags
  sku: { name: 'Standard_GZRS' }
  kind: 'StorageV2'
  properties: {
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    allowCrossTenantReplication: false
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'consortium-public'
  properties: { publicAccess: 'None' }
}

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'blob-logs'
  scope: blobService
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      { category: 'StorageRead', enabled: true }
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

resource appWrites 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, appPrincipalId, blobDataContributor)
  scope: container
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
  }
}

resource nodesRead 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, nodesPrincipalId, blobDataReader)
  scope: container
  properties: {
    principalId: nodesPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataReader)
  }
}

resource membersRead 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for reader in readerPrincipalIds: {
  name: guid(container.id, reader, blobDataReader)
  scope: container
  properties: {
    principalId: reader
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataReader)
  }
}]

output name string = account.name
output containerUrl string = '${account.properties.primaryEndpoints.blob}consortium-public'
