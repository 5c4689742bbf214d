"""Call a user function as the Python worker does, and hand back what its output bindings hold.

Follows ``dispatcher._handle__invocation_request`` (Azure/azure-functions-python-worker): every input
(the trigger with its trigger metadata, a blob input) is decoded by its binding's converter; each
output parameter gets an ``Out``, ``context`` a ``Context`` when the function asks for it; sync
functions run on the caller's thread (the host gives each invocation a pool thread), async ones on an
event loop of their own. After the function returns, a non-None result without a ``$return`` binding
fails the invocation, each ``Out`` that was set and the ``$return`` value are encoded by their
converter, and only then is the invocation a success. Nothing is delivered here: the caller sends the
encoded outputs once the invocation has succeeded, and none when it failed.

Blob inputs are read before the call and blob output paths bound before it, as the host binds every
parameter before it invokes: a path that does not resolve fails the invocation without running it.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import azure.functions as func
from azure.functions import meta

from .bindings import Param, bind_path
from .indexing import FunctionSpec

T = TypeVar("T")


class Out(func.Out[T], Generic[T]):
    """The output binding value holder the worker hands to a function (``bindings/out.py``)."""

    def __init__(self) -> None:
        self._value: T | None = None

    def set(self, val: T) -> None:
        self._value = val

    def get(self) -> T:
        return self._value  # type: ignore[return-value]


@dataclass
class RetryContext:
    retry_count: int
    max_retry_count: int
    exception: Any = None


@dataclass
class TraceContext:
    trace_parent: str = ""
    trace_state: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


class Context(func.Context):
    """The invocation context: ids, the function's name and folder, retry and trace context."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str, retry: RetryContext):
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._retry_context = retry
        self._trace_context = TraceContext(trace_parent=f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01")
        self._thread_local_storage = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:  # type: ignore[override]
        return self._thread_local_storage

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> TraceContext:  # type: ignore[override]
        return self._trace_context

    @property
    def retry_context(self) -> RetryContext:  # type: ignore[override]
        return self._retry_context


@dataclass(frozen=True)
class Trigger:
    """What a listener hands over: the trigger's datum and metadata (as the host sends them to the
    worker) and the binding data that binding expressions resolve against."""

    datum: meta.Datum
    metadata: Mapping[str, meta.Datum]
    binding_data: Mapping[str, Any]


@dataclass(frozen=True)
class Output:
    """One output binding's encoded value, with the blob path it was bound to (blob outputs only)."""

    param: Param
    datum: meta.Datum
    path: str | None = None


@dataclass
class Result:
    """What a successful invocation produced: the encoded outputs, in binding order."""

    outputs: list[Output]

    def of_type(self, kind: str) -> list[Output]:
        return [o for o in self.outputs if o.param.binding["type"] == kind]


class BlobReader(Protocol):
    """Reads a blob input for the host: its bytes, or None when the blob does not exist."""

    def read(self, connection: str, path: str) -> bytes | None: ...


def _blob_datum(param: Param, data: bytes | None) -> meta.Datum:
    if data is None:
        return meta.Datum(type=None, value=None)  # a missing blob: the parameter is None
    if str(param.binding.get("dataType", "")).upper() == "STRING":
        return meta.Datum(type="string", value=data.decode("utf-8"))
    return meta.Datum(type="bytes", value=data)


def call(
    spec: FunctionSpec,
    trigger: Trigger,
    *,
    invocation_id: str,
    app_dir: str,
    retry: RetryContext,
    blobs: BlobReader | None = None,
) -> Result:
    signature = spec.signature
    kwargs: dict[str, Any] = {signature.trigger.name: signature.trigger.decode(trigger.datum, trigger.metadata)}
    for param in signature.inputs:  # blob inputs; the worker passes them the trigger metadata too
        if blobs is None:
            raise RuntimeError(f"function {spec.name}: blob input {param.name} needs a storage connection")
        path = bind_path(str(param.binding["path"]), trigger.binding_data)
        data = blobs.read(str(param.binding.get("connection") or "AzureWebJobsStorage"), path)
        kwargs[param.name] = param.decode(_blob_datum(param, data), trigger.metadata)
    paths = {
        p.name: bind_path(str(p.binding["path"]), trigger.binding_data)
        for p in (*signature.outputs, *((signature.returns,) if signature.returns else ()))
        if p.binding["type"] == "blob"
    }
    outs: dict[str, Out[Any]] = {}
    for param in signature.outputs:
        outs[param.name] = kwargs[param.name] = Out()
    if signature.requires_context:
        kwargs["context"] = Context(invocation_id, spec.name, app_dir, retry)
    returned = asyncio.run(spec.user_function(**kwargs)) if spec.is_async else spec.user_function(**kwargs)
    if returned is not None and signature.returns is None:
        raise RuntimeError(f"function {spec.name!r} without a $return binding returned a non-None value")
    encoded = []
    for param in signature.outputs:
        value = outs[param.name].get()
        if value is None:
            continue  # an Out left unset sends nothing
        encoded.append(Output(param, param.encode(value), paths.get(param.name)))
    if signature.returns is not None:
        encoded.append(Output(signature.returns, signature.returns.encode(returned), paths.get("$return")))
    return Result(encoded)
