"""What every Azure SDK client here shares: the credential, TLS trust, retries, and error translation.

- Credential: ``DefaultAzureCredential`` in Azure (the deployment's managed identity); locally
  (``AZURE_CREDENTIAL=emulator``) a static bearer token that names the principal the deployment acts
  as, ``emulator:{AZURE_EMULATOR_PRINCIPAL}`` (e.g. ``emulator:bank-a``), so the emulator refuses,
  as Azure would, what that member's identity has no role for; the SDKs' auth policies (Key Vault's
  challenge handshake included) still run. With the setting empty the token is ``emulator-token``,
  version 1's single shared identity, which goes away when the local stack runs one deployment per
  member.
- TLS: ``AZURE_CA_BUNDLE`` names the emulator's CA; empty in Azure (the system trust store).
- Retries: azure-core's ``RetryPolicy`` per client, kept short (3 tries, capped back-off) so the
  queue's own redelivery stays the outer retry mechanism.
- Errors: 429/5xx/timeouts/connection failures → ``TransientError`` (with Retry-After), 412 →
  ``ConflictError``, 404 → ``NotFoundError``, 403 → ``ForbiddenError`` (reason ``forbidden``: this
  identity has no role for it, or the key version is disabled; retrying never helps), 401 →
  ``PermanentError`` (reason ``auth``), anything else → ``PermanentError``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.adapters import metering
from shared.errors import ConflictError, ForbiddenError, NotFoundError, PermanentError, TransientError
from shared.reasons import Reason
from shared.settings import Settings

RETRY = {"retry_total": 3, "retry_backoff_factor": 0.4, "retry_backoff_max": 4, "retry_mode": "exponential"}


#: Version 1's token: one identity for the whole shared deployment (removed with version 1).
LEGACY_TOKEN = "emulator-token"  # noqa: S105 - a name the local emulator knows, not a secret  # nosec B105


class EmulatorCredential:
    """A TokenCredential for the local emulator: any scope, a token that names the principal and
    never needs refreshing (``emulator:bank-a``; version 1's ``emulator-token`` without a principal)."""

    def __init__(self, principal: str = "") -> None:
        self.token = f"emulator:{principal}" if principal else LEGACY_TOKEN

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(self.token, int(time.time()) + 3600)


def is_emulator(settings: Settings) -> bool:
    return settings.text("AZURE_CREDENTIAL").lower() == "emulator"


def credential(settings: Settings) -> TokenCredential:
    mode = settings.text("AZURE_CREDENTIAL").lower()
    if mode == "emulator":
        return EmulatorCredential(settings.text("AZURE_EMULATOR_PRINCIPAL"))
    if mode == "default":
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()
    raise PermanentError(f"setting AZURE_CREDENTIAL={mode!r} must be 'default' or 'emulator'", reason=Reason.SETTINGS)


def client_options(settings: Settings, service: str = "azure") -> dict[str, Any]:
    """Keyword arguments for any SDK client: TLS trust, the retry policy, request metering."""
    options: dict[str, Any] = {**RETRY, **metering.hook(service)}
    bundle = settings.text("AZURE_CA_BUNDLE")
    if bundle:
        path = Path(bundle)
        if not path.exists():
            raise TransientError(f"setting AZURE_CA_BUNDLE={bundle}: no such file (is the emulator running?)")
        options["connection_verify"] = str(path)
    return options


def translate(error: Exception, what: str) -> Exception:
    """An SDK error as one of the project's error kinds, naming what was being done."""
    if isinstance(error, ResourceModifiedError):
        return ConflictError(f"{what}: changed since it was read")
    if isinstance(error, ResourceNotFoundError):
        return NotFoundError(f"{what}: not found")
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return TransientError(f"{what}: service unreachable: {error}")
    if isinstance(error, ClientAuthenticationError):
        return PermanentError(f"{what}: authentication failed: {error.message}", reason=Reason.AUTH)
    if isinstance(error, HttpResponseError):
        status = error.status_code or 0
        headers = getattr(error.response, "headers", None) or {}
        if status == 412:
            return ConflictError(f"{what}: precondition failed (the ETag is stale)")
        if status == 404:
            return NotFoundError(f"{what}: not found")
        if status == 403:
            return ForbiddenError(what, _refusal(error))
        if status in (408, 429) or status >= 500:
            retry_after = headers.get("Retry-After")
            try:
                seconds = float(retry_after) if retry_after else None
            except ValueError:
                seconds = None
            return TransientError(f"{what}: the service answered {status}", retry_after=seconds)
        return PermanentError(f"{what}: the service answered {status}: {error.message}", reason=f"http_{status}")
    return error


def _refusal(error: HttpResponseError) -> str:
    """The service's own words for a 403 on one line: its code (and inner code) and its message."""
    code = getattr(error.error, "code", None) if error.error else None
    inner = None
    reader = getattr(error.response, "json", None)
    try:
        body: Any = reader() if callable(reader) else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = code or body["error"].get("code")
        inner = (body["error"].get("innererror") or {}).get("code")
    message = (getattr(error.error, "message", None) if error.error else None) or error.message or ""
    message = "; ".join(line.strip() for line in str(message).splitlines() if line.strip())
    codes = "/".join(c for c in (code, inner) if c)
    return f"{codes}: {message}" if codes else message
