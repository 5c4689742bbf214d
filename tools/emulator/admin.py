"""The emulator's admin API: health, principals, load, configuration, faults, instance failures,
missing metrics.

Used by `consortium load`, the stack, the demo, the tests and the chaos suite; never by the control
plane itself, and open to whoever reaches the port (an operator's API, like Azure's portal).

``PUT /_admin/principals/{name}`` registers a member's identity (see ``identity.py``), with an
optional body ``{"subscription_id": "<guid>", "vault": "kv-bank-a", "vault_port": 8444}``: by default
the subscription is derived from the name, the vault is ``kv-{name}`` and its port is any free one.
It answers what the member's deployment is configured with: its token, subscription id and vault
URL. Putting the same principal again changes nothing (its vault keeps its port); a vault belongs to
one principal, and a principal keeps its vault.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from . import identity
from .compute import DEFAULTS, FAULTS
from .server import Request, Response, Router, error

if TYPE_CHECKING:
    from .server import Emulator

SERVICES = ("compute", "metrics", "keyvault")
#: Key Vault's rule for vault names: 3 to 24 letters, digits and hyphens, starting with a letter.
VAULT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")


def _principal_view(r: Request, name: str, record: dict[str, Any]) -> dict[str, Any]:
    """What a deployment acting as this principal is configured with; version 1's vault is the root URL."""
    port = record.get("vault_port")
    return {"principal": name, "token": identity.token_for(name), "object_id": record["object_id"],
            "subscription_id": record["subscription_id"], "vault": record["vault"],
            "vault_url": f"https://localhost:{port}" if port else r.base_url, "roles": record["roles"]}  # fmt: skip


