"""The Instance Metadata Service's managed-identity endpoint, as a VM's identity reaches it.

``GET /metadata/identity/oauth2/token?api-version=...&resource=...[&client_id=...]`` with the header
``Metadata: true`` answers as IMDS does (``access_token``, ``expires_in``, ``expires_on``,
``resource``, ``token_type``, ``client_id``), for a registered principal's user-assigned identity
named by its client id (``client_id_for``; without ``client_id``, the one principal registered, as
a VM with a single identity). ``azure.identity.ManagedIdentityCredential`` reaches it when
``AZURE_POD_IDENTITY_AUTHORITY_HOST`` is the emulator's URL (the credential's documented override of
IMDS's address), so code that runs with a VM's identity in Azure runs unchanged here.

The token is a JWT with the claims Azure Storage checks (``aud`` the resource, ``iss``
``https://sts.windows.net/{tenant}/``, ``nbf``/``exp``, ``oid``, ``tid``, ``appid``), which is what
Azurite's ``--oauth basic`` mode validates; its signature is not a real one (basic mode does not
check signatures), and no role is enforced by Azurite: which container an identity may read is
infra's (Storage Blob Data Reader on one container, tests/infra/test_bicep_roles.py).

Refusals, as IMDS words them: 400 ``invalid_request`` "Required metadata header not specified"
without ``Metadata: true``; 400 ``invalid_request`` "Identity not found" for a client id no principal
has.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import TYPE_CHECKING

from . import identity

if TYPE_CHECKING:
    from .server import Emulator, Request, Response, Router

#: The emulator's one tenant (every principal is in it).
TENANT = str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:consortium:tenant"))
LIFETIME = 3600
#: The token type IMDS names in its answer (a scheme, not a secret).
BEARER = "Bearer"


def client_id_for(name: str) -> str:
    """The client id of a principal's user-assigned managed identity, derived from its name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:consortium:client:{name}"))


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(name: str, resource: str, now: float) -> str:
    header = {"typ": "JWT", "alg": "RS256", "kid": "emulator"}
    claims = {
        "aud": resource, "iss": f"https://sts.windows.net/{TENANT}/", "iat": int(now), "nbf": int(now) - 300,
        "exp": int(now) + LIFETIME, "oid": identity.object_id_for(name), "sub": identity.object_id_for(name),
        "tid": TENANT, "appid": client_id_for(name), "idtyp": "app", "ver": "1.0",
    }  # fmt: skip
    parts = [json.dumps(header).encode(), json.dumps(claims).encode(), b"emulator: not a real signature"]
    return ".".join(_b64u(p) for p in parts)


def register(router: Router, emulator: Emulator) -> None:
    from .server import Response

    def invalid(description: str) -> Response:
        return Response(400, {"error": "invalid_request", "error_description": description})

    def get_token(r: Request) -> Response:
        if r.headers.get("metadata", "").lower() != "true":
            return invalid("Required metadata header not specified")
        resource = r.query.get("resource", "")
        if not resource:
            return invalid("Required query variable 'resource' is missing")
        client_id = r.query.get("client_id")
        names = sorted(emulator.principals)
        if client_id:
            names = [n for n in names if client_id_for(n) == client_id.lower()]
        if len(names) != 1:
            return invalid("Identity not found")
        now = time.time()
        return Response(200, {
            "access_token": token(names[0], resource, now), "client_id": client_id_for(names[0]),
            "expires_in": str(LIFETIME), "expires_on": str(int(now) + LIFETIME), "ext_expires_in": str(LIFETIME),
            "not_before": str(int(now) - 300), "resource": resource, "token_type": BEARER,
        })  # fmt: skip

    router.add("GET", "/metadata/identity/oauth2/token", "imds", get_token)
