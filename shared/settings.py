"""Every setting the control plane reads, in one registry, parsed lazily into frozen objects.

The registry is the single source for three things that must not drift apart: the values in
``local.settings.sample.json`` (tests compare them), the app settings the Bicep deploys (tests compare
them too), and the settings table in docs/settings.md. Nothing here reads the environment at import time;
call :func:`load` (or build a ``Settings`` from a mapping in tests).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Setting:
    """One app setting: its name, its local default and what it is for."""

    name: str
    local_default: str
    description: str
    #: Value used when the setting is absent (None: the setting is required).
    default: str | None = None
    #: Read by the Functions host or an SDK rather than by our code (still set everywhere).
    platform: bool = False


_TEMPLATE_IDS = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-consortium-local/providers"
#: The local stack's scale set template: the emulator checks no identity, SSH key or cloud-init, so those are
#: empty; in Azure infra/main.bicep fills every field (shared/ports/scalesets.py TEMPLATE_FIELDS).
TEMPLATE = (
    '{"vm_size": "Standard_D2s_v5", "image": "Canonical:ubuntu-24_04-lts:server:latest", "zones": ["1", "2", "3"], '
    f'"subnet_id": "{_TEMPLATE_IDS}/Microsoft.Network/virtualNetworks/vnet-consortium/subnets/nodes", '
    f'"backend_pool_id": "{_TEMPLATE_IDS}/Microsoft.Network/loadBalancers/lb-corda/backendAddressPools/corda-nodes", '
    '"identity_id": "", "admin_ssh_public_key": "", "custom_data": "", "health_port": 10002}'
)

REGISTRY: tuple[Setting, ...] = (
    Setting(
        "AzureWebJobsStorage",
        "UseDevelopmentStorage=true",
        "Storage for the host, the queues and the consortium state. In Azure, identity-based: "
        "AzureWebJobsStorage__blobServiceUri / __queueServiceUri / __tableServiceUri / __credential.",
        platform=True,
    ),
    Setting("FUNCTIONS_WORKER_RUNTIME", "python", "Language worker of the app.", platform=True),
    Setting(
        "AzureWebJobsFeatureFlags",
        "EnableWorkerIndexing",
        "Lets the host index the Python v2 programming model.",
        platform=True,
    ),
    Setting(
        "CONSORTIUM_DEPLOYMENT",
        "local",
        "Name of this deployment (one per founding bank or region); part of the coordinator holder id.",
        default="default",
    ),
    Setting(
        "CONSORTIUM_MEMBER_ID",
        "bank-a",
        "The one member this deployment serves (its keys, scale sets and storage); ^[a-z][a-z0-9-]{1,30}[a-z0-9]$.",
    ),
    Setting(
        "CONSORTIUM_GENESIS_HASH",
        "",
        "Lowercase hex SHA-256 of the consortium's genesis document (given out of band when the member is set up): "
        "everything this deployment believes verifies from it. Locally, `make up` writes it after the founders' "
        "ceremony.",
        default="",
    ),
    Setting(
        "CONSORTIUM_PUBLIC_ENDPOINT",
        "http://127.0.0.1:10000/banka/consortium-public",
        "URL of this member's own consortium-public container, which its chain entry lists for the others.",
    ),
    Setting(
        "CONSORTIUM_PEER_READ_URLS",
        "{}",
        "JSON object: member id -> URL of a deployment's consortium-public container this member was introduced "
        "to (an applicant, or the members to read the chain from first). Locally each URL carries a read-only "
        "container SAS; in Azure a plain URL read with the app's identity (Storage Blob Data Reader there).",
        default="{}",
    ),
    Setting(
        "CONSORTIUM_READER_CLIENT_ID",
        "",
        "Azure only: client id of this member's multi-tenant app registration (infra/reader-app.sh), whose service "
        "principal in each other member's tenant holds Storage Blob Data Reader on that member's consortium-public; "
        "the app's user-assigned identity is its federated credential. Empty: the other containers are read with "
        "the app's own identity (locally, with the SAS in CONSORTIUM_PEER_READ_URLS).",
        default="",
    ),
    Setting(
        "CONSORTIUM_READER_TENANT_ID",
        "",
        "Azure only: the tenant the app registration of CONSORTIUM_READER_CLIENT_ID lives in (this member's).",
        default="",
    ),
    Setting(
        "CONSORTIUM_POLL_SCHEDULE",
        "*/1 * * * * *",
        "NCRONTAB schedule of the consortium tick: read the other members' heads (one conditional request each), "
        "agree, adopt, publish.",
        default="*/10 * * * * *",
    ),
    Setting(
        "CONSORTIUM_FAST_FOLLOW_SECONDS",
        "5",
        "While a change to the chain is in flight, a tick keeps re-reading the heads (every "
        "CONSORTIUM_FAST_FOLLOW_INTERVAL_MS) as long as something moved within this many seconds; 0: one read per "
        "timer occurrence. Nothing in flight or nothing moving costs no more than the timer's pace.",
        default="10",
    ),
    Setting(
        "CONSORTIUM_FAST_FOLLOW_INTERVAL_MS",
        "200",
        "Milliseconds between two reads of the heads while following closely (see CONSORTIUM_FAST_FOLLOW_SECONDS).",
        default="500",
    ),
    Setting(
        "PROPOSAL_LIFETIME_SECONDS",
        "604800",
        "How long a proposal stays open before it expires (7 days).",
        default="604800",
    ),
    Setting(
        "AGREEMENT_TIMEOUT_SECONDS",
        "3",
        "How long a leader waits for a ballot on the next version to move before it starts a higher one "
        "(plus up to as much again of jitter).",
        default="10",
    ),
    Setting(
        "COORDINATOR_SCHEDULE",
        "*/2 * * * * *",
        "NCRONTAB schedule on which every deployment contends for the coordinator role (client-go's 2 s retry).",
        default="*/2 * * * * *",
    ),
    Setting(
        "AZURE_CREDENTIAL",
        "emulator",
        "How Azure SDK clients authenticate: 'default' (DefaultAzureCredential: the app's managed identity in Azure) "
        "or 'emulator' (a static token for the local emulator).",
        default="default",
    ),
    Setting(
        "AZURE_CLIENT_ID",
        "",
        "Azure only: client id of the app's user-assigned managed identity, which DefaultAzureCredential uses "
        "(Key Vault, ARM, metrics). Empty locally.",
        platform=True,
    ),
    Setting(
        "AZURE_EMULATOR_PRINCIPAL",
        "",
        "Locally, the identity this deployment calls the emulator as (its member id, e.g. bank-a; the emulator "
        "refuses with 403 what that identity has no role for); empty: version 1's single shared identity. "
        "Empty in Azure, where the managed identity is the principal.",
        default="",
    ),
    Setting(
        "AZURE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000000", "Subscription of the members' scale sets."
    ),
    Setting("AZURE_RESOURCE_GROUP", "rg-consortium-local", "Resource group of this member's scale sets."),
    Setting("AZURE_REGION", "westeurope", "Region of the scale sets (the metrics batch API is regional)."),
    Setting(
        "AZURE_ARM_ENDPOINT",
        "https://localhost:8443",
        "Azure Resource Manager endpoint (the emulator locally).",
        default="https://management.azure.com",
    ),
    Setting(
        "AZURE_METRICS_ENDPOINT",
        "https://localhost:8443",
        "Regional Monitor metrics endpoint, e.g. https://westeurope.metrics.monitor.azure.com (the emulator locally).",
    ),
    Setting("AZURE_KEY_VAULT_URL", "https://localhost:8443", "Key Vault URI, e.g. https://kv-bank-a.vault.azure.net."),
    Setting(
        "AZURE_CA_BUNDLE",
        ".local/emulator/ca.pem",
        "CA certificate the SDK clients trust (the emulator's, locally); empty in Azure for the system store.",
        default="",
    ),
    Setting(
        "SCALE_SET_TEMPLATE",
        TEMPLATE,
        "JSON template of this member's Corda scale set, which the control plane alone creates (onboarding's "
        "provision step; the Bicep fills this setting and creates no scale set): vm_size, image "
        "(publisher:offer:sku:version or an image id), zones (list, empty where the region has none), subnet_id, "
        "backend_pool_id, identity_id (the nodes' user-assigned identity), admin_ssh_public_key, custom_data "
        "(base64 cloud-init that installs and starts the node), health_port (the Corda port the health extension "
        "probes).",
    ),
    Setting("LEASE_SECONDS", "15", "Duration of coordinator and per-member blob leases (15 to 60).", default="15"),
    Setting(
        "ONBOARDING_POLL_SECONDS",
        "1",
        "Delay before an onboarding re-checks a scale set that ARM is still provisioning (1 to 300).",
        default="10",
    ),
    Setting(
        "TELEMETRY_EXPORTER",
        "auto",
        "Where OpenTelemetry traces and metrics go: auto (Application Insights when "
        "APPLICATIONINSIGHTS_CONNECTION_STRING is set, else OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, else "
        "nowhere), azure_monitor, otlp, console or none.",
        default="auto",
    ),
    Setting(
        "POISON_SWEEP_SCHEDULE",
        "*/5 * * * * *",
        "NCRONTAB schedule of the sweep that records poison messages and marks their members failed.",
        default="0 * * * * *",
    ),
)


AUTOSCALE: tuple[Setting, ...] = (
    Setting(
        "AUTOSCALE_SCHEDULE",
        "*/10 * * * * *",
        "NCRONTAB schedule of the autoscale tick (it acts only on the coordinator).",
        default="0 * * * * *",
    ),
    Setting(
        "AUTOSCALE_TARGET_CPU",
        "80",
        "Average CPU (percent) each scale set is sized for; the larger of the CPU and transaction targets wins.",
        default="80",
    ),
    Setting(
        "AUTOSCALE_TARGET_TPM_PER_NODE",
        "850",
        "Transactions per minute one Corda node is sized to carry.",
        default="850",
    ),
    Setting(
        "AUTOSCALE_TOLERANCE",
        "0.1",
        "Dead band around the target (0.1: within 10% nothing changes).",
        default="0.1",
    ),
    Setting(
        "AUTOSCALE_SCALE_IN_WINDOW_SECONDS",
        "60",
        "Load must ask for fewer nodes for this long before a scale-in (the highest recommendation in it wins).",
        default="300",
    ),
    Setting(
        "AUTOSCALE_COOLDOWN_SECONDS",
        "30",
        "No scale-in for this long after any capacity change (600: no reversal within 10 minutes of a scale-out).",
        default="600",
    ),
    Setting(
        "AUTOSCALE_TRANSIENT_WINDOW_SECONDS",
        "120",
        "Scale-in window while load is bursty: load that fell back within the cooldown of a scale-out makes "
        "a scale-in wait this long without a higher recommendation (a scale-in before the next burst "
        "would be reversed minutes later).",
        default="1800",
    ),
    Setting(
        "AUTOSCALE_TRANSIENT_MEMORY_SECONDS",
        "300",
        "How long after a burst the longer scale-in window applies.",
        default="5400",
    ),
    Setting(
        "AUTOSCALE_BOOT_SECONDS",
        "30",
        "How long a new node takes to serve; nodes this young count as warming, not as missing capacity "
        "(locally, `make up` makes the emulator's nodes boot this long).",
        default="90",
    ),
    Setting(
        "AUTOSCALE_DEFAULT_MAX_NODES",
        "6",
        "Largest scale set for a member whose record gives no max_nodes.",
        default="6",
    ),
    Setting(
        "AUTOSCALE_PREDICTIVE",
        "on",
        "Scale out ahead of load the set's own history by time of day predicts: off (reactive only, no "
        "history kept), forecast (history kept, the forecast and what it would have done recorded, reactive "
        "acts), on (acts once the history is long enough and while the forecast has been right). Never "
        "scales in on a forecast.",
        default="on",
    ),
    Setting(
        "AUTOSCALE_PREDICTIVE_HISTORY_DAYS",
        "7",
        "Days of history a forecast needs before it is used (Azure predictive autoscale asks for 7).",
        default="7",
    ),
    Setting(
        "AUTOSCALE_PREDICTIVE_MARGIN_SECONDS",
        "180",
        "How far past the boot delay the forecast looks, so nodes serve before a predicted rise, not at it.",
        default="180",
    ),
    Setting(
        "AUTOSCALE_PREDICTIVE_MAX_ERROR",
        "0.25",
        "Back to reactive while the forecast's averaged error (outside the forecasts of its quarter-hour and "
        "the two beside it) exceeds this share of the averaged load; used again once it is back within.",
        default="0.25",
    ),
)

ROTATION: tuple[Setting, ...] = (
    Setting(
        "KEY_ROTATION_SCHEDULE",
        "*/15 * * * * *",
        "NCRONTAB schedule of the check of this member's own keys (on its coordinator only); "
        "`consortium rotate-keys` asks at once.",
        default="0 0 3 * * *",
    ),
    Setting(
        "KEY_ROTATION_TLS",
        "rotate=P90D overlap=PT60S warn=P14D",
        "This member's nodes' TLS key: rotate= age that makes a key due, overlap= how long the old version stays "
        "enabled and published (keys.json) beside the new, warn= how long before due key.expiring is announced "
        "(ISO 8601 durations).",
        default="rotate=P90D overlap=P7D warn=P14D",
    ),
    Setting(
        "KEY_ROTATION_GOVERNANCE",
        "rotate=P365D overlap=PT60S warn=P30D",
        "This member's governance key; same form as KEY_ROTATION_TLS. The new key goes through a rotate version "
        "of the chain; the overlap starts once a verified version lists it.",
        default="rotate=P365D overlap=P30D warn=P30D",
    ),
    Setting(
        "KEY_ROTATION_IDENTITY",
        "off rotate=P730D overlap=P30D warn=P60D",
        "Nodes' legal identity keys: off (Corda cannot rotate a legal identity key without R3's tool); "
        "leading 'off' removed turns it on.",
        default="off rotate=P730D overlap=P30D warn=P60D",
    ),
)

HEALTH: tuple[Setting, ...] = (
    Setting(
        "HEALTH_SCHEDULE",
        "*/10 * * * * *",
        "NCRONTAB schedule of the node health check (it acts only on the coordinator).",
        default="0 * * * * *",
    ),
    Setting(
        "HEALTH_CORDA_PORTS",
        "10002,10003",
        "Comma-separated Corda ports every node must accept TCP connections on (p2p, RPC); the emulator serves them.",
        default="10002,10003",
    ),
    Setting(
        "HEALTH_UNHEALTHY_CHECKS",
        "3",
        "Failed checks in a row (ARM unhealthy or a Corda port refused or timed out) before a node is restarted.",
        default="3",
    ),
    Setting(
        "HEALTH_REIMAGE_AFTER_CHECKS",
        "3",
        "Failed checks after a restart before the node is reimaged (and after a reimage before it is left to an "
        "operator).",
        default="3",
    ),
    Setting(
        "HEALTH_PROBE_TIMEOUT_SECONDS",
        "1",
        "How long a TCP probe of one Corda port waits for the connection (0.1 to 30).",
        default="2",
    ),
)

REGISTRY = REGISTRY + AUTOSCALE + ROTATION + HEALTH


def names() -> tuple[str, ...]:
    """Names of every registered setting, in registry order."""
    return tuple(s.name for s in REGISTRY)


def local_defaults() -> dict[str, str]:
    """The values ``local.settings.sample.json`` must hold."""
    return {s.name: s.local_default for s in REGISTRY}


class SettingError(ValueError):
    """A setting is missing or malformed; the message names it and the rule."""


@dataclass(frozen=True)
class Settings:
    """A read-only view of the settings, with typed accessors that name the setting on error."""

    values: Mapping[str, str]

    def text(self, name: str) -> str:
        value = self.values.get(name)
        if value is None:
            default = _DEFAULTS.get(name)
            if default is None:
                raise SettingError(f"setting {name} is required and not set")
            return default
        return value

    def integer(self, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
        raw = self.text(name)
        try:
            value = int(raw)
        except ValueError:
            raise SettingError(f"setting {name}={raw!r} must be a whole number") from None
        if minimum is not None and value < minimum:
            raise SettingError(f"setting {name}={value} must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise SettingError(f"setting {name}={value} must be at most {maximum}")
        return value

    def number(self, name: str, *, minimum: float | None = None) -> float:
        raw = self.text(name)
        try:
            value = float(raw)
        except ValueError:
            raise SettingError(f"setting {name}={raw!r} must be a number") from None
        if minimum is not None and value < minimum:
            raise SettingError(f"setting {name}={value} must be at least {minimum}")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        value = self.text(name).strip().lower()
        if value not in choices:
            raise SettingError(f"setting {name}={value!r} must be one of {', '.join(choices)}")
        return value

    def csv(self, name: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in self.text(name).split(",") if part.strip())


_DEFAULTS: dict[str, str] = {s.name: s.default for s in REGISTRY if s.default is not None}


@lru_cache(maxsize=1)
def load() -> Settings:
    """Settings of this process, read once from the environment (the host puts app settings there)."""
    return Settings(dict(os.environ))
