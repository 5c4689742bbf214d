"""What ships: `pip install .` declares what the app and the CLI import, and a Functions deployment
leaves out the dev tooling, the tests, the docs and the in-memory fakes."""

from __future__ import annotations

import ast
import importlib.util
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: The code `pip install .` and a Functions deployment carry.
SHIPPED = ("shared", "functions", "cli")
OURS = {"shared", "functions", "cli", "tools", "tests", "bench", "function_app"}
#: Left out of both: imported by none of what ships.
DEV_ONLY = ("tools", "tests", "bench", "shared.fakes")


def _shipped_files() -> list[Path]:
    files = [ROOT / "function_app.py"]
    for package in SHIPPED:
        files += [p for p in (ROOT / package).rglob("*.py") if "fakes" not in p.relative_to(ROOT).parts]
    return files


def _imports(path: Path, *, names: bool = False) -> set[str]:
    """The modules ``path`` imports; with ``names``, also ``module.name`` of each ``from module import name``
    (a namespace package such as ``opentelemetry`` is provided by the distributions of its submodules)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if names:
                found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


@cache
def _distribution_of_files() -> dict[Path, str]:
    owners: dict[Path, str] = {}
    for dist in metadata.distributions():
        for file in dist.files or ():
            owners[Path(str(dist.locate_file(file))).resolve()] = canonicalize_name(dist.metadata["Name"])
    return owners


def _distribution(module: str) -> str | None:
    """The installed distribution that provides ``module`` (None: the standard library or a namespace package)."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top == "__future__":
        return None
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{module} is imported but not installed"
    return None if spec.origin is None else _distribution_of_files()[Path(spec.origin).resolve()]


def _submodule_distribution(name: str) -> str | None:
    """The distribution of ``module.name`` when it is a module (None when it is an attribute)."""
    try:
        return _distribution(name)
    except (ModuleNotFoundError, AssertionError):
        return None


def _declared() -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, PYPROJECT["project"]["dependencies"])}


def test_pyproject_declares_every_distribution_the_shipped_code_imports() -> None:
    files = _shipped_files()
    imported = {m for f in files for m in _imports(f) if m.split(".")[0] not in OURS}
    named = {m for f in files for m in _imports(f, names=True) if m.split(".")[0] not in OURS} - imported
    needed = {d for d in map(_distribution, imported) if d is not None}
    needed |= {d for d in map(_submodule_distribution, named) if d is not None}
    assert needed - set(_declared()) == set(), "imported but not in pyproject.toml [project] dependencies"
    assert set(_declared()) - needed == set(), "declared in pyproject.toml but imported by nothing that ships"


def test_the_pins_make_uses_satisfy_the_declared_ranges() -> None:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    for name, requirement in _declared().items():
        assert name in pins, f"{name} is declared in pyproject.toml but not pinned in requirements.txt"
        pinned = pins[name]
        assert requirement.specifier.contains(pinned), f"requirements.txt pins {name}=={pinned}, outside {requirement}"


def test_the_cli_entry_point_is_installed_from_the_shipped_packages() -> None:
    assert PYPROJECT["project"]["scripts"]["consortium"] == "cli.main:main"
    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    assert find["include"] == [f"{p}*" for p in SHIPPED]
    assert "shared.fakes*" in find["exclude"]


def test_a_functions_deployment_leaves_out_the_dev_tooling_and_the_app_imports_none_of_it() -> None:
    ignored = {line.strip() for line in (ROOT / ".funcignore").read_text().splitlines()}
    assert {"tests/", "tools/", "bench/", "docs/", "shared/fakes/"} <= ignored
    deployed = [f for f in _shipped_files() if f.relative_to(ROOT).parts[0] != "cli"]
    leaks = sorted(
        f"{f.relative_to(ROOT)} imports {m}"
        for f in deployed
        for m in _imports(f)
        if any(m == d or m.startswith(f"{d}.") for d in (*DEV_ONLY, "cli"))
    )
    assert leaks == []
