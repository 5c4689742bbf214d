// The control plane's storage: queues (messages, steps, poison), the consortium state container with
// its leases, and the Flex Consumption deployment package. Shared-key access is off: identity only.
// Two containers here are written by the Corda nodes: `node-infos-inbox`, where each node's agent offers
// the NodeInfo file Corda wrote (blob named by its SHA-256) for the control plane to sign and publish, and
// `identity-leases`, where each instance's identity keeper leases the Corda identity it runs (a blob lease
// with a fencing token in its metadata; docs/stateful-nodes.md). The nodes' identity holds Storage Blob
// Data Contributor on those two containers and nothing else in this account; the app reads them with its
// Blob Data Contributor on the account (roles.bicep).
param location string
param name string
param privateEndpointSubnetId string
param vnetId string
param logAnalyticsId string
param tags object
@description('Principal id of the Corda nodes\' user-assigned identity (writes node-infos-inbox and identity-leases only).')
param nodesPrincipalId string

var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

var workQueues = [
  'onboarding-requests'
  'onboarding-approvals'
  'onboarding-keys'
  'onboarding-provision'
  'onboarding-propose'
  'onboarding-activate'
  'onboarding-retire'
  'offboarding-requests'
  'key-rotation-requests'
]
// A loop rather than a lambda: checkov's Bicep parser reads no lambdas, and a file it cannot parse is not checked.
var poisonQueues = [for q in workQueues: '${q}-poison']
var queues = concat(workQueues, poisonQueues, ['member-events'])
// consortium-public is in the publication account (publication.bicep), which the other members reach.
var containers = ['consortium', 'deploymentpackage', 'azure-webjobs-hosts']

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
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
    publicNetworkAccess: 'Disabled'
    allowCrossTenantReplication: false
    networkAcls: {
      defaultAction: 'Deny'
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

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for c in containers: {
  parent: blobService
  name: c
  properties: { publicAccess: 'None' }
}]

resource inbox 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'node-infos-inbox'
  properties: { publicAccess: 'None' }
}

resource nodesWriteInbox 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(inbox.id, nodesPrincipalId, blobDataContributor)
  scope: inbox
  properties: {
    principalId: nodesPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
  }
}

resource identityLeases 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'identity-leases'
  properties: { publicAccess: 'None' }
}

resource nodesLeaseIdentities 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(identityLeases.id, nodesPrincipalId, blobDataContributor)
  scope: identityLeases
  properties: {
    principalId: nodesPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource storageQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for q in queues: {
  parent: queueService
  name: q
}]

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'queue-logs'
  scope: queueService
  properties: {
    workspaceId: logAnalyticsId
    logs: [
      { category: 'StorageRead', enabled: true }
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

resource dnsZones 'Microsoft.Network/privateDnsZones@2020-06-01' = [for service in ['blob', 'queue', 'table']: {
  name: 'privatelink.${service}.${environment().suffixes.storage}'
  location: 'global'
  tags: tags
}]

resource dnsLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [for (service, i) in ['blob', 'queue', 'table']: {
  parent: dnsZones[i]
  name: 'link-${service}'
  location: 'global'
  properties: {
    registrationEnabled: false
    virtualNetwork: { id: vnetId }
  }
}]

resource endpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [for (service, i) in ['blob', 'queue', 'table']: {
  name: 'pe-${name}-${service}'
  location: location
  tags: tags
  properties: {
    subnet: { id: privateEndpointSubnetId }
    privateLinkServiceConnections: [
      {
        name: service
        properties: {
          privateLinkServiceId: account.id
          groupIds: [service]
        }
      }
    ]
  }
}]

resource endpointDns 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [for (service, i) in ['blob', 'queue', 'table']: {
  parent: endpoints[i]
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      { name: service, properties: { privateDnsZoneId: dnsZones[i].id } }
    ]
  }
}]

output name string = account.name
output id string = account.id
