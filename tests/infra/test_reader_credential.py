"""How the app reads another member's consortium-public in Azure: as its multi-tenant app registration,
with its user-assigned managed identity's token as the client assertion (PLATFORM_FACTS §8). No Azure
here: the managed identity is replaced, and the token request is answered by a transport of the test's."""

from __future__ import annotations

import json
from typing import Any, ClassVar
from urllib.parse import parse_qs

import azure.identity
import pytest
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpTransport
from azure.identity import ClientAssertionCredential

from shared.adapters import published_blobs
from shared.adapters.published_blobs import PeerBlobs, reader_credential
from shared.errors import PermanentError

HOME = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"
APP = "33333333-3333-3333-3333-333333333333"
IDENTITY = "44444444-4444-4444-4444-444444444444"
AZURE = {
    "CONSORTIUM_READER_CLIENT_ID": APP,
    "CONSORTIUM_READER_TENANT_ID": HOME,
    "AzureWebJobsStorage__clientId": IDENTITY,
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__blobServiceUri": "https://stbanka.blob.core.windows.net",
}


class FakeManagedIdentity:
    """Stands in for the app's user-assigned identity; records what it was asked for."""

    made: ClassVar[list[str | None]] = []
    asked: ClassVar[list[tuple[str, ...]]] = []

    def __init__(self, client_id: str | None = None, **_: Any) -> None:
        self.made.append(client_id)

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.asked.append(scopes)
        return AccessToken("managed-identity-assertion", 4_000_000_000)


class TokenEndpoint(HttpTransport):  # type: ignore[misc]
    """Answers Entra's token endpoint and records each request."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        from azure.core.pipeline.transport import RequestsTransportResponse
        from requests import Response

        self.requests.append(request)
        raw = Response()
        raw.status_code = 200
        raw.headers["Content-Type"] = "application/json"
        answer = {"access_token": "storage-token", "expires_in": 3600, "token_type": "Bearer"}
        raw._content = json.dumps(answer).encode()
        return RequestsTransportResponse(request, raw)

    def open(self) -> None: ...
    def close(self) -> None: ...
    def __exit__(self, *args: object) -> None: ...


@pytest.fixture(autouse=True)
def managed_identity(monkeypatch: pytest.MonkeyPatch) -> type[FakeManagedIdentity]:
    FakeManagedIdentity.made, FakeManagedIdentity.asked = [], []
    monkeypatch.setattr(azure.identity, "ManagedIdentityCredential", FakeManagedIdentity)
    return FakeManagedIdentity


def test_the_reader_is_the_app_registration_asserted_by_the_user_assigned_identity() -> None:
    endpoint = TokenEndpoint()
    credential = reader_credential(AZURE, transport=endpoint)
    assert isinstance(credential, ClientAssertionCredential)
    token = credential.get_token("https://storage.azure.com/.default", tenant_id=OTHER)
    assert token.token == "storage-token"
    assert FakeManagedIdentity.made == [IDENTITY]
    assert FakeManagedIdentity.asked == [("api://AzureADTokenExchange/.default",)]
    [request] = endpoint.requests
    assert request.method == "POST"
    assert request.url.startswith(f"https://login.microsoftonline.com/{OTHER}/"), "a token of the other tenant"
    body = request.body
    form = dict(body) if isinstance(body, dict) else {k: v[0] for k, v in parse_qs(bytes(body).decode()).items()}
    assert form["client_id"] == APP
    assert form["client_assertion"] == "managed-identity-assertion"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert form["scope"] == "https://storage.azure.com/.default"


def test_a_token_of_the_home_tenant_needs_no_challenge() -> None:
    endpoint = TokenEndpoint()
    reader_credential(AZURE, transport=endpoint).get_token("https://storage.azure.com/.default")
    assert endpoint.requests[0].url.startswith(f"https://login.microsoftonline.com/{HOME}/")


def test_without_an_app_registration_the_app_reads_with_its_own_identity() -> None:
    values = {k: v for k, v in AZURE.items() if not k.startswith("CONSORTIUM_READER")}
    assert isinstance(reader_credential(values), FakeManagedIdentity)
    assert FakeManagedIdentity.made == [IDENTITY]


def test_an_app_registration_without_its_tenant_is_refused() -> None:
    with pytest.raises(PermanentError, match="CONSORTIUM_READER_TENANT_ID"):
        reader_credential({**AZURE, "CONSORTIUM_READER_TENANT_ID": ""})


def test_peer_blobs_read_a_sas_url_as_is_and_a_plain_endpoint_as_the_app_registration() -> None:
    sas = "https://stbankb.blob.core.windows.net/consortium-public?sv=2024-11-04&sr=c&sp=rl&sig=abc"
    peers = PeerBlobs({"bank-b": sas}, AZURE)
    assert peers._blob("https://stbankb.blob.core.windows.net/consortium-public", "head.json").credential is None
    blob = peers._blob("https://stbankc.blob.core.windows.net/consortium-public/", "head.json")
    assert isinstance(blob.credential, ClientAssertionCredential)
    assert blob.url == "https://stbankc.blob.core.windows.net/consortium-public/head.json"
    again = peers._blob("https://stbankd.blob.core.windows.net/consortium-public", "head.json")
    assert again.credential is blob.credential, "one credential (and its token cache) for every peer"


def test_the_own_container_is_written_at_the_public_endpoint_in_azure() -> None:
    url = "https://stpubbanka.blob.core.windows.net/consortium-public"
    public = published_blobs.PublicBlobs.from_settings({**AZURE, "CONSORTIUM_PUBLIC_ENDPOINT": url + "/"})
    assert public.container.url == url
    assert isinstance(public.container.credential, FakeManagedIdentity)
    with pytest.raises(PermanentError, match="CONSORTIUM_PUBLIC_ENDPOINT"):
        published_blobs.PublicBlobs.from_settings({**AZURE, "CONSORTIUM_PUBLIC_ENDPOINT": "https://x/other"})
