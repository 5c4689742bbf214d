"""The Python worker's binding layer, as the local host needs it: which converter a parameter uses,
what it refuses at load time, and how values cross between the host and the function.

Followed from Azure/azure-functions-python-worker (``azure_functions_worker/functions.py``
``Registry.validate_function_params`` and ``get_function_return_type``; ``bindings/meta.py``
``get_binding``, ``has_implicit_output``, ``check_*_type_annotation``; ``bindings/generic.py``;
``dispatcher.py`` ``_handle__invocation_request``): a parameter annotated ``str`` or ``bytes`` on a
binding without implicit output uses the generic binding, every other one the converter that
``azure.functions`` registers for the binding type; inputs are decoded with ``decode(datum,
trigger_metadata=...)`` (trigger metadata for the trigger only), outputs encoded with
``encode(value, expected_type=...)`` after the function returns, inside the invocation: a value the
converter cannot encode fails the invocation, and an ``Out`` left unset sends nothing.

Binding expressions in a blob ``path`` (``{name}``, ``{queueTrigger}``, ``{Id}``, ``{a.b}`` into a
JSON payload, ``{rand-guid}``, ``{DateTime}``, ``{sys.randguid}``, ``{sys.utcnow}``) follow the WebJobs
SDK's ``BindingTemplate``/``BindingParameterResolver``/``BindingDataPathHelper`` (Azure/azure-webjobs-sdk):
names match case-insensitively, only primitive values bind, a date renders ``yyyy-MM-ddTHH-mm-ssK``.
"""

from __future__ import annotations

import inspect
import json
import re
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions._thirdparty import typing_inspect


class IndexingError(RuntimeError):
    """The app could not be indexed; the message names the function, the binding and the problem."""


#: What the local host runs: these triggers, and these bindings in these directions.
TRIGGERS = ("queueTrigger", "timerTrigger", "httpTrigger")
BINDINGS = {("queue", "OUT"), ("blob", "IN"), ("blob", "OUT"), ("http", "OUT")}
GENERIC = "generic"


class GenericBinding:
    """``bindings/generic.py``: ``str``/``bytes`` values on a binding without a converter of its own."""

    @staticmethod
    def check_input_type_annotation(pytype: type) -> bool:
        return issubclass(pytype, (str, bytes))

    @staticmethod
    def check_output_type_annotation(pytype: type) -> bool:
        return issubclass(pytype, (str, bytes, bytearray))

    @staticmethod
    def decode(data: meta.Datum | None, *, trigger_metadata: Any) -> Any:
        if data is None or data.type is None:
            return None
        if data.type in ("string", "bytes", "json"):
            return data.value
        raise ValueError(f'unexpected type of data received for the "generic" binding : {data.type!r}')

    @staticmethod
    def encode(obj: Any, *, expected_type: Any) -> meta.Datum:
        if isinstance(obj, str):
            return meta.Datum(type="string", value=obj)
        if isinstance(obj, bytes | bytearray):
            return meta.Datum(type="bytes", value=bytes(obj))
        if obj is None:
            return meta.Datum(type=None, value=None)
        if isinstance(obj, dict | list):
            return meta.Datum(type="json", value=json.dumps(obj))
        raise NotImplementedError


def converter(binding_type: str) -> Any:
    """``meta.get_binding``: the converter ``azure.functions`` registers, else the generic binding."""
    if binding_type == GENERIC:
        return GenericBinding
    found = func.get_binding_registry().get(binding_type)  # type: ignore[no-untyped-call]
    return found if found is not None else GenericBinding


def has_implicit_output(binding_type: str) -> bool:
    found = converter(binding_type)
    if found is GenericBinding:
        return binding_type != "durableClient"
    return bool(getattr(found, "has_implicit_output", lambda: False)())


