"""Call a user function as the Python worker does: bind the trigger, ``func.Out`` outputs and ``context``.

The worker passes the trigger under the binding's ``name``, an ``Out`` for each output binding, a
``Context`` when the function asks for ``context``, and takes ``$return`` from the return value.
Sync functions run on the caller's thread (the host gives each invocation a pool thread); async
functions run to completion on an event loop of their own.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import azure.functions as func

from .indexing import FunctionSpec

T = TypeVar("T")


class Out(func.Out[T], Generic[T]):
    """The output binding value holder the worker hands to a function."""

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


@dataclass
class Result:
    """What an invocation produced: the values set on each output binding (by binding name)."""

    outputs: dict[str, Any]


def call(spec: FunctionSpec, trigger_value: Any, *, invocation_id: str, app_dir: str, retry: RetryContext) -> Result:
    kwargs: dict[str, Any] = {spec.trigger["name"]: trigger_value}
    outs: dict[str, Out[Any]] = {}
    for binding in spec.outputs:
        if binding["name"] != "$return":
            outs[binding["name"]] = kwargs[binding["name"]] = Out()
    if "context" in spec.parameters and "context" not in kwargs:
        kwargs["context"] = Context(invocation_id, spec.name, app_dir, retry)
    returned = asyncio.run(spec.user_function(**kwargs)) if spec.is_async else spec.user_function(**kwargs)
    values = {name: out.get() for name, out in outs.items()}
    if any(b["name"] == "$return" for b in spec.outputs):
        values["$return"] = returned
    return Result(values)
