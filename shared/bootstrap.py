"""The composition root: builds every adapter from settings, lazily, in one place.

Handlers, the CLI and tools ask ``platform()`` for what they need; nothing connects at import time.
Tests build a ``Platform`` from their own settings (Azurite on free ports) or use the fakes directly.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from functools import cached_property, lru_cache
from typing import Any

from shared import settings as settings_module
from shared.adapters import metering
from shared.adapters.blob_leases import BlobLeaseStore
from shared.adapters.blob_state import CONTAINER, BlobStateStore
from shared.adapters.compute import ArmScaleSets
from shared.adapters.inbox_blobs import BlobInbox
from shared.adapters.keyvault import KeyVaultKeyStore
from shared.adapters.metrics import MonitorMetrics
from shared.adapters.published_blobs import PeerBlobs, PublicBlobs
from shared.adapters.storage import blob_service, queue_service
from shared.adapters.storage_queues import StorageQueues
from shared.decisions import node_infos
from shared.decisions.agreement import Timing
from shared.decisions.autoscale import ScalePolicy
from shared.decisions.forecast import ForecastPolicy, Mode
from shared.decisions.health import HealthPolicy
from shared.decisions.identities import LEASE_CONTAINER
from shared.decisions.rotation import KeyPolicy, parse_policy
from shared.naming import MEMBER_ID, key_name, valid_member_id
from shared.ports.clock import SystemClock
from shared.services.autoscale import Autoscaler
from shared.services.bus import Bus
from shared.services.consortium import ChainFollowed, Consortium, FastFollow, Identity, VersionAdopted
from shared.services.health import HealthMonitor, parse_ports
from shared.services.identities import IdentityProtection
from shared.services.leadership import Coordinator, holder_identity
from shared.services.node_infos import NodeInfoMirror, NodeInfoPublisher
from shared.services.onboarding import Onboarding
from shared.services.records import Events, Rejections
from shared.services.rotation import KeyRotator
from shared.services.status import build_status, consortium_view
from shared.settings import SettingError, Settings

#: Each key kind's policy setting; node identity is off by default and says why.
KEY_POLICY_SETTINGS = {
    "tls": "KEY_ROTATION_TLS",
    "governance": "KEY_ROTATION_GOVERNANCE",
    "identity": "KEY_ROTATION_IDENTITY",
}
IDENTITY_OFF = "off: Corda cannot rotate a node's legal identity key without R3's key rotation tool"


class Platform:
    def __init__(self, settings: Settings):
        self.settings = settings

    @cached_property
    def state(self) -> BlobStateStore:
        return BlobStateStore(
            blob_service(self.settings.values, **metering.hook("storage")).get_container_client(CONTAINER)
        )

    @cached_property
    def leases(self) -> BlobLeaseStore:
        return BlobLeaseStore(
            blob_service(self.settings.values, **metering.hook("storage")).get_container_client(CONTAINER)
        )

    @cached_property
    def identity_leases(self) -> BlobLeaseStore:
        """The Corda identities' leases, taken by the keepers on the nodes (``identity-leases``): read only here."""
        return BlobLeaseStore(
            blob_service(self.settings.values, **metering.hook("storage")).get_container_client(LEASE_CONTAINER)
        )

    @cached_property
    def queues(self) -> StorageQueues:
        return StorageQueues(queue_service(self.settings.values, **metering.hook("storage")))

    @cached_property
    def lease_seconds(self) -> int:
        return self.settings.integer("LEASE_SECONDS", minimum=15, maximum=60)

    @cached_property
    def keys(self) -> KeyVaultKeyStore:
        return KeyVaultKeyStore.from_settings(self.settings)

    @cached_property
    def scalesets(self) -> ArmScaleSets:
        return ArmScaleSets.from_settings(self.settings)

    @cached_property
    def holder(self) -> str:
        return holder_identity(self.settings.text("CONSORTIUM_DEPLOYMENT"))

    @cached_property
    def member_id(self) -> str:
        member_id = self.settings.text("CONSORTIUM_MEMBER_ID")
        if not valid_member_id(member_id):
            raise SettingError(f"setting CONSORTIUM_MEMBER_ID={member_id!r} must match {MEMBER_ID.pattern}")
        return member_id

    @cached_property
    def consortium(self) -> Consortium:
        """This member's part in the consortium; what it adopts reaches the others through ``bus``."""
        genesis = self.settings.text("CONSORTIUM_GENESIS_HASH").lower()
        if genesis and not re.fullmatch(r"[0-9a-f]{64}", genesis):
            raise SettingError("setting CONSORTIUM_GENESIS_HASH must be a lowercase hex SHA-256 (64 characters)")
        clock = SystemClock()
        events = Events(self.queues, clock)
        member_id = self.member_id
        service = Consortium(
            identity=Identity(member_id, key_name(member_id, "governance"),
                              self.settings.text("CONSORTIUM_PUBLIC_ENDPOINT")),
            genesis=genesis, state=self.state, public=PublicBlobs.from_settings(self.settings.values),
            peers=PeerBlobs.from_settings(self.settings.values), keys=self.keys, clock=clock, events=events,
            rejections=Rejections(self.state, events, clock),
            lifetime=timedelta(seconds=self.settings.integer("PROPOSAL_LIFETIME_SECONDS", minimum=60)),
            timing=Timing(timeout=(t := self.settings.number("AGREEMENT_TIMEOUT_SECONDS", minimum=0.5)), jitter=t),
            jitter=lambda round_: secrets.randbelow(1000) / 1000,
            fast=FastFollow(
                interval=self.settings.integer("CONSORTIUM_FAST_FOLLOW_INTERVAL_MS", minimum=50) / 1000,
                quiet=self.settings.number("CONSORTIUM_FAST_FOLLOW_SECONDS", minimum=0),
            ),
            bus=self.bus,
        )  # fmt: skip

        return service

    @cached_property
    def bus(self) -> Bus:
        """The consortium's announcements and who hears them: the membership sync (what a version about
        this member means here) and the key rotator (a rotation adopted moves on at once). The handlers
        are looked up when an announcement comes, so no service is built before it is needed."""
        bus = Bus()
        bus.subscribe(VersionAdopted, lambda event: self.onboarding.membership.version_adopted(event))
        bus.subscribe(VersionAdopted, lambda event: self.rotator.version_adopted(event))
        bus.subscribe(ChainFollowed, lambda event: self.onboarding.membership.chain_followed(event))
        return bus

    @cached_property
    def node_infos(self) -> NodeInfoMirror:
        """The other members' node infos, copied (once verified) where this member's own nodes read them."""
        consortium = self.consortium
        return NodeInfoMirror(self.member_id, consortium.public, consortium.peers, consortium.rejections)

    @cached_property
    def node_info_publisher(self) -> NodeInfoPublisher:
        """This member's own nodes' node infos, from its private inbox to its container, signed."""
        consortium = self.consortium
        return NodeInfoPublisher(
            self.member_id, BlobInbox.from_settings(self.settings.values), consortium.public, self.keys,
            self.state, consortium.rejections, SystemClock(),
        )  # fmt: skip

    @cached_property
    def inbox_url(self) -> str:
        """The nodes' ``node-infos-inbox`` container: in the app's own storage account, so derived from the
        ``AzureWebJobsStorage`` setting the app already reads (no second setting to keep in step)."""
        service = blob_service(self.settings.values)
        return f"{service.primary_endpoint.rstrip('/')}/{node_infos.INBOX_CONTAINER}"

    @cached_property
    def onboarding(self) -> Onboarding:
        return Onboarding(
            member_id=self.member_id,
            state=self.state,
            keys=self.keys,
            scalesets=self.scalesets,
            queues=self.queues,
            leases=self.leases,
            clock=SystemClock(),
            consortium=self.consortium,
            template=self.settings.text("SCALE_SET_TEMPLATE"),
            holder=self.holder,
            lease_seconds=self.lease_seconds,
            poll_seconds=self.settings.integer("ONBOARDING_POLL_SECONDS", minimum=1, maximum=300),
            inbox_url=self.inbox_url,
        )

    def status(self) -> dict[str, Any]:
        """This member's status model (docs/contract.md, ``status --json``), read from its own storage."""
        return build_status(
            self.member_id, self.state, self.leases, self.queues.count, self.consortium_view(),
            identity_leases=self.identity_leases,
        )  # fmt: skip

    def consortium_view(self) -> dict[str, Any]:
        """The member's view of the consortium (``status.consortium_view``): the CLI's and status's."""
        return consortium_view(self.consortium)

    @cached_property
    def coordinator(self) -> Coordinator:
        return Coordinator(self.leases, self.holder, self.lease_seconds)

    @cached_property
    def metrics(self) -> MonitorMetrics:
        return MonitorMetrics.from_settings(self.settings)

    @cached_property
    def scale_policy(self) -> ScalePolicy:
        """Default autoscale policy from settings; each member's record gives its own bounds."""
        s = self.settings
        return ScalePolicy(
            max_nodes=s.integer("AUTOSCALE_DEFAULT_MAX_NODES", minimum=1, maximum=1000),
            target_cpu=s.number("AUTOSCALE_TARGET_CPU", minimum=1),
            target_tpm_per_node=s.number("AUTOSCALE_TARGET_TPM_PER_NODE", minimum=1),
            tolerance=s.number("AUTOSCALE_TOLERANCE", minimum=0),
            scale_in_window_seconds=s.number("AUTOSCALE_SCALE_IN_WINDOW_SECONDS", minimum=0),
            cooldown_seconds=s.number("AUTOSCALE_COOLDOWN_SECONDS", minimum=0),
            transient_window_seconds=s.number("AUTOSCALE_TRANSIENT_WINDOW_SECONDS", minimum=0),
            transient_memory_seconds=s.number("AUTOSCALE_TRANSIENT_MEMORY_SECONDS", minimum=0),
            boot_seconds=s.number("AUTOSCALE_BOOT_SECONDS", minimum=0),
            forecast=ForecastPolicy(
                mode=Mode(s.choice("AUTOSCALE_PREDICTIVE", tuple(m.value for m in Mode))),
                history_seconds=86_400.0 * s.number("AUTOSCALE_PREDICTIVE_HISTORY_DAYS", minimum=0),
                margin_seconds=s.number("AUTOSCALE_PREDICTIVE_MARGIN_SECONDS", minimum=0),
                max_error=s.number("AUTOSCALE_PREDICTIVE_MAX_ERROR", minimum=0.001),
            ),
        )

    @cached_property
    def autoscaler(self) -> Autoscaler:
        protection = IdentityProtection(self.identity_leases, self.scalesets, self.state)
        return Autoscaler(
            state=self.state, scalesets=self.scalesets, metrics=self.metrics, queues=self.queues,
            leases=self.leases, clock=SystemClock(), defaults=self.scale_policy, protect_identities=protection.sync,
        )  # fmt: skip

    @cached_property
    def health(self) -> HealthMonitor:
        """The node health check: ARM health plus a TCP probe of the Corda ports, repairs within a budget."""
        s = self.settings
        try:
            ports = parse_ports(s.text("HEALTH_CORDA_PORTS"))
        except ValueError as e:
            raise SettingError(f"setting HEALTH_CORDA_PORTS={e}") from None
        policy = HealthPolicy(
            unhealthy_checks=s.integer("HEALTH_UNHEALTHY_CHECKS", minimum=1, maximum=100),
            reimage_after_checks=s.integer("HEALTH_REIMAGE_AFTER_CHECKS", minimum=1, maximum=100),
        )
        timeout = s.number("HEALTH_PROBE_TIMEOUT_SECONDS", minimum=0.1)
        if timeout > 30:
            raise SettingError(f"setting HEALTH_PROBE_TIMEOUT_SECONDS={timeout} must be at most 30")
        return HealthMonitor(
            state=self.state, scalesets=self.scalesets, queues=self.queues, leases=self.leases, clock=SystemClock(),
            policy=policy, corda_ports=ports, probe_timeout=timeout,
        )  # fmt: skip

    @cached_property
    def key_policies(self) -> dict[str, KeyPolicy]:
        """Each key kind's rotation policy, from its setting; a malformed one names itself and the rule."""
        policies = {}
        for kind, name in KEY_POLICY_SETTINGS.items():
            try:
                policies[kind] = parse_policy(
                    kind, self.settings.text(name), off_reason=IDENTITY_OFF if kind == "identity" else None
                )
            except ValueError as e:
                raise SettingError(f"{name}: {e}") from None
        return policies

    @cached_property
    def rotator(self) -> KeyRotator:
        return KeyRotator(
            member_id=self.member_id, state=self.state, keys=self.keys, leases=self.leases, queues=self.queues,
            clock=SystemClock(), policies=self.key_policies, holder=self.holder, consortium=self.consortium,
            lease_seconds=self.lease_seconds,
        )  # fmt: skip


@lru_cache(maxsize=1)
def platform() -> Platform:
    """The process's platform, from the process's settings."""
    return Platform(settings_module.load())
