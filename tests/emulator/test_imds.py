"""The emulator's IMDS token endpoint answers as IMDS does, for a registered principal's identity."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest

from tools.emulator import EmulatorHandle, identity, imds
from tools.harness.stack import admin

pytestmark = pytest.mark.integration

PATH = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://storage.azure.com"


def get(handle: EmulatorHandle, query: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context(cafile=str(handle.ca))
    request = urllib.request.Request(f"{handle.url}{PATH}{query}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_a_registered_identity_gets_a_storage_token_by_its_client_id(emulator_instance: EmulatorHandle) -> None:
    admin(emulator_instance, "PUT", "/_admin/principals/imds-nodes", {})
    status, body = get(emulator_instance, f"&client_id={imds.client_id_for('imds-nodes')}", {"Metadata": "true"})
    assert status == 200 and body["token_type"] == "Bearer" and body["resource"] == "https://storage.azure.com"
    token = claims(body["access_token"])
    assert token["aud"] == "https://storage.azure.com" and token["iss"].startswith("https://sts.windows.net/")
    assert token["oid"] == identity.object_id_for("imds-nodes") and token["exp"] > token["nbf"]


def test_imds_refuses_a_request_without_the_metadata_header_or_for_an_unknown_identity(
    emulator_instance: EmulatorHandle,
) -> None:
    assert get(emulator_instance, "", {}) == (
        400, {"error": "invalid_request", "error_description": "Required metadata header not specified"}
    )  # fmt: skip
    status, body = get(emulator_instance, "&client_id=00000000-0000-0000-0000-0000000000ff", {"Metadata": "true"})
    assert (status, body["error_description"]) == (400, "Identity not found")