@dataclass(frozen=True)
class Param:
    """One bound parameter as the worker's ``ParamTypeInfo`` holds it, with its function.json binding."""

    name: str
    binding: dict[str, Any]
    binding_type: str  # the converter's binding name, or "generic"
    pytype: Any  # None when unannotated

    def decode(self, datum: meta.Datum | None, metadata: Mapping[str, meta.Datum] | None) -> Any:
        return converter(self.binding_type).decode(datum, trigger_metadata=metadata)

    def encode(self, value: Any) -> meta.Datum:
        """``meta.get_datum``: a value the converter cannot encode fails the invocation."""
        try:
            datum: meta.Datum = converter(self.binding_type).encode(value, expected_type=self.pytype)
        except NotImplementedError:
            raise TypeError(
                f'unable to encode outgoing TypedData: unsupported type "{self.binding_type}" '
                f'for Python type "{type(value).__name__}"'
            ) from None
        return datum


@dataclass(frozen=True)
class Signature:
    """What the worker's ``FunctionInfo`` keeps: inputs (the trigger among them), outputs, return."""

    trigger: Param
    inputs: tuple[Param, ...]  # non-trigger inputs (blob)
    outputs: tuple[Param, ...]  # func.Out parameters
    returns: Param | None  # the $return binding
    requires_context: bool


# The worker's own typing_inspect (azure.functions ships the same copy), untyped: wrapped once here.
def _is_generic(annotation: Any) -> bool:
    return bool(typing_inspect.is_generic_type(annotation))  # type: ignore[no-untyped-call]


def _origin(annotation: Any) -> Any:
    return typing_inspect.get_origin(annotation)  # type: ignore[no-untyped-call]


def _args(annotation: Any) -> tuple[Any, ...]:
    return tuple(typing_inspect.get_args(annotation))  # type: ignore[no-untyped-call]


def _fail(function: str, binding: str | None, reason: str) -> IndexingError:
    where = f"function {function}" + (f", binding {binding}" if binding else "")
    return IndexingError(f"{where}: {reason}")


def _is_out(annotation: Any) -> bool:
    if _is_generic(annotation):
        origin = _origin(annotation)
        if origin is not None:
            return isinstance(origin, type) and origin.__name__ == "Out"
    return isinstance(annotation, type) and annotation.__name__ == "Out"


def _check_supported(function: str, binding: dict[str, Any]) -> None:
    kind, direction, name = str(binding["type"]), str(binding["direction"]).upper(), str(binding["name"])
    if kind.endswith("Trigger"):
        if kind not in TRIGGERS:
            raise _fail(function, name, f"{kind} is not run by the local host (it runs {', '.join(TRIGGERS)})")
        return
    if direction == "INOUT":
        raise _fail(function, name, '"inout" bindings are not supported')
    if (kind, direction) not in BINDINGS:
        supported = ", ".join(f"{k} {d.lower()}" for k, d in sorted(BINDINGS))
        raise _fail(function, name, f"{kind} {direction.lower()} bindings are not run by the local host ({supported})")
    if name == "$return" and direction != "OUT":
        raise _fail(function, name, '"$return" binding must have direction set to "out"')


