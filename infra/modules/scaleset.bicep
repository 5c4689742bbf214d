// The member's Corda nodes: a Linux scale set behind the load balancer. Automatic repairs are off
// because the control plane repairs (restart, then reimage, within a budget); scale-in removes the
// newest VM and never a protected one. The control plane sets the capacity from Monitor metrics.
param location string
param name string
param capacity int
param vmSize string
param subnetId string
param backendPoolId string
param identityId string
@secure()
param adminSshPublicKey string
param customData string
param tags object

resource vmss 'Microsoft.Compute/virtualMachineScaleSets@2024-07-01' = {
  name: name
  location: location
  tags: tags
  zones: ['1', '2', '3']
  sku: {
    name: vmSize
    tier: 'Standard'
    capacity: capacity
  }
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    orchestrationMode: 'Uniform'
    upgradePolicy: {
      mode: 'Manual'
      automaticOSUpgradePolicy: {
        enableAutomaticOSUpgrade: true
        disableAutomaticRollback: false
      }
    }
    automaticRepairsPolicy: { enabled: false }
    scaleInPolicy: {
      rules: ['NewestVM']
      forceDeletion: false
    }
    virtualMachineProfile: {
      securityProfile: {
        encryptionAtHost: true
        securityType: 'TrustedLaunch'
        uefiSettings: { secureBootEnabled: true, vTpmEnabled: true }
      }
      osProfile: {
        computerNamePrefix: take(replace(name, '-', ''), 9)
        adminUsername: 'corda'
        customData: base64(customData)
        linuxConfiguration: {
          disablePasswordAuthentication: true
          ssh: {
            publicKeys: [
              { path: '/home/corda/.ssh/authorized_keys', keyData: adminSshPublicKey }
            ]
          }
          provisionVMAgent: true
        }
      }
      storageProfile: {
        imageReference: {
          publisher: 'Canonical'
          offer: 'ubuntu-24_04-lts'
          sku: 'server'
          version: 'latest'
        }
        osDisk: {
          createOption: 'FromImage'
          caching: 'ReadWrite'
          managedDisk: { storageAccountType: 'Premium_ZRS' }
        }
      }
      networkProfile: {
        networkInterfaceConfigurations: [
          {
            name: 'nic'
            properties: {
              primary: true
              enableAcceleratedNetworking: true
              ipConfigurations: [
                {
                  name: 'ipconfig'
                  properties: {
                    subnet: { id: subnetId }
                    loadBalancerBackendAddressPools: [{ id: backendPoolId }]
                  }
                }
              ]
            }
          }
        ]
      }
      extensionProfile: {
        extensions: [
          {
            name: 'health'
            properties: {
              publisher: 'Microsoft.ManagedServices'
              type: 'ApplicationHealthLinux'
              typeHandlerVersion: '2.0'
              autoUpgradeMinorVersion: true
              enableAutomaticUpgrade: true
              settings: { protocol: 'tcp', port: 10002 }
            }
          }
        ]
      }
    }
  }
}

output id string = vmss.id
