"""The Bicep in infra/, parsed with pycep (checkov's own Bicep parser), for tests that assert on it.

There is no Bicep compiler on the build machines, so what the tests read is the parsed source: names,
literal values, loops and scopes as written, not the compiled ARM template.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


@cache
def parse(relative: str) -> dict[str, Any]:
    """The parsed file ``infra/{relative}`` (a file pycep cannot read fails the test that asks)."""
    parsed: dict[str, Any] = BicepParser().parse(file_path=INFRA / relative)
    return parsed


def files() -> list[str]:
    """Every Bicep file under infra/, relative to it."""
    return sorted(str(p.relative_to(INFRA)) for p in INFRA.rglob("*.bicep"))


def resources(relative: str, kind: str) -> dict[str, dict[str, Any]]:
    """The resources of type ``kind`` declared in the file (symbolic name -> parsed resource)."""
    return {name: r for name, r in parse(relative).get("resources", {}).items() if r["type"] == kind}


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's properties, through a loop (``[for ...: {...}]``) or a condition (``if (...) {...}``)."""
    config: dict[str, Any] = resource["config"]
    while "loop_type" in config or ("condition" in config and "config" in config):
        config = config["config"]
    return config


def loop_items(resource: dict[str, Any]) -> list[Any] | str | None:
    """What a looped resource iterates over (a literal list, or the name of a variable/parameter)."""
    loop = resource["config"].get("loop_type")
    return None if loop is None else loop["detail"]["array_name"]
