"""The Bicep sets every setting the app reads, the sample lists them, and no secret is in the tree."""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from pathlib import Path

from shared import settings

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_APP = ROOT / "infra" / "modules" / "functionapp.bicep"
#: Read by the platform or its SDKs, set by the Bicep, not read by our code.
PLATFORM = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}
IDENTITY_STORAGE = {
    f"AzureWebJobsStorage__{p}"
    for p in ("blobServiceUri", "queueServiceUri", "tableServiceUri", "credential", "clientId")
}


def bicep_app_settings() -> set[str]:
    return set(re.findall(r"\{\s*name:\s*'([^']+)'\s*,\s*value:", FUNCTION_APP.read_text()))


def test_every_registered_setting_is_set_by_the_bicep() -> None:
    deployed = bicep_app_settings()
    text = FUNCTION_APP.read_text()
    for name in settings.names():
        if name == "AzureWebJobsStorage":
            assert deployed >= IDENTITY_STORAGE, "storage is reached identity-based in Azure"
        elif name == "FUNCTIONS_WORKER_RUNTIME":
            assert re.search(r"runtime:\s*\{\s*name:\s*'python'", text), (
                "Flex Consumption sets the runtime, not an app setting"
            )
        else:
            assert name in deployed, f"{name} is read by the app but not set in {FUNCTION_APP.relative_to(ROOT)}"


def test_every_bicep_app_setting_is_registered_or_a_platform_setting() -> None:
    unknown = bicep_app_settings() - set(settings.names()) - PLATFORM - IDENTITY_STORAGE
    assert unknown == set(), f"set in the Bicep but read by nobody: {sorted(unknown)}"


def test_the_deployment_uses_no_storage_keys_or_connection_strings_with_secrets() -> None:
    bicep = "\n".join(p.read_text() for p in (ROOT / "infra").rglob("*.bicep"))
    assert "listKeys(" not in bicep and "AccountKey=" not in bicep and "SharedAccessSignature" not in bicep
    assert "allowSharedKeyAccess: false" in (ROOT / "infra" / "modules" / "storage.bicep").read_text()


#: Azurite's well-known development key: public, documented by Microsoft, the same on every machine.
AZURITE_DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: Matches that are not secrets: the Azurite key, and the scale set's admin home on the Corda VMs (infra/).
ALLOWED = (AZURITE_DEV_KEY, "/home/corda/")
_GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_SECRET_CHARS = r"[A-Za-z0-9_~.-]"
#: What a secret looks like in a file, by kind. None of these sources matches itself, so this file passes its scan.
SECRET_PATTERNS = {
    "storage account key": re.compile(r"AccountKey=[A-Za-z0-9+/=]{40,}"),
    "SAS token": re.compile(r"SharedAccessSignature=sv=\d{4}-\d{2}-\d{2}|[?&]sig=[A-Za-z0-9%+/=]{16,}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "Application Insights key": re.compile(
        rf"InstrumentationKey[\"']?\s*[=:]\s*[\"']?(?!0{{8}}-0{{4}}-0{{4}}-0{{4}}-0{{12}}){_GUID}", re.IGNORECASE
    ),
    "client secret": re.compile(
        rf"(?<!{_SECRET_CHARS}){_SECRET_CHARS}{{3}}\dQ~{_SECRET_CHARS}{{31,34}}(?!{_SECRET_CHARS})"
        r"|(?i:client_?secret)[\"']?\s*[:=]\s*[\"']([^\"'\s]{8,})[\"']"
    ),
    "machine path": re.compile(r"(?<![\w.~-])(?:/(?:root|work)/[\w.-]|/(?:home|Users)/[\w.-]+/)"),
}


def find_secrets(text: str) -> list[tuple[str, str]]:
    """Each (kind, match) in ``text`` that looks like a secret or a path on someone's machine."""
    found = []
    for kind, pattern in SECRET_PATTERNS.items():
        for match in pattern.finditer(text):
            if not any(allowed in match.group(0) for allowed in ALLOWED):
                found.append((kind, match.group(0)))
    return found


def test_no_secret_is_tracked_in_the_repository() -> None:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    findings = []
    for rel in filter(None, listed.split("\0")):
        path = ROOT / rel
        if not path.is_file() or path.suffix in {".png", ".lock"} or rel.endswith("package-lock.json"):
            continue
        text = path.read_text(errors="ignore")
        findings += [f"{rel}: {kind}: {match[:40]}" for kind, match in find_secrets(text)]
    assert findings == []


def test_the_scan_finds_each_kind_of_secret_and_passes_what_is_public() -> None:
    # Built at run time, so that no sample stands in this file for the repository scan to find.
    key = base64.b64encode(bytes(range(64))).decode()
    guid = str(uuid.UUID(int=0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0))
    samples = {
        "storage account key": "DefaultEndpointsProtocol=https;AccountName=bank;Account" + "Key=" + key,
        "SAS token": "https://bank.blob.core.windows.net/c/b?sv=2024-11-04&sp=r&s" + "ig=" + "a%2Bb" * 8,
        "private key": "-----BEGIN " + "OPENSSH " + "PRIVATE KEY" + "-----",
        "Application Insights key": "Instrumentation" + "Key=" + guid + ";IngestionEndpoint=https://x.in.ai.azure.com/",
        "client secret": '"AZURE_CLIENT_' + 'SECRET": "' + "s3cr3t-value" + '"',
        "machine path": "open('/" + "home" + "/alice/app/settings.json')",
    }
    for kind, sample in samples.items():
        assert [k for k, _ in find_secrets(sample)] == [kind], f"{kind} not found in {sample!r}"
    more = [
        "-----BEGIN " + "PRIVATE KEY" + "-----",
        "-----BEGIN " + "RSA " + "PRIVATE KEY" + "-----",
        "-----BEGIN " + "EC " + "PRIVATE KEY" + "-----",
        "-----BEGIN " + "ENCRYPTED " + "PRIVATE KEY" + "-----",
        "SharedAccess" + "Signature=sv=" + "2024-11-04&sr=c",
        "instrumentation" + 'Key": "' + guid.upper() + '"',
        "abc" + "8Q" + "~" + "x" * 34,
        "client" + "_secret = '" + "x" * 12 + "'",
        "/" + "root" + "/.ssh/id_ed25519",
        "file://" + "/work" + "/main/README.md",
        "/" + "Users" + "/bob/project",
    ]
    assert [s for s in more if not find_secrets(s)] == []
    public = [
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;Account" + "Key=" + AZURITE_DEV_KEY,
        "Instrumentation" + "Key=" + str(uuid.UUID(int=0)),
        'credential = ClientSecretCredential(tenant, client_id, client_secret=settings.text("AZURE_CLIENT_SECRET"))',
        "-----BEGIN " + "PUBLIC KEY" + "-----",
        "https://example.com/work/items and src/home/page.py",
        "{ path: '/" + "home" + "/corda/.ssh/authorized_keys', keyData: adminSshPublicKey }",
    ]
    assert [s for s in public if find_secrets(s)] == []
