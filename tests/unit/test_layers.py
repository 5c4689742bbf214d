"""Layers point one way: only adapters import Azure SDKs, only the trigger layer azure.functions.

import-linter (``make lint``) guards the internal layers; this test guards the external imports,
which import-linter cannot name at sub-package level.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK_PREFIXES = (
    "azure.storage",
    "azure.mgmt",
    "azure.keyvault",
    "azure.monitor",
    "azure.identity",
    "azure.core",
)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules_under(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_only_function_app_and_functions_import_azure_functions() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("shared", "cli")
        for p in modules_under(folder)
        if any(m == "azure.functions" or m.startswith("azure.functions.") for m in imports_of(p))
    ]
    assert offenders == []


def test_only_adapters_import_azure_sdk_clients() -> None:
    offenders = []
    for folder in ("shared", "functions", "cli"):
        for p in modules_under(folder):
            rel = p.relative_to(ROOT)
            if rel.parts[:2] == ("shared", "adapters"):
                continue
            if any(m.startswith(SDK_PREFIXES) for m in imports_of(p)):
                offenders.append(str(rel))
    assert offenders == []


def test_the_core_is_importable_without_azure_functions() -> None:
    import subprocess
    import sys

    code = (
        "import sys, importlib, pkgutil, shared\n"
        "sys.modules['azure.functions'] = None\n"
        "for m in pkgutil.walk_packages(shared.__path__, 'shared.'):\n"
        "    importlib.import_module(m.name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
