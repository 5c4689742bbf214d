// One consortium member's deployment: its network and load balancer, the nodes' identity, the storage
// and Key Vault the control plane uses, and the Function App (Flex Consumption) with identity-only
// access to all of them. The Corda scale set is not declared here: the control plane is its one owner
// and creates it whole when the member's onboarding request is processed, from SCALE_SET_TEMPLATE,
// which this template fills (infra/README.md). Parameter files in parameters/ give the reference VM sizes.
targetScope = 'resourceGroup'

@description('This member\'s id in the consortium (lower-case letters, digits and dashes).')
@minLength(3)
@maxLength(32)
param memberId string

@description('Region of every resource.')
param location string = resourceGroup().location

@description('VM size of the Corda nodes.')
param nodeVmSize string = 'Standard_D4s_v5'

@description('Image of the Corda nodes, publisher:offer:sku:version (version latest: automatic OS image upgrades need it).')
param nodeImage string = 'Canonical:ubuntu-24_04-lts:server:latest'

@description('Availability zones the Corda nodes spread over (empty in a region without zones).')
param nodeZones array = ['1', '2', '3']

@description('SSH public key of the nodes\' admin user (password login is disabled).')
param adminSshPublicKey string

@description('SHA-256 of the consortium genesis document this member verifies everything from (the founders\' ceremony ends with it; empty until then). App setting CONSORTIUM_GENESIS_HASH.')
param genesisHash string = ''

@description('JSON object: member id -> consortium-public container URL of each deployment this member was introduced to: a joiner names at least one member to read the genesis from; the members name the joiner, to read its proposal. Empty: none. App setting CONSORTIUM_PEER_READ_URLS.')
param peerReadUrls string = '{}'

@description('Comma-separated object ids, in this tenant, of the other members\' app registrations\' service principals (az ad sp create --id <their client id>): each gets Storage Blob Data Reader on this member\'s consortium-public container only.')
param readerPrincipalIds string = ''

@description('Client id of this member\'s multi-tenant app registration (infra/reader-app.sh prints it; empty until it exists).')
param readerClientId string = ''

@description('Name of this deployment, shown as the coordinator holder; distinct for each deployment of this member (empty: {memberId}-{location}).')
param deploymentName string = ''

@description('Address space of the member network; subnets are carved from it.')
param addressPrefix string = '10.40.0.0/16'

@description('Subnet of the Corda nodes, inside addressPrefix.')
param nodesSubnetPrefix string = '10.40.0.0/24'

@description('Subnet delegated to the Function App (Flex Consumption VNet integration).')
param functionsSubnetPrefix string = '10.40.1.0/24'

@description('Subnet of the private endpoints (storage, Key Vault).')
param privateEndpointsSubnetPrefix string = '10.40.2.0/24'

@description('Resource id of another member\'s virtual network to peer with (empty: no peering).')
param remoteVnetId string = ''

@description('Port the Corda nodes listen on for peer-to-peer traffic (health-probed by the load balancer).')
param cordaP2pPort int = 10002

var suffix = uniqueString(resourceGroup().id, memberId)
// json() refuses a malformed value at deployment time rather than in the app's first tick
var peers = string(json(empty(peerReadUrls) ? '{}' : peerReadUrls))
var tags = {
  consortiumMember: memberId
  workload: 'corda-consortium'
}

module network 'modules/network.bicep' = {
  name: 'network'
  params: {
    location: location
    name: 'vnet-${memberId}'
    addressPrefix: addressPrefix
    nodesSubnetPrefix: nodesSubnetPrefix
    functionsSubnetPrefix: functionsSubnetPrefix
    privateEndpointsSubnetPrefix: privateEndpointsSubnetPrefix
    cordaP2pPort: cordaP2pPort
    tags: tags
  }
}

module loadBalancer 'modules/loadbalancer.bicep' = {
  name: 'loadbalancer'
  params: {
    location: location
    name: 'lb-${memberId}'
    subnetId: network.outputs.nodesSubnetId
    cordaP2pPort: cordaP2pPort
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    name: memberId
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    name: take('st${replace(memberId, '-', '')}${suffix}', 24)
    privateEndpointSubnetId: network.outputs.privateEndpointsSubnetId
    vnetId: network.outputs.vnetId
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    tags: tags
    nodesPrincipalId: nodesIdentity.outputs.principalId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    name: take('kv-${memberId}-${suffix}', 24)
    privateEndpointSubnetId: network.outputs.privateEndpointsSubnetId
    vnetId: network.outputs.vnetId
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    tags: tags
  }
}

module nodesIdentity 'modules/identity.bicep' = {
  name: 'nodes-identity'
  params: {
    location: location
    name: 'id-corda-${memberId}'
    tags: tags
  }
}

module appIdentity 'modules/identity.bicep' = {
  name: 'app-identity'
  params: {
    location: location
    name: 'id-func-${memberId}'
    tags: tags
  }
}

module publication 'modules/publication.bicep' = {
  name: 'publication'
  params: {
    location: location
    name: take('stpub${replace(memberId, '-', '')}${suffix}', 24)
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    appPrincipalId: appIdentity.outputs.principalId
    nodesPrincipalId: nodesIdentity.outputs.principalId
    readerPrincipalIds: empty(readerPrincipalIds) ? [] : split(readerPrincipalIds, ',')
    tags: tags
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    name: 'func-${memberId}-${suffix}'
    storageAccountName: storage.outputs.name
    integrationSubnetId: network.outputs.functionsSubnetId
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    keyVaultUri: keyVault.outputs.uri
    deploymentName: empty(deploymentName) ? '${memberId}-${location}' : deploymentName
    memberId: memberId
    genesisHash: genesisHash
    peerReadUrls: peers
    identityId: appIdentity.outputs.id
    identityClientId: appIdentity.outputs.clientId
    publicEndpoint: publication.outputs.containerUrl
    readerClientId: readerClientId
    // Everything of vmss-{memberId} that differs by deployment; the control plane adds the rest, the same
    // for every member (shared/adapters/compute.py template_body). The cloud-init is read when the
    // template is compiled, so each provisioning carries the file as it is in infra/ (which .funcignore
    // keeps out of the app package): one copy, no second one shipped with the app to drift from it.
    scaleSetTemplate: string({
      vm_size: nodeVmSize
      image: nodeImage
      zones: nodeZones
      subnet_id: network.outputs.nodesSubnetId
      backend_pool_id: loadBalancer.outputs.backendPoolId
      identity_id: nodesIdentity.outputs.id
      node_identity_client_id: nodesIdentity.outputs.clientId
      admin_ssh_public_key: adminSshPublicKey
      custom_data: base64(loadTextContent('corda-node.cloud-init.yaml'))
      health_port: cordaP2pPort
    })
    tags: tags
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    principalId: appIdentity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    nodesIdentityName: nodesIdentity.outputs.name
  }
}

module peering 'modules/peering.bicep' = if (!empty(remoteVnetId)) {
  name: 'peering'
  params: {
    vnetName: network.outputs.vnetName
    remoteVnetId: remoteVnetId
  }
}

output functionAppName string = functionApp.outputs.name
output keyVaultUri string = keyVault.outputs.uri
output storageAccountName string = storage.outputs.name
// Upper snake case: azd keeps each output as a value of the environment under its own name.
output PUBLIC_CONTAINER_URL string = publication.outputs.containerUrl
output APP_IDENTITY_PRINCIPAL_ID string = appIdentity.outputs.principalId
output APP_IDENTITY_CLIENT_ID string = appIdentity.outputs.clientId
