"""One Corda identity, one process: the identity keeper and the fence in the identity's ledger.

A Corda node is an identity with a ledger (its vault database) and keys (its keystores), not a server:
two processes running one identity corrupt it, and a VM's disk must hold nothing that cannot be rebuilt
(docs/stateful-nodes.md). On each instance of a member's scale set:

- ``lease``: the identity's blob lease in the member's storage (``identities/{identity}``, 15-60 s), with a
  fencing token bumped at every acquisition, in the same layout as the control plane's leases so that
  the control plane reads who runs which identity.
- ``fence``: the identity's PostgreSQL ledger refuses every write that does not carry the current tenure's
  token; a new tenure begins by ending the old one's sessions.
- ``keeper``: takes the lease, fences the ledger, arms its tables, starts the node with the tenure's token,
  renews, and stops the node before the lease could expire when renewals fail.

Not yet in the VMs' cloud-init (``infra/corda-node.cloud-init.yaml`` carries the top-level ``nodeagent``
modules only): it starts the Corda node, which this machine cannot fetch yet (issue 25), and the cloud-init
has no room left under Azure's 64 KiB custom-data limit; the node's code is to come from the member's storage.
"""