def describe(function: str, user: Callable[..., Any], bindings: list[dict[str, Any]]) -> Signature:
    """Check a function as the worker does when it loads it, plus what the local host runs; raise
    ``IndexingError`` naming the function and the binding for the first thing refused."""
    for binding in bindings:
        _check_supported(function, binding)
    try:
        annotations = typing.get_type_hints(user)
    except Exception as e:  # an annotation that does not evaluate: the worker fails on it as well
        raise _fail(function, None, f"the annotations do not evaluate: {e}") from None
    params = dict(inspect.signature(user).parameters)
    bound = {b["name"]: b for b in bindings if b["name"] != "$return"}
    returns_binding = next((b for b in bindings if b["name"] == "$return"), None)
    requires_context = "context" in params and "context" not in bound
    if requires_context:
        params.pop("context")
        anno = annotations.get("context")
        if anno is not None and (not isinstance(anno, type) or anno.__name__ != "Context"):
            raise _fail(function, "context", f"the context parameter must be azure.functions.Context, not {anno!r}")
    if set(params) - set(bound):
        raise _fail(
            function, None, f"parameters declared in Python but not as bindings: {sorted(set(params) - set(bound))}"
        )
    if set(bound) - set(params):
        raise _fail(function, None, f"bindings declared but not in Python: {sorted(set(bound) - set(params))}")

    trigger: Param | None = None
    inputs, outputs = [], []
    for name in params:
        binding = bound[name]
        kind = str(binding["type"])
        has_anno, anno = name in annotations, annotations.get(name)
        is_param_out = has_anno and _is_out(anno)
        is_binding_out = str(binding["direction"]).upper() == "OUT"
        if is_param_out:
            args = _args(anno)
            if len(args) != 1:
                raise _fail(function, name, f"invalid Out annotation {anno!r}")
            pytype = args[0]
        else:
            pytype = anno
        if has_anno and not isinstance(pytype, type) and not _is_generic(pytype):
            raise _fail(function, name, f"invalid non-type annotation {anno!r}")
        if is_binding_out and has_anno and not is_param_out:
            raise _fail(function, name, "an output binding's annotation must be azure.functions.Out[...]")
        if not is_binding_out and is_param_out:
            raise _fail(function, name, "an input binding's annotation must not be azure.functions.Out")
        bind_type = GENERIC if has_anno and pytype in (str, bytes) and not has_implicit_output(kind) else kind
        if has_anno:
            check = converter(bind_type)
            ok = (
                check.check_output_type_annotation(pytype)
                if is_param_out
                else check.check_input_type_annotation(pytype)
            )
            if not ok:
                shown = getattr(pytype, "__name__", repr(pytype))
                raise _fail(
                    function, name, f'type of the binding "{kind}" does not match its Python annotation "{shown}"'
                )
        if kind.endswith("Trigger") and bind_type == GENERIC and kind != "queueTrigger":
            # The worker accepts it, but the host sends an http/timer datum the generic binding cannot
            # decode: every call would fail.
            raise _fail(function, name, f"a {kind} parameter cannot be str or bytes")
        if kind == "queueTrigger" and pytype is bytes and str(binding.get("dataType", "")).upper() != "BINARY":
            # The host sends a queue message as a string unless dataType says BINARY, and the generic
            # binding passes it on as it came: the function would get str despite its annotation.
            raise _fail(function, name, 'a queue trigger annotated bytes needs data_type="BINARY"')
        if (
            kind == "blob"
            and not is_binding_out
            and pytype is str
            and str(binding.get("dataType", "")).upper() != "STRING"
        ):
            # The worker hands a str parameter whatever the host sends; the host sends bytes unless
            # dataType says STRING, so the function would get bytes despite its annotation.
            raise _fail(function, name, 'a blob input annotated str needs data_type="STRING"')
        param = Param(name, binding, bind_type, pytype)
        if kind.endswith("Trigger"):
            trigger = param
        elif is_binding_out:
            outputs.append(param)
        else:
            inputs.append(param)
    if trigger is None:
        raise _fail(function, None, "needs exactly one trigger")
    returns = None
    if returns_binding is not None:
        kind = str(returns_binding["type"])
        anno = annotations.get("return")
        if anno is not None:
            if _is_out(anno):
                raise _fail(function, "$return", "the return annotation must not be azure.functions.Out")
            if not isinstance(anno, type) and not _is_generic(anno):
                raise _fail(function, "$return", f"invalid non-type return annotation {anno!r}")
            if not converter(kind).check_output_type_annotation(anno):
                shown = getattr(anno, "__name__", repr(anno))
                raise _fail(
                    function, "$return", f'the return annotation "{shown}" does not match the binding type "{kind}"'
                )
        returns = Param("$return", returns_binding, kind, anno)
    for param in (*inputs, *outputs, *((returns,) if returns else ())):
        if param.binding["type"] == "blob":
            check_path(function, param, trigger)
    return Signature(trigger, tuple(inputs), tuple(outputs), returns, requires_context)