def register(router: Router, emulator: Emulator) -> None:
    state = emulator.state

    def health(r: Request) -> Response:
        return Response(200, {"status": "ok", "uptime_seconds": round(time.time() - emulator.started, 1)})

    def set_load(r: Request) -> Response:
        tpm = (r.body or {}).get("tpm")
        if not isinstance(tpm, int | float) or tpm < 0:
            return error(400, "BadRequest", "tpm must be a number of transactions per minute, at least 0")
        with state.lock:
            state.section("load").setdefault("loads", {}).setdefault(r.params["name"].lower(), []).append(
                [time.time(), float(tpm)]
            )
            state.save("load")
        return Response(200, {"scale_set": r.params["name"], "tpm": tpm})

    def get_load(r: Request) -> Response:
        name = r.params["name"]
        vmss = emulator.compute.find(name)
        return Response(200, {"scale_set": name, "tpm": emulator_offered(name),
                              "serving": emulator.compute.serving(vmss) if vmss else 0,
                              "capacity": vmss["capacity"] if vmss else 0})  # fmt: skip

    def emulator_offered(name: str) -> float:
        history = state.section("load").get("loads", {}).get(name.lower(), [])
        return float(history[-1][1]) if history else 0.0

    def set_config(r: Request) -> Response:
        body = r.body or {}
        unknown = [k for k in body if k not in DEFAULTS]
        if unknown:
            return error(400, "BadRequest", f"unknown setting(s) {unknown}; known: {sorted(DEFAULTS)}")
        with state.lock:
            state.section("load").setdefault("config", {}).update({k: float(v) for k, v in body.items()})
            state.save("load")
        return Response(200, {**DEFAULTS, **state.section("load")["config"]})

    def set_fault(r: Request) -> Response:
        service = r.params["service"]
        if service not in SERVICES:
            return error(400, "BadRequest", f"service must be one of {SERVICES}")
        spec = dict(r.body or {})
        status = spec.get("status")
        if status is not None and (not isinstance(status, int) or not (status == 429 or 500 <= status <= 599)):
            return error(400, "BadRequest", "status must be 429 or a 5xx code")
        emulator.faults.set(service, spec)
        return Response(200, {"service": service, **spec})

    def clear_faults(r: Request) -> Response:
        emulator.faults.clear()
        return Response(204)

    def set_instance(r: Request) -> Response:
        body = r.body or {}
        fault = body.get("fault")
        if fault not in (None, *FAULTS):
            return error(
                400, "BadRequest",
                "fault must be 'crashed' (ARM unhealthy; a restart fixes it), 'broken' (ARM unhealthy; a reimage "
                "does), 'hung' (ARM healthy, its Corda ports accept nothing; a restart fixes it), 'port_closed' "
                "(ARM healthy, its Corda ports refuse; a reimage fixes it) or null",
            )  # fmt: skip
        ports = body.get("ports")
        served = emulator.compute.corda_ports
        if ports is not None and (
            fault != "port_closed" or not isinstance(ports, list) or not ports
            or any(not isinstance(p, int) or isinstance(p, bool) or p not in served for p in ports)
        ):  # fmt: skip
            return error(
                400,
                "BadRequest",
                f"ports is only for port_closed: a non-empty list of Corda ports out of {list(served)}",
            )
        with state.lock:
            vmss = emulator.compute.find(r.params["name"])
            if vmss is None:
                return error(404, "NotFound", f"scale set {r.params['name']} was not found")
            for instance in vmss["instances"]:
                if instance["id"] == r.params["instance"]:
                    instance["fault"] = fault
                    if ports is None:
                        instance.pop("closed_ports", None)
                    else:
                        instance["closed_ports"] = sorted(set(ports))
                    state.save("compute")
                    emulator.compute.on_change()
                    answer = {"instance": instance["id"], "fault": fault}
                    return Response(200, {**answer, "ports": ports} if ports is not None else answer)
        return error(404, "NotFound", f"instance {r.params['instance']} was not found")

    def set_missing(r: Request) -> Response:
        with state.lock:
            state.section("load").setdefault("missing", {})[r.params["name"].lower()] = bool(
                (r.body or {}).get("missing", True)
            )
            state.save("load")
        return Response(200, {"scale_set": r.params["name"], "missing": (r.body or {}).get("missing", True)})

    def put_principal(r: Request) -> Response:
        name = r.params["name"]
        if not re.fullmatch(identity.NAME_PATTERN, name) or name == identity.LEGACY:
            return error(400, "BadRequest", f"principal {name!r} must be named like a member id (bank-a)")
        body = r.body or {}
        unknown = sorted(set(body) - {"subscription_id", "vault", "vault_port"})
        if unknown:
            return error(400, "BadRequest", f"unknown field(s) {unknown}; known: subscription_id, vault, vault_port")
        subscription = str(body.get("subscription_id") or identity.subscription_for(name)).lower()
        try:
            uuid.UUID(subscription)
        except ValueError:
            return error(400, "BadRequest", f"subscription_id {subscription!r} is not a GUID")
        port = body.get("vault_port")
        if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535):
            return error(400, "BadRequest", "vault_port must be a port number")
        with state.lock:
            principals = emulator.principals
            existing = principals.get(name)
            vault = str(body.get("vault") or (existing or {}).get("vault") or f"kv-{name}")
            if not VAULT_NAME.match(vault):
                return error(400, "BadRequest", f"vault {vault!r} is not a Key Vault name (3 to 24 letters, digits, -)")
            if existing is not None and existing["vault"] != vault:
                return error(409, "Conflict", f"principal {name} has vault {existing['vault']}; a vault never moves")
            owners = [n for n, rec in principals.items() if rec["vault"].lower() == vault.lower() and n != name]
            if owners or vault.lower() == identity.DEFAULT_VAULT:
                return error(409, "Conflict", f"vault {vault} belongs to {owners[0] if owners else 'version 1'}")
            wanted = port or (existing or {}).get("vault_port") or 0
            try:
                bound = emulator.open_vault(vault, int(wanted))
            except OSError as e:
                return error(409, "Conflict", f"cannot serve vault {vault} on port {wanted}: {e.strerror}")
            record = {"object_id": identity.object_id_for(name), "subscription_id": subscription, "vault": vault,
                      "vault_port": bound, "roles": identity.assignments(subscription, vault)}  # fmt: skip
            principals[name] = record
            state.save("principals")
        return Response(200 if existing else 201, _principal_view(r, name, record))

    def get_principal(r: Request) -> Response:
        name = r.params["name"]
        record = identity.legacy_record() if name == identity.LEGACY else emulator.principals.get(name)
        if record is None:
            return error(404, "NotFound", f"principal {name} is not registered")
        return Response(200, _principal_view(r, name, record))

    def list_principals(r: Request) -> Response:
        records = {identity.LEGACY: identity.legacy_record(), **emulator.principals}
        return Response(200, {"value": [_principal_view(r, n, rec) for n, rec in sorted(records.items())]})

    def reset(r: Request) -> Response:
        state.reset()
        return Response(204)

    router.add("GET", "/_admin/health", "admin", health)
    router.add("PUT", "/_admin/load/(?P<name>[^/]+)", "admin", set_load)
    router.add("GET", "/_admin/load/(?P<name>[^/]+)", "admin", get_load)
    router.add("PUT", "/_admin/config", "admin", set_config)
    router.add("PUT", "/_admin/faults/(?P<service>[a-z]+)", "admin", set_fault)
    router.add("DELETE", "/_admin/faults", "admin", clear_faults)
    router.add("PUT", r"/_admin/instances/(?P<name>[^/]+)/(?P<instance>\d+)", "admin", set_instance)
    router.add("PUT", "/_admin/metrics/(?P<name>[^/]+)", "admin", set_missing)
    router.add("POST", "/_admin/reset", "admin", reset)
    router.add("GET", "/_admin/principals", "admin", list_principals)
    router.add("PUT", "/_admin/principals/(?P<name>[^/]+)", "admin", put_principal)
    router.add("GET", "/_admin/principals/(?P<name>[^/]+)", "admin", get_principal)
