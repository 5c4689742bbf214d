"""Each local member deployment's settings: ``.local/members/{member_id}/local.settings.json``.

The local stack runs one deployment per member (docs/contract.md, "The local stack"). Each member's file
is ``local.settings.sample.json`` plus the values that make it that member's deployment:

- ``CONSORTIUM_MEMBER_ID``: the member it serves (``bank-a``);
- ``CONSORTIUM_DEPLOYMENT``: ``{member_id}-local`` (one deployment of that member);
- ``AzureWebJobsStorage``: its own account in the local Azurite (``banka``), path-style, development key;
- ``AzureFunctionsWebHost__hostid``: ``consortium-{member_id}``, so timers' schedule and listener-lock
  blobs never collide;
- ``CONSORTIUM_PUBLIC_ENDPOINT``: the URL of its own ``consortium-public`` container (what the chain
  lists for it);
- ``CONSORTIUM_PEER_READ_URLS``: a JSON object, member id -> read-only SAS URL of that member's
  ``consortium-public``, for every other member;
- ``AZURE_EMULATOR_PRINCIPAL``, ``AZURE_SUBSCRIPTION_ID``, ``AZURE_KEY_VAULT_URL``: the member's
  identity, subscription and vault in the Azure emulator (see :func:`emulator_values`);

and ``Host.LocalHttpPort``, its HTTP port (bank-a 7071 ... bank-d 7074), where Core Tools reads it and
where the stack's launcher takes it from.

``CONSORTIUM_PEER_READ_URLS`` is local only: in Azure a deployment reads another member's container
at the endpoint the chain lists, with its own identity holding Storage Blob Data Reader there, and
the setting is absent. Locally each URL carries a service SAS scoped to that one container, read and
list only, living at most 7 days (``tools.provision.public_read_sas``); each ``make up`` writes fresh
ones. No account key is in these files but Azurite's public development key, in the member's own
connection string.

Values a developer changed in a member's file are kept, as ``tools/local_settings.py`` does for
``local.settings.json`` (which is unchanged by this module), except the member-specific ones above,
which are rewritten each time so they always match the stack and the credentials stay fresh.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tools import azurite, provision
from tools.local_settings import stale

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "local.settings.sample.json"
#: Each member's HTTP port, in the order of ``azurite.MEMBER_IDS`` (bank-a 7071 ... bank-d 7074).
FIRST_PORT = 7071
PEER_READ_SETTING = "CONSORTIUM_PEER_READ_URLS"
PUBLIC_ENDPOINT_SETTING = "CONSORTIUM_PUBLIC_ENDPOINT"
HOST_ID_SETTING = "AzureFunctionsWebHost__hostid"
#: The settings this module owns in a member's file (rewritten every time).
MEMBER_SETTINGS = (
    "CONSORTIUM_MEMBER_ID",
    "CONSORTIUM_DEPLOYMENT",
    "AzureWebJobsStorage",
    HOST_ID_SETTING,
    PUBLIC_ENDPOINT_SETTING,
    PEER_READ_SETTING,
    "AZURE_EMULATOR_PRINCIPAL",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_KEY_VAULT_URL",
)
_ZERO_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


def settings_path(member_id: str, root: Path = ROOT) -> Path:
    return root / ".local" / "members" / member_id / "local.settings.json"


def http_port(member_id: str, members: Iterable[str] = azurite.MEMBER_IDS) -> int:
    ordered = list(members)
    if member_id not in ordered:
        raise ValueError(f"{member_id!r} is not a local member ({', '.join(ordered)})")
    return FIRST_PORT + ordered.index(member_id)


def subscription_id(member_id: str) -> str:
    """The member's subscription in the emulator: a stable GUID of its own, never the shared zero GUID.

    Derived as the emulator derives it when it registers the member (``tools/emulator/identity.py`` on
    the emulator's issue-15 branch), so the placeholder and the registered value agree.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:consortium:subscription:{member_id}"))


@dataclass(frozen=True)
class Emulator:
    """Where the stack's Azure emulator answers, and the members it registered (their identities).

    ``principals`` maps a member id to what the emulator answered when the stack registered it
    (``PUT /_admin/principals/{member_id}``: ``subscription_id``, ``vault_url``, ...); empty while the
    emulator has no per-member identities.
    """

    url: str
    ca: Path
    principals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def values(self) -> dict[str, str]:
        return {
            "AZURE_ARM_ENDPOINT": self.url,
            "AZURE_METRICS_ENDPOINT": self.url,
            "AZURE_KEY_VAULT_URL": self.url,
            "AZURE_CA_BUNDLE": str(self.ca),
        }


def emulator_values(member_id: str, sample: Mapping[str, str], emulator: Emulator | None = None) -> dict[str, str]:
    """The member's identity, subscription and vault in the Azure emulator.

    As the emulator registered it when it did (its own subscription, its own vault URL); otherwise
    placeholders: the principal is the member id, the subscription the GUID the emulator would give
    it, the vault URL the emulator's own (the sample's unless ``emulator`` says where it answers).
    """
    registered = emulator.principals.get(member_id, {}) if emulator else {}
    return {
        "AZURE_EMULATOR_PRINCIPAL": member_id,
        "AZURE_SUBSCRIPTION_ID": str(registered.get("subscription_id") or subscription_id(member_id)),
        "AZURE_KEY_VAULT_URL": str(
            registered.get("vault_url") or (emulator.url if emulator else sample["AZURE_KEY_VAULT_URL"])
        ),
    }


def member_values(
    member_id: str,
    az: azurite.Azurite,
    sample: Mapping[str, str],
    *,
    members: Iterable[str] = azurite.MEMBER_IDS,
    emulator: Emulator | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """The values that make ``sample`` into ``member_id``'s deployment on the Azurite ``az``."""
    account = azurite.account_for(member_id)
    peers = {
        peer: provision.public_container_url(az.blob_endpoint(azurite.account_for(peer)))
        + "?"
        + provision.public_read_sas(azurite.account_for(peer), azurite.ACCOUNT_KEY, now=now)
        for peer in members
        if peer != member_id
    }
    values = {
        "CONSORTIUM_MEMBER_ID": member_id,
        "CONSORTIUM_DEPLOYMENT": f"{member_id}-local",
        "AzureWebJobsStorage": az.connection_string_for(account),
        HOST_ID_SETTING: f"consortium-{member_id}",
        PUBLIC_ENDPOINT_SETTING: provision.public_container_url(az.blob_endpoint(account)),
        PEER_READ_SETTING: json.dumps(peers, sort_keys=True),
        **emulator_values(member_id, sample, emulator),
    }
    return values


def write(
    member_id: str,
    az: azurite.Azurite,
    *,
    root: Path = ROOT,
    sample_path: Path = SAMPLE,
    members: Iterable[str] = azurite.MEMBER_IDS,
    port: int | None = None,
    emulator: Emulator | None = None,
    now: datetime | None = None,
) -> Path:
    """Write (or bring up to date) ``member_id``'s settings file; return its path.

    ``port`` is its HTTP port (default: :func:`http_port`; tests choose free ones); ``emulator`` where
    the Azure emulator answers, if not where the sample says.
    """
    members = tuple(members)
    wanted: dict[str, Any] = json.loads(sample_path.read_text())
    sample = {str(k): str(v) for k, v in wanted["Values"].items()}
    target = settings_path(member_id, root)
    current: dict[str, Any] = json.loads(target.read_text()) if target.exists() else {}
    values = {**sample, **current.get("Values", {})}
    if emulator is not None:
        values.update(emulator.values())
    values.update(member_values(member_id, az, sample, members=members, emulator=emulator, now=now))
    # a template written before the template gained fields is the sample's again (tools/local_settings.py);
    # the member's subscription in its resource ids, so they name its own subscription
    if stale(values.get("SCALE_SET_TEMPLATE", ""), sample.get("SCALE_SET_TEMPLATE", "")):
        values["SCALE_SET_TEMPLATE"] = sample["SCALE_SET_TEMPLATE"]
    template = values.get("SCALE_SET_TEMPLATE", "")
    values["SCALE_SET_TEMPLATE"] = template.replace(_ZERO_SUBSCRIPTION, values["AZURE_SUBSCRIPTION_ID"])
    document = {
        **wanted,
        **{k: v for k, v in current.items() if k not in ("Values", "Host")},
        "Values": values,
        "Host": {**current.get("Host", {}), "LocalHttpPort": port or http_port(member_id, members)},
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=2) + "\n")
    return target


def write_all(
    az: azurite.Azurite,
    *,
    root: Path = ROOT,
    sample_path: Path = SAMPLE,
    members: Iterable[str] = azurite.MEMBER_IDS,
    ports: Mapping[str, int] | None = None,
    emulator: Emulator | None = None,
    now: datetime | None = None,
) -> dict[str, Path]:
    """Every member's settings file, for the Azurite ``az`` (``ports``: HTTP ports other than the defaults)."""
    members = tuple(members)
    ports = ports or {}
    common: dict[str, Any] = {"root": root, "sample_path": sample_path, "members": members, "emulator": emulator}
    return {m: write(m, az, port=ports.get(m), now=now, **common) for m in members}


def read(path: Path) -> tuple[dict[str, str], int]:
    """A member's settings file: its values and its HTTP port."""
    document = json.loads(path.read_text())
    return {str(k): str(v) for k, v in document["Values"].items()}, int(document["Host"]["LocalHttpPort"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.member_settings", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    for member, path in write_all(azurite.Azurite(*azurite.DEFAULT_PORTS)).items():
        print(f"{member}: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
