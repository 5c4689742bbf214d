// A Standard internal load balancer in front of the Corda nodes, probing the node's P2P port.
param location string
param name string
param subnetId string
param cordaP2pPort int
param tags object

resource lb 'Microsoft.Network/loadBalancers@2024-05-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Regional'
  }
  properties: {
    frontendIPConfigurations: [
      {
        name: 'corda'
        properties: {
          subnet: { id: subnetId }
          privateIPAllocationMethod: 'Dynamic'
        }
        zones: ['1', '2', '3']
      }
    ]
    backendAddressPools: [
      { name: 'corda-nodes' }
    ]
    probes: [
      {
        name: 'corda-p2p'
        properties: {
          protocol: 'Tcp'
          port: cordaP2pPort
          intervalInSeconds: 5
          numberOfProbes: 2
          probeThreshold: 2
        }
      }
    ]
    loadBalancingRules: [
      {
        name: 'corda-p2p'
        properties: {
          frontendIPConfiguration: { id: resourceId('Microsoft.Network/loadBalancers/frontendIPConfigurations', name, 'corda') }
          backendAddressPool: { id: resourceId('Microsoft.Network/loadBalancers/backendAddressPools', name, 'corda-nodes') }
          probe: { id: resourceId('Microsoft.Network/loadBalancers/probes', name, 'corda-p2p') }
          protocol: 'Tcp'
          frontendPort: cordaP2pPort
          backendPort: cordaP2pPort
          enableFloatingIP: false
          idleTimeoutInMinutes: 15
          loadDistribution: 'SourceIP'
        }
      }
    ]
  }
}

output backendPoolId string = lb.properties.backendAddressPools[0].id
