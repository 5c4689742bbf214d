"""Index a Python v2 app as the worker does: import the module, call ``app.get_functions()``.

Each function becomes a ``FunctionSpec``: its trigger binding, its output bindings, its retry policy
(a *setting* in the v2 model, not a binding) and the user function to call. ``%Setting%`` placeholders
in binding values are resolved from the settings, as the host's name resolver does.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class IndexingError(RuntimeError):
    """The app could not be indexed; the message names the function and the problem."""


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger: dict[str, Any]
    outputs: tuple[dict[str, Any], ...]
    retry: dict[str, str] | None
    user_function: Callable[..., Any] = field(compare=False)
    parameters: tuple[str, ...] = ()

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


def check_output_annotation(function: str, user: Callable[..., Any], binding: dict[str, Any]) -> None:
    """Refuse an output binding whose parameter is not ``func.Out[T]`` of a type its converter takes.

    The Python worker refuses such a function when it loads it ("type of <name> binding in
    function.json does not match its Python annotation"); checking here makes the local host refuse
    it too, instead of passing values the worker would never accept (``Out[list[str]]`` is one: the
    queue converter knows ``typing.List[str]``, not the builtin generic).
    """
    import azure.functions as func
    from azure.functions.queue import QueueMessageOutConverter

    if binding.get("type") != "queue":
        return
    arg = binding["name"]
    try:
        hints = typing.get_type_hints(user)
    except Exception as e:  # an annotation that does not evaluate: the worker fails on it as well
        raise IndexingError(f"function {function}: the annotations do not evaluate: {e}") from None
    if arg == "$return":  # the return value is the output: its annotation, if any, is the value's type
        returned = hints.get("return")
        if returned is not None and not QueueMessageOutConverter.check_output_type_annotation(returned):
            raise IndexingError(
                f"function {function}: the return annotation {returned} does not fit a queue output: it takes str, "
                "bytes, func.QueueMessage or typing.List of them"
            )
        return
    annotation = hints.get(arg)
    if annotation is None or typing.get_origin(annotation) is not func.Out:
        raise IndexingError(f"function {function}: binding {arg} is an output; annotate it func.Out[...]")
    inner = typing.get_args(annotation)[0] if typing.get_args(annotation) else None
    if inner is None or not QueueMessageOutConverter.check_output_type_annotation(inner):
        raise IndexingError(
            f"function {function}: type of {arg} binding does not match its Python annotation {annotation}: a queue "
            "output takes str, bytes, func.QueueMessage or typing.List of them"
        )


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
        params = tuple(inspect.signature(user).parameters)
        for binding in outputs:
            check_output_annotation(name, user, binding)
        specs.append(FunctionSpec(name, trigger, outputs, retry, user, params))
    return specs
