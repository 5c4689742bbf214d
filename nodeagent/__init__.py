"""The Corda node's agent: the node transacts only with what the membership chain admits.

Runs on every node VM as ``python -m nodeagent``, started by a systemd timer (every minute), as a
user of its own that can write only ``additional-node-infos`` (and its own state folder). Each run
(``nodeagent.run``):

1. reads the member's own ``consortium-public`` container, the only storage the nodes' identity may
   read (Storage Blob Data Reader on that container, infra/modules/publication.bicep); the other role
   it holds is on the member's private ``node-infos-inbox``, where the agent offers its own node's
   ``NodeInfo`` file before each run (``nodeagent.inbox``) for the control plane to sign and publish;
2. verifies the chain itself from the pinned genesis hash with ``chain.NodeTrust``, the control
   plane's own verification code, shipped to the VM byte for byte (infra/corda-node.cloud-init.yaml,
   checked by tests/nodeagent/test_cloud_init.py). The control plane's ``membership.json`` is not
   believed: the agent computes the admitted members from the head it verified;
3. writes the admitted members' ``NodeInfo`` files into ``<corda dir>/additional-node-infos``, which
   is how Corda runs without a network map (network-map.rst), and removes the others' files; Corda
   picks up both changes while running, so the node is never restarted for them;
4. restarts the node only for a flag day of its own member that has come (``node_infos.decide_restart``).

Where the ``NodeInfo`` files come from. The chain names members, their keys and endpoints, not the
nodes they run (which change with capacity). So each member publishes, in its own container, its
nodes' files and an index of their SHA-256, signed with its governance key, which the chain lists
(``shared.decisions.node_infos``). The agent accepts a file only if its hash is in an index whose
signature verifies with the governance key the *verified* head lists for that member, and only for
members that head admits; an index older than one it accepted is refused (no replays).

Why the agent reads only its own member's container. The nodes' identity holds a role on that one
container; other members grant read access to the member's app registration, not to its VMs. So the
member's control plane mirrors each other member's ``nodes/{member_id}/`` (the signed index and the
files, byte for byte) into its own container, and the agent verifies them exactly as if it had read
them at the source: the mirror is transport, not trust. A control plane that copied a forged index
would gain nothing, since the signature is checked against the chain the agent verified itself.

Flag days. The chain (contract v2) has no field for network parameters. A flag day is the member's
own signed ``flag-day.json`` (its operator accepted a parameters change; each member's operator does,
and Corda itself checks the parameters' signer against the network's root): its id, the switch time
and the SHA-256 of the new ``network-parameters`` file, published beside it. Once the switch time has
passed, the agent stages the verified parameters and writes a restart request, once per flag day
(recorded in its state); a root-owned systemd path unit installs the file and restarts Corda. Anything
else, a new version, a member admitted or gone, files written or removed, restarts nothing.
"""
