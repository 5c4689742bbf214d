// The control plane: a Function App on Flex Consumption (Python 3.11) with a user-assigned identity (the
// federated credential of the member's multi-tenant app registration, infra/reader-app.sh).
// Storage is reached identity-based (AzureWebJobsStorage__*): no connection string with a key exists.
// Every setting the app reads is set here; tests/infra/test_settings_parity.py keeps it so.
param location string
param name string
param storageAccountName string
param integrationSubnetId string
param appInsightsConnectionString string
param keyVaultUri string
param deploymentName string
param memberId string
@description('SHA-256 of the consortium genesis document, given out of band (the founders\' ceremony ends with it).')
param genesisHash string
@description('JSON object: member id -> consortium-public container URL of each deployment this member was introduced to.')
param peerReadUrls string = '{}'
param scaleSetTemplate string
@description('Resource id of the app\'s user-assigned identity.')
param identityId string
@description('Client id of the app\'s user-assigned identity.')
param identityClientId string
@description('URL of this member\'s consortium-public container (in its publication account).')
param publicEndpoint string
@description('Client id of this member\'s multi-tenant app registration (infra/reader-app.sh; empty until it exists).')
param readerClientId string = ''
param tags object

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${name}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222:Operators reach /api/status and the deployment endpoint from outside the VNet; HTTP functions need a function key; storage and Key Vault stay private.
  // checkov:skip=CKV_AZURE_212:Flex Consumption scales from zero on demand; queue and timer triggers wake it, and instances are stateless.
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: true
    clientCertMode: 'OptionalInteractiveUser'
    publicNetworkAccess: 'Enabled'
    virtualNetworkSubnetId: integrationSubnetId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}deploymentpackage'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: 40
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      healthCheckPath: '/api/healthz'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [
        { name: 'AzureWebJobsStorage__blobServiceUri', value: storage.properties.primaryEndpoints.blob }
        { name: 'AzureWebJobsStorage__queueServiceUri', value: storage.properties.primaryEndpoints.queue }
        { name: 'AzureWebJobsStorage__tableServiceUri', value: storage.properties.primaryEndpoints.table }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
        { name: 'AzureWebJobsFeatureFlags', value: 'EnableWorkerIndexing' }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'Authorization=AAD' }
        { name: 'CONSORTIUM_DEPLOYMENT', value: deploymentName }
        { name: 'CONSORTIUM_MEMBER_ID', value: memberId }
        { name: 'CONSORTIUM_GENESIS_HASH', value: genesisHash }
        { name: 'CONSORTIUM_PUBLIC_ENDPOINT', value: publicEndpoint }
        { name: 'CONSORTIUM_PEER_READ_URLS', value: peerReadUrls }
        { name: 'CONSORTIUM_READER_CLIENT_ID', value: readerClientId }
        { name: 'CONSORTIUM_READER_TENANT_ID', value: tenant().tenantId }
        { name: 'CONSORTIUM_POLL_SCHEDULE', value: '*/10 * * * * *' }
        { name: 'PROPOSAL_LIFETIME_SECONDS', value: '604800' }
        { name: 'AGREEMENT_TIMEOUT_SECONDS', value: '10' }
        { name: 'CONSORTIUM_FAST_FOLLOW_SECONDS', value: '10' }
        { name: 'CONSORTIUM_FAST_FOLLOW_INTERVAL_MS', value: '500' }
        { name: 'COORDINATOR_SCHEDULE', value: '*/2 * * * * *' }
        { name: 'LEASE_SECONDS', value: '15' }
        { name: 'ONBOARDING_POLL_SECONDS', value: '10' }
        { name: 'TELEMETRY_EXPORTER', value: 'auto' }
        { name: 'POISON_SWEEP_SCHEDULE', value: '0 * * * * *' }
        { name: 'AUTOSCALE_SCHEDULE', value: '0 * * * * *' }
        { name: 'AUTOSCALE_TARGET_CPU', value: '80' }
        { name: 'AUTOSCALE_TARGET_TPM_PER_NODE', value: '850' }
        { name: 'AUTOSCALE_TOLERANCE', value: '0.1' }
        { name: 'AUTOSCALE_SCALE_IN_WINDOW_SECONDS', value: '300' }
        { name: 'AUTOSCALE_COOLDOWN_SECONDS', value: '600' }
        { name: 'AUTOSCALE_TRANSIENT_WINDOW_SECONDS', value: '1800' }
        { name: 'AUTOSCALE_TRANSIENT_MEMORY_SECONDS', value: '5400' }
        { name: 'AUTOSCALE_BOOT_SECONDS', value: '90' }
        { name: 'AUTOSCALE_DEFAULT_MAX_NODES', value: '6' }
        { name: 'AUTOSCALE_PREDICTIVE', value: 'on' }
        { name: 'AUTOSCALE_PREDICTIVE_HISTORY_DAYS', value: '7' }
        { name: 'AUTOSCALE_PREDICTIVE_MARGIN_SECONDS', value: '180' }
        { name: 'AUTOSCALE_PREDICTIVE_MAX_ERROR', value: '0.25' }
        { name: 'KEY_ROTATION_SCHEDULE', value: '0 0 3 * * *' }
        { name: 'KEY_ROTATION_TLS', value: 'rotate=P90D overlap=P7D warn=P14D' }
        { name: 'KEY_ROTATION_GOVERNANCE', value: 'rotate=P365D overlap=P30D warn=P30D' }
        { name: 'KEY_ROTATION_IDENTITY', value: 'off rotate=P730D overlap=P30D warn=P60D' }
        { name: 'HEALTH_SCHEDULE', value: '0 * * * * *' }
        { name: 'HEALTH_CORDA_PORTS', value: '10002,10003' }
        { name: 'HEALTH_UNHEALTHY_CHECKS', value: '3' }
        { name: 'HEALTH_REIMAGE_AFTER_CHECKS', value: '3' }
        { name: 'HEALTH_PROBE_TIMEOUT_SECONDS', value: '2' }
        { name: 'AZURE_CREDENTIAL', value: 'default' }
        { name: 'AZURE_CLIENT_ID', value: identityClientId }
        { name: 'AZURE_EMULATOR_PRINCIPAL', value: '' }
        { name: 'AZURE_SUBSCRIPTION_ID', value: subscription().subscriptionId }
        { name: 'AZURE_RESOURCE_GROUP', value: resourceGroup().name }
        { name: 'AZURE_REGION', value: location }
        { name: 'AZURE_ARM_ENDPOINT', value: environment().resourceManager }
        { name: 'AZURE_METRICS_ENDPOINT', value: 'https://${location}.metrics.monitor.azure.com' }
        { name: 'AZURE_KEY_VAULT_URL', value: keyVaultUri }
        { name: 'AZURE_CA_BUNDLE', value: '' }
        { name: 'SCALE_SET_TEMPLATE', value: scaleSetTemplate }
      ]
    }
  }
}

output name string = site.name
