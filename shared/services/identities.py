"""Scale-in never removes an instance while it runs a Corda identity.

Each identity's keeper (``nodeagent/identity``) holds the identity's blob lease in the member's
``identity-leases`` container, naming its instance (``{scale set}/{instance id}``). On the autoscale tick,
before the policy decides, ``IdentityProtection.sync`` reads those leases (one listing) and sets Azure's
own "protect from scale-in" on each instance of the scale set that holds one, lifting it once the identity
has moved (never protection set by hand: ``shared.decisions.identities.protection_changes``). The
autoscale policy already stops scale-in at protected instances, and Azure (the emulator too) never removes
a protected instance on a capacity decrease. The instances are listed only when the set of running ones
differs from the last tick's, which ``identities/protection.json`` keeps with the instances the control
plane protected.

The tick syncs again just before it applies a scale-in and lets the scale-in wait a tick when an identity
moved meanwhile (``Autoscaler._identity_moved``). What this does not close: an identity that moves between
that last sync and Azure choosing the instances to remove can lose its new instance; its keeper dies with
the VM and the identity moves again (a failover, not a lost ledger: the ledger is not on the VM).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from shared.decisions.identities import Held, protection_changes, running_instances
from shared.errors import ConflictError
from shared.ports.leases import LeaseStore
from shared.ports.scalesets import ScaleSets
from shared.ports.state import StateStore

log = logging.getLogger(__name__)

STATE_PATH = "identities/protection.json"


@dataclass
class IdentityProtection:
    leases: LeaseStore  # over the member's identity-leases container
    scalesets: ScaleSets
    state: StateStore

    def running(self, scale_set: str) -> dict[str, str]:
        """Instance id -> identity, for the instances of ``scale_set`` that run one now."""
        held = [Held(r.name, r.holder, r.leased) for r in self.leases.records()]
        return running_instances(held, scale_set)

    def sync(self, scale_set: str) -> dict[str, bool]:
        """Protect exactly the instances that run an identity; the protection changes made (instance -> on)."""
        running = self.running(scale_set)
        doc = self.state.read(STATE_PATH)
        body: dict[str, Any] = dict(doc.body) if doc else {}
        before = body.get(scale_set) or {}
        if sorted(running) == before.get("running") or not (running or before.get("ours")):
            return {}  # nothing moved, or no identity runs here and nothing of ours is protected
        instances = {i.instance_id: i.protected_from_scale_in for i in self.scalesets.list_instances(scale_set)}
        changes, ours = protection_changes(instances, running, before.get("ours") or [])
        for instance, protect in changes.items():
            self.scalesets.set_protection(scale_set, instance, protect_from_scale_in=protect)
            log.info(
                "%s instance %s of %s from scale-in: %s",
                "protected" if protect else "released", instance, scale_set,
                f"it runs identity {running[instance]}" if protect else "it runs no identity any more",
            )  # fmt: skip
        body[scale_set] = {"running": sorted(running), "ours": sorted(ours)}
        try:
            if doc is None:
                self.state.create(STATE_PATH, body)
            else:
                self.state.replace(STATE_PATH, body, doc.etag)
        except ConflictError:
            pass  # another tick wrote first: the next one compares again and, if needed, lists again
        return changes
