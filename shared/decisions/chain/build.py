"""Building versions: the unsigned next version of a change, the unsigned genesis, signatures merged.

Whoever builds the version that applies a change to a trusted version gets the same bytes, so the
members sign one document; nothing built here is trusted before ``verify`` accepts it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.decisions.chain.model import Kind
from shared.decisions.chain.verify import Trusted


def unsigned_next(
    trusted: Trusted,
    change: Mapping[str, str],
    *,
    issued_at: str,
    entry: Mapping[str, Any] | None = None,
    network: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The unsigned version N+1 that applies ``change`` (with ``entry``, the member's new entry for an
    admit or a rotate; with ``network``, the new network of a ``parameters`` version) to the trusted
    version N: the same bytes whoever builds it. Every other kind carries N's ``network`` as it is."""
    base = trusted.raw
    if change["kind"] == Kind.PARAMETERS:
        if network is None:
            raise ValueError("a parameters version needs the new network")
        carried: Mapping[str, Any] | None = network
    elif network is not None:
        raise ValueError(f"a {change['kind']} carries the network as it was")
    else:
        carried = base.get("network")
    members: list[Mapping[str, Any]] = [m for m in base["members"] if m["member_id"] != change["member_id"]]
    if change["kind"] == Kind.PARAMETERS:
        members = list(base["members"])
    elif change["kind"] in (Kind.ADMIT, Kind.ROTATE):
        if entry is None:
            raise ValueError(f"a {change['kind']} needs the member's entry")
        members.append(entry)
    members.sort(key=lambda m: str(m["member_id"]))
    document = {
        "consortium": base["consortium"],
        "version": trusted.version + 1,
        "previous": trusted.hash,
        "issued_at": max(issued_at, str(base["issued_at"])),
        "quorum": base["quorum"],
        "change": dict(change),
        "members": [dict(m) for m in members],
        "signatures": [],
    }
    if carried is not None:
        document["network"] = dict(carried)
    return document


def unsigned_genesis(
    consortium: str,
    founders: Iterable[Mapping[str, Any]],
    *,
    convener: str,
    issued_at: str,
    network: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Version 0 listing ``founders`` (and, contract v3, the founding ``network``, epoch 1), before any
    founder signs it."""
    members = sorted((dict(m) for m in founders), key=lambda m: str(m["member_id"]))
    extra = {"network": dict(network)} if network is not None else {}
    return {
        "consortium": consortium,
        "version": 0,
        "previous": None,
        "issued_at": issued_at,
        "quorum": "majority",
        "change": {"kind": Kind.GENESIS.value, "member_id": convener, "proposal_id": f"prop-genesis-{convener}"},
        "members": members,
        **extra,
        "signatures": [],
    }


def with_signatures(document: Mapping[str, Any], signatures: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    """``document`` carrying ``signatures`` (added to those it has, each (member, kid) once, in order)."""
    merged = {(s["member_id"], s["kid"]): dict(s) for s in document.get("signatures", [])}
    for s in signatures:
        merged.setdefault((s["member_id"], s["kid"]), dict(s))
    return {**document, "signatures": [merged[k] for k in sorted(merged)]}
