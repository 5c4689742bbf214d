"""Forgeries against the membership chain, each run against every honest member's deployment on the local stack.

The stack is built here, in-process, on free ports, as ``make up`` builds it: one Azurite serving a storage
account per member (bank-a..bank-d), the Azure emulator with an identity, a subscription and a vault per
member, each member's settings, and the founders' ceremony (bank-a and bank-b): ``tools.harness.stack``
without the hosts. Each member's deployment is ``Platform(Settings(its settings))`` with the real adapters.
bank-c is then admitted for real: it creates its governance key in its own vault, proposes its admission
through its own ``Consortium``, bank-a and bank-b decide ``approve`` through theirs, and every deployment
ticks until all three hold
version 1. bank-d stays outside: a newcomer that applied and was never approved.

Then every attack of issue 15's list is run, each by one dishonest party that writes only into its own
storage account (its own ``consortium-public`` container, its own queues) or calls with its own
identity, and each honest deployment ticks after it. For each (forgery, honest deployment):

- **accepted**: the deployment's verified chain, its view of another member's decisions (the approvals
  and proposals it holds from members other than the attacker), its fork record, its keys or its scale
  set changed because of the forgery;
- **refused**: nothing of that changed and the reason was recorded (a new record under ``rejections/``
  in its own storage naming the source, the fork report naming who signed both, the rejection of the
  queue message, or the emulator's 403).

After each attack the attacker puts its container back as it was and publishes its genuine head again
(with a higher ``seq``), so the next attack starts from a clean consortium. The honest deployments'
Key Vault clients are wrapped to note any call to a key outside their own vault: "the app never
tries" is that list staying empty.

The package, by role: ``deployments`` (the stack, each honest member's in-process deployment, what a
forgery must not change in it), ``catalogue`` (the dishonest party's tools and every forgery, kind by
kind) and ``runner`` (each forgery run against every honest deployment, and the tally).
"""

from __future__ import annotations

from tools.forgeries.catalogue import KINDS, PUBLISHED, Attacker, Forgery
from tools.forgeries.deployments import MEMBERS, NEWCOMER, OUTSIDER, Deployment, Stack, local_stack
from tools.forgeries.runner import Result, Tally, run_attacks

__all__ = [
    "KINDS",
    "MEMBERS",
    "NEWCOMER",
    "OUTSIDER",
    "PUBLISHED",
    "Attacker",
    "Deployment",
    "Forgery",
    "Result",
    "Stack",
    "Tally",
    "local_stack",
    "run_attacks",
]
