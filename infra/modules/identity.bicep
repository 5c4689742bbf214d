// A user-assigned identity: the Corda nodes' (reads the member's consortium-public only; never holds signing
// rights) or the Function App's (its roles are in roles.bicep and publication.bicep).
param location string
param name string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