# -- binding expressions ---------------------------------------------------------------------------
_TOKEN = re.compile(r"\{([^{}]*)\}")
_SYSTEM = ("rand-guid", "datetime", "sys.randguid", "sys.utcnow")
#: Binding data every queue trigger provides (``QueueTriggerBinding.CreateBindingData``).
QUEUE_CONTRACT = (
    "QueueTrigger",
    "DequeueCount",
    "ExpirationTime",
    "Id",
    "InsertionTime",
    "NextVisibleTime",
    "PopReceipt",
)


def expression_names(template: str) -> list[str]:
    return [m.group(1).strip() for m in _TOKEN.finditer(template)]


def check_path(function: str, param: Param, trigger: Param) -> None:
    """A blob path is ``container/blob`` with expressions the trigger can bind; knowable at start."""
    path = str(param.binding.get("path") or "")
    if "/" not in path.strip("/") or path.startswith("/"):
        raise _fail(function, param.name, f"blob path {path!r} must be container/blob")
    if path.count("{") != path.count("}"):
        raise _fail(function, param.name, f"blob path {path!r} has unbalanced braces")
    for name in expression_names(path):
        base, _, fmt = name.partition(":")
        base = base.lower()
        if not name or (fmt and not (base in ("rand-guid", "sys.randguid") and fmt in ("N", "D"))):
            raise _fail(function, param.name, f"binding expression {{{name}}} is not supported by the local host")
        if base in _SYSTEM:
            continue
        if trigger.binding["type"] == "timerTrigger":
            # A timer trigger binds no data of its own: nothing but system expressions can resolve.
            raise _fail(
                function, param.name, f"Unable to resolve binding parameter '{name}' (a timer trigger binds none)"
            )


def _primitive(value: Any) -> str | None:
    """``BindingDataPathHelper.ConvertParameterValueToString``: primitives only, containers bind nothing."""
    if isinstance(value, bool):
        return "true" if value else "false"  # a JSON boolean token renders lower-case
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return None


def _lookup(data: Mapping[str, Any], name: str) -> Any:
    current: Any = data
    for part in name.split("."):
        if not isinstance(current, Mapping):
            return None
        matches = [v for k, v in current.items() if k.lower() == part.lower()]
        if not matches:
            return None
        current = matches[0]
    return current


def bind_path(template: str, data: Mapping[str, Any], *, now: datetime | None = None) -> str:
    """Resolve ``{...}`` in ``template`` from the trigger's binding data; unresolved names fail the
    invocation with the SDK's message."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        base, _, fmt = name.partition(":")
        lowered = base.lower()
        if lowered in ("rand-guid", "sys.randguid"):
            value = uuid.uuid4()
            return value.hex if fmt == "N" else str(value)
        if lowered == "sys.utcnow" or (lowered == "datetime" and _lookup(data, "datetime") is None):
            moment = (now or datetime.now(UTC)).astimezone(UTC)
            return moment.strftime("%Y-%m-%dT%H-%M-%SZ")
        resolved = _primitive(_lookup(data, base))
        if resolved is None:
            raise LookupError(
                f"Unable to resolve binding parameter '{base}'. Binding expressions must map to either a value "
                "provided by the trigger or a property of the value the trigger is bound to, or must be a "
                "system binding expression (e.g. sys.randguid, sys.utcnow, etc.)."
            )
        return resolved

    return _TOKEN.sub(sub, template)


def json_properties(payload: bytes | str | None) -> dict[str, Any]:
    """The properties of a JSON object payload, which bind by name as the host's binding data does."""
    if payload is None:
        return {}
    try:
        parsed = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}
