"""The Bicep sets every setting the app reads, the sample lists them, and no secret is in the tree."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from shared import settings

ROOT = Path(__file__).resolve().parents[2]
FUNCTION_APP = ROOT / "infra" / "modules" / "functionapp.bicep"
#: Read by the platform or its SDKs, set by the Bicep, not read by our code.
PLATFORM = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}
IDENTITY_STORAGE = {
    f"AzureWebJobsStorage__{p}" for p in ("blobServiceUri", "queueServiceUri", "tableServiceUri", "credential")
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


def test_no_secret_is_tracked_in_the_repository() -> None:
    azurite_dev_key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    patterns = [
        re.compile(r"AccountKey=([A-Za-z0-9+/=]{40,})"),
        re.compile(r"SharedAccessSignature=sv=\d{4}-\d{2}-\d{2}"),
        re.compile(r"-----BEGIN (?:RSA |EC )?PRIVATE KEY-----"),
        re.compile(r"InstrumentationKey=[0-9a-f]{8}-(?!0000)"),
    ]
    findings = []
    for rel in tracked:
        path = ROOT / rel
        if not path.is_file() or path.suffix in {".png", ".lock"} or rel.endswith("package-lock.json"):
            continue
        text = path.read_text(errors="ignore")
        for pattern in patterns:
            for match in pattern.finditer(text):
                if azurite_dev_key in match.group(0):
                    continue
                findings.append(f"{rel}: {match.group(0)[:40]}")
    assert findings == []
