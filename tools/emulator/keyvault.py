"""Key Vault keys over the REST API the SDK speaks: the 401 challenge handshake, create, get, list
versions, update (enable/disable, tags), rotate, sign and verify, and the rotation policy.

Each vault keeps its own keys: a request reaches the vault of the listener that took it (the root URL
serves version 1's vault, every other vault has a port of its own; see ``server.py``), so a key named
like another member's, made in one's own vault, lives only there. Who may call which route is
checked before a handler runs (``Emulator.authorize``), with the data action each route names.

Private keys are generated and kept here and never returned; only public JWKs leave the emulator.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from .server import Request, Response, Router, error
from .state import State

CHALLENGE = 'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"'


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_bytes(n: int, length: int | None = None) -> bytes:
    return n.to_bytes(length or (n.bit_length() + 7) // 8, "big")


class KeyVault:
    def __init__(self, state: State):
        self.state = state

    def keys(self, vault: str) -> dict[str, Any]:
        with self.state.lock:
            return self.state.section("keyvault").setdefault(vault, {})  # type: ignore[no-any-return]

    def _new_version(self, vault: str, name: str, kty: str, tags: dict[str, str], exportable: bool) -> dict[str, Any]:
        if kty.startswith("EC"):
            private: Any = ec.generate_private_key(ec.SECP256R1())
            numbers = private.public_key().public_numbers()
            public = {
                "kty": "EC",
                "crv": "P-256",
                "x": b64u(_int_bytes(numbers.x, 32)),
                "y": b64u(_int_bytes(numbers.y, 32)),
            }
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            numbers = private.public_key().public_numbers()
            public = {"kty": "RSA", "n": b64u(_int_bytes(numbers.n)), "e": b64u(_int_bytes(numbers.e))}
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        now = int(time.time())
        version = {"version": uuid.uuid4().hex, "created": now, "updated": now, "enabled": True, "exportable": exportable,
                   "tags": tags, "public": public, "private_pem": pem.decode()}  # fmt: skip
        with self.state.lock:
            self.keys(vault).setdefault(name, {"versions": [], "policy": None})["versions"].append(version)
            self.state.save("keyvault")
        return version

    def _find(self, vault: str, name: str, version: str | None) -> dict[str, Any]:
        entry = self.keys(vault)[name]
        if not version:
            return dict(entry["versions"][-1])
        for v in entry["versions"]:
            if v["version"] == version:
                return dict(v)
        raise KeyError(f"{name}/{version}")

    def bundle(self, request: Request, name: str, v: dict[str, Any]) -> dict[str, Any]:
        kid = f"{request.base_url}/keys/{name}/{v['version']}"
        ops = ["sign", "verify"]
        return {
            "key": {"kid": kid, **v["public"], "key_ops": ops},
            "attributes": self._attributes(v),
            "tags": v["tags"],
        }

    @staticmethod
    def _attributes(v: dict[str, Any]) -> dict[str, Any]:
        return {"enabled": v["enabled"], "created": v["created"], "updated": v["updated"],
                "recoveryLevel": "Recoverable", "recoverableDays": 90, "exportable": v["exportable"]}  # fmt: skip

    # -- handlers --------------------------------------------------------------------------------
    def create(self, r: Request) -> Response:
        body = r.body or {}
        kty = str(body.get("kty", ""))
        if kty not in ("EC", "EC-HSM", "RSA", "RSA-HSM"):
            return error(400, "BadParameter", f"kty {kty!r} is not supported (EC, RSA)")
        if kty.startswith("EC") and body.get("crv", "P-256") != "P-256":
            return error(400, "BadParameter", "only the P-256 curve is emulated")
        attributes = body.get("attributes") or {}
        if attributes.get("exportable") and not body.get("release_policy"):
            return error(400, "BadParameter", "exportable keys must have a release policy")
        v = self._new_version(
            r.vault, r.params["name"], kty, dict(body.get("tags") or {}), bool(attributes.get("exportable", False))
        )
        return Response(200, self.bundle(r, r.params["name"], v))

    def get(self, r: Request) -> Response:
        name, version = r.params["name"], r.params.get("version")
        if name not in self.keys(r.vault):
            return error(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault.")
        try:
            return Response(200, self.bundle(r, name, self._find(r.vault, name, version)))
        except KeyError:
            return error(404, "KeyNotFound", f"A key with (name/id) {name}/{version} was not found in this key vault.")

    def versions(self, r: Request) -> Response:
        name = r.params["name"]
        if name not in self.keys(r.vault):
            return error(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault.")
        items = [{"kid": f"{r.base_url}/keys/{name}/{v['version']}", "attributes": self._attributes(v), "tags": v["tags"]}
                 for v in self.keys(r.vault)[name]["versions"]]  # fmt: skip
        return Response(200, {"value": items, "nextLink": None})

    def update(self, r: Request) -> Response:
        name, version = r.params["name"], r.params.get("version")
        body = r.body or {}
        with self.state.lock:
            if name not in self.keys(r.vault):
                return error(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault.")
            target = self._find(r.vault, name, version)["version"]
            for v in self.keys(r.vault)[name]["versions"]:
                if v["version"] == target:
                    attributes = body.get("attributes") or {}
                    if "enabled" in attributes:
                        v["enabled"] = bool(attributes["enabled"])
                    if "tags" in body and body["tags"] is not None:
                        v["tags"] = dict(body["tags"])
                    v["updated"] = int(time.time())
                    self.state.save("keyvault")
                    return Response(200, self.bundle(r, name, v))
        return error(404, "KeyNotFound", f"{name}/{version}")

    def rotate(self, r: Request) -> Response:
        name = r.params["name"]
        if name not in self.keys(r.vault):
            return error(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault.")
        latest = self.keys(r.vault)[name]["versions"][-1]
        v = self._new_version(r.vault, name, latest["public"]["kty"], dict(latest["tags"]), latest["exportable"])
        return Response(200, self.bundle(r, name, v))

    def _private(self, r: Request) -> tuple[dict[str, Any], Any] | Response:
        name, version = r.params["name"], r.params.get("version")
        if name not in self.keys(r.vault):
            return error(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault.")
        v = self._find(r.vault, name, version)
        if not v["enabled"]:
            return error(403, "Forbidden", "Operation is not allowed on a disabled key.")
        return v, serialization.load_pem_private_key(v["private_pem"].encode(), password=None)

    def sign(self, r: Request) -> Response:
        found = self._private(r)
        if isinstance(found, Response):
            return found
        v, key = found
        alg, digest = (r.body or {}).get("alg"), unb64u((r.body or {}).get("value", ""))
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
            if len(digest) != 32:
                return error(400, "BadParameter", "ES256 takes a 32-byte SHA-256 digest")
            der = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            rr, ss = utils.decode_dss_signature(der)
            signature = _int_bytes(rr, 32) + _int_bytes(ss, 32)
        elif alg == "RS256" and isinstance(key, rsa.RSAPrivateKey):
            signature = key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        else:
            return error(400, "BadParameter", f"algorithm {alg!r} does not fit this key")
        return Response(200, {"kid": f"{r.base_url}/keys/{r.params['name']}/{v['version']}", "value": b64u(signature)})

    def verify(self, r: Request) -> Response:
        found = self._private(r)
        if isinstance(found, Response):
            return found
        _, key = found
        body = r.body or {}
        alg, digest, signature = body.get("alg"), unb64u(body.get("digest", "")), unb64u(body.get("value", ""))
        public = key.public_key()
        try:
            if alg == "ES256":
                if len(signature) != 64:
                    return Response(200, {"value": False})
                der = utils.encode_dss_signature(
                    int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                )
                public.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            elif alg == "RS256":
                public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
            else:
                return error(400, "BadParameter", f"algorithm {alg!r} is not supported")
        except (InvalidSignature, ValueError):
            return Response(200, {"value": False})
        return Response(200, {"value": True})

    def get_policy(self, r: Request) -> Response:
        name = r.params["name"]
        if name not in self.keys(r.vault):
            return error(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault.")
        policy = self.keys(r.vault)[name].get("policy") or {
            "lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}],
            "attributes": {},
        }
        return Response(200, {"id": f"{r.base_url}/keys/{name}/rotationpolicy", **policy})

    def put_policy(self, r: Request) -> Response:
        name = r.params["name"]
        if name not in self.keys(r.vault):
            return error(404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault.")
        body = r.body or {}
        now = int(time.time())
        policy = {"lifetimeActions": body.get("lifetimeActions") or [],
                  "attributes": {**(body.get("attributes") or {}), "created": now, "updated": now}}  # fmt: skip
        with self.state.lock:
            self.keys(r.vault)[name]["policy"] = policy
            self.state.save("keyvault")
        return Response(200, {"id": f"{r.base_url}/keys/{name}/rotationpolicy", **policy})


def register(router: Router, kv: KeyVault) -> None:
    """Key Vault's routes, each with the data action that a role must grant (``Emulator.authorize``)."""
    name = r"/keys/(?P<name>[0-9a-zA-Z-]{1,127})"
    version = "(?P<version>[0-9a-f]{32})"
    router.add("POST", f"{name}/create", "keyvault", kv.create, "keys/create/action")
    router.add("POST", f"{name}/rotate", "keyvault", kv.rotate, "keys/rotate/action")
    router.add("GET", f"{name}/versions", "keyvault", kv.versions, "keys/read")
    router.add("GET", f"{name}/rotationpolicy", "keyvault", kv.get_policy, "keyrotationpolicies/read")
    router.add("PUT", f"{name}/rotationpolicy", "keyvault", kv.put_policy, "keyrotationpolicies/write")
    router.add("POST", f"{name}/{version}/sign", "keyvault", kv.sign, "keys/sign/action")
    router.add("POST", f"{name}/{version}/verify", "keyvault", kv.verify, "keys/verify/action")
    router.add("GET", f"{name}(?:/{version}?)?/?", "keyvault", kv.get, "keys/read")
    router.add("PATCH", f"{name}(?:/{version}?)?/?", "keyvault", kv.update, "keys/update/action")
