"""The node agent ships to the Corda VMs (in their cloud-init), not with the function app: its venv's
pins are the control plane's own, complete, and cover what it imports; the app imports none of it."""

from __future__ import annotations

import ast
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.infra.test_packaging import PYPROJECT, _distribution, _imports, _shipped_files
from tools import node_cloud_init

ROOT = Path(__file__).resolve().parents[2]
#: What a Corda VM runs: Ubuntu 24.04's python3 on x86_64 Linux (infra/modules/scaleset.bicep).
VM = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "platform_system": "Linux",
      "os_name": "posix", "platform_machine": "x86_64", "implementation_name": "cpython",
      "platform_python_implementation": "CPython", "extra": ""}  # fmt: skip


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    return pins


AGENT_PINS = _pins(ROOT / node_cloud_init.REQUIREMENTS)


def test_the_agents_pins_are_the_control_planes() -> None:
    app = _pins(ROOT / "requirements.txt")
    assert {n: v for n, v in AGENT_PINS.items() if app.get(n) != v} == {}


def test_the_agents_pins_are_complete_on_the_vm_since_pip_installs_them_without_dependencies() -> None:
    missing = set()
    for name in AGENT_PINS:
        for raw in metadata.distribution(name).requires or []:
            requirement = Requirement(raw)
            applies = requirement.marker is None or requirement.marker.evaluate(VM)
            if applies and canonicalize_name(requirement.name) not in AGENT_PINS:
                missing.add(f"{name} needs {requirement.name}")
    assert missing == set()


def test_the_agents_pins_cover_what_it_imports_and_nothing_more_than_that_needs() -> None:
    files = node_cloud_init.agent_modules()
    ours = {"nodeagent", "shared"}
    imported = {m for f in files for m in _imports(f) if m.split(".")[0] not in ours}
    needed = {d for d in map(_distribution, imported) if d is not None}
    assert needed - set(AGENT_PINS) == set()
    # every pin is needed by an import, directly or through another pin
    reach, todo = set(), list(needed)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in reach:
            continue
        reach.add(name)
        for raw in metadata.distribution(name).requires or []:
            requirement = Requirement(raw)
            if requirement.marker is None or requirement.marker.evaluate(VM):
                todo.append(requirement.name)
    assert set(AGENT_PINS) - reach == set()


def test_the_function_app_deployment_leaves_the_agent_out_and_imports_none_of_it() -> None:
    ignored = {line.strip() for line in (ROOT / ".funcignore").read_text().splitlines()}
    assert "nodeagent/" in ignored
    assert PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"] == ["shared*", "functions*", "cli*"]
    leaks = sorted(
        f"{f.relative_to(ROOT)} imports {m}"
        for f in _shipped_files()
        for m in _imports(f)
        if m.split(".")[0] == "nodeagent"
    )
    assert leaks == []


def test_the_agent_runs_on_the_vms_python() -> None:
    # Ubuntu 24.04 ships 3.12; nothing the agent carries needs a newer syntax or library than the repository's floor
    assert PYPROJECT["project"]["requires-python"] == ">=3.11" and sys.version_info >= (3, 11)
    for path in node_cloud_init.agent_modules():
        ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 11))


def test_in_the_agent_only_its_container_adapter_imports_azure_sdks() -> None:
    offenders = sorted(
        str(f.relative_to(ROOT))
        for f in node_cloud_init.agent_modules()
        if f.name != "container.py" and any(m.startswith("azure") for m in _imports(f))
    )
    assert offenders == []
