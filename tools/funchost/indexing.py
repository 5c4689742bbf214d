"""Index a Python v2 app as the worker does: import the module, call ``app.get_functions()``.

Each function becomes a ``FunctionSpec``: its trigger binding, its output bindings, its retry policy
(a *setting* in the v2 model, not a binding), the user function to call and its ``Signature`` (see
``bindings.describe``: the worker's load-time checks, plus what this host runs). ``%Setting%``
placeholders in binding values are resolved from the settings, as the host's name resolver does.
Anything refused is refused here, before the host takes a message or a request, with one line naming
the function and the binding.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bindings import IndexingError, Signature, describe

__all__ = ["FunctionSpec", "IndexingError", "index_app", "resolve"]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger: dict[str, Any]
    outputs: tuple[dict[str, Any], ...]
    retry: dict[str, str] | None
    user_function: Callable[..., Any] = field(compare=False)
    signature: Signature = field(compare=False)

    @property
    def trigger_type(self) -> str:
        return str(self.trigger["type"])

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)


_PLACEHOLDER = re.compile(r"%([^%]+)%")


def resolve(value: Any, settings: Mapping[str, str], where: str) -> Any:
    if not isinstance(value, str):
        return value

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in settings:
            raise IndexingError(f"{where}: setting %{name}% is not defined")
        return settings[name]

    return _PLACEHOLDER.sub(sub, value)


def index_app(module_name: str, app_dir: Path, settings: Mapping[str, str]) -> list[FunctionSpec]:
    """Import ``module_name`` from ``app_dir`` and describe every function it registers."""
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module = importlib.import_module(module_name)
    app = getattr(module, "app", None)
    if app is None or not hasattr(app, "get_functions"):
        raise IndexingError(f"{module_name}.py defines no FunctionApp named `app`")
    specs = []
    for function in app.get_functions():
        name = function.get_function_name()
        bindings = json.loads(function.get_function_json())["bindings"]
        triggers = [b for b in bindings if str(b["type"]).endswith("Trigger")]
        if len(triggers) != 1:
            raise IndexingError(f"function {name}: needs exactly one trigger, found {len(triggers)}")
        resolved = [{k: resolve(v, settings, f"function {name}") for k, v in b.items()} for b in bindings]
        trigger = next(b for b in resolved if str(b["type"]).endswith("Trigger"))
        outputs = tuple(b for b in resolved if b["direction"] == "OUT")
        retry = function.get_settings_dict("retry_policy")
        user = function.get_user_function()
        signature = describe(name, user, resolved)
        specs.append(FunctionSpec(name, trigger, outputs, retry, user, signature))
    return specs
