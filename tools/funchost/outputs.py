"""Deliver a successful invocation's outputs to Storage, and read the blobs its inputs name.

Whatever the trigger (queue, timer, HTTP), the host sends the outputs of an invocation that
succeeded and none of one that failed; a delivery that fails makes the invocation fail (the host
flushes output bindings as part of the invocation). Values arrive here already encoded by the worker's
converters (``invoke.Output``):

- queue: a ``string``/``bytes`` datum is one message; a ``json`` datum holding a list (``Out[List[str]]``)
  is one message an item, in order, as the host's ``FunctionBinding.ReadAsEnumerable`` adds each item of
  an array to the collector; an item that is the worker's encoding of a ``func.QueueMessage``
  (``{"id", "body"}``) is sent as its body, as the worker's end-to-end test ``test_queue_message_object_return``
  expects. Messages are base64-encoded when ``messageEncoding`` is ``base64``; a queue that does not exist
  is created, and a host listening on it is woken (``SharedQueueWatcher``).
- blob: the bytes (a ``string`` datum as UTF-8) uploaded to the path bound before the call, replacing
  any blob there; a container that does not exist is created.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from shared.adapters import metering
from shared.adapters.storage import blob_service, queue_service

from .invoke import Output, Result

DEFAULT_CONNECTION = "AzureWebJobsStorage"


def queue_messages(output: Output) -> list[str | bytes]:
    """The messages one queue output datum stands for."""
    datum = output.datum
    if datum.type in ("string", "bytes"):
        return [datum.value]
    if datum.type == "json":
        value = json.loads(datum.value)
        items = value if isinstance(value, list) else [value]
        messages: list[str | bytes] = []
        for item in items:
            if isinstance(item, dict) and set(item) == {"id", "body"}:
                messages.append(str(item["body"]))
            elif isinstance(item, str):
                messages.append(item)
            else:
                messages.append(json.dumps(item, separators=(",", ":")))
        return messages
    if datum.type is None:
        return []
    raise TypeError(f"queue output {output.param.name}: the host cannot send a {datum.type!r} value")


def blob_bytes(output: Output) -> bytes:
    datum = output.datum
    if datum.type == "string":
        return str(datum.value).encode("utf-8")
    if datum.type == "bytes":
        return bytes(datum.value)
    raise TypeError(f"blob output {output.param.name}: the host cannot write a {datum.type!r} value")


def split_blob_path(path: str) -> tuple[str, str]:
    container, _, name = path.strip("/").partition("/")
    if not container or not name:
        raise ValueError(f"blob path {path!r} must be container/blob")
    return container, name


class Outputs:
    """Sends output-binding values to their queues and blobs, and reads blob inputs.

    Requests made here are the app's (output sends, blob reads and writes): metered with the app's
    own counter (``CONSORTIUM_REQUEST_COUNT_FILE``), unlike the host's queue polling.
    """

    def __init__(self, settings: Mapping[str, str], encoding: str, notify: Callable[[str], None]):
        self.settings, self.encoding, self.notify = settings, encoding, notify
        self._queues: dict[tuple[str, str], QueueClient] = {}
        self._blobs: dict[str, BlobServiceClient] = {}
        self._lock = threading.Lock()

    def client(self, connection: str, queue: str) -> QueueClient:
        with self._lock:
            key = (connection, queue)
            if key not in self._queues:
                service = queue_service(self.settings, connection, **metering.hook("storage"))
                self._queues[key] = service.get_queue_client(queue)
            return self._queues[key]

    def blob_service(self, connection: str) -> BlobServiceClient:
        with self._lock:
            if connection not in self._blobs:
                self._blobs[connection] = blob_service(self.settings, connection, **metering.hook("storage"))
            return self._blobs[connection]

    def encode(self, value: str | bytes) -> str:
        data = value.encode() if isinstance(value, str) else value
        if self.encoding == "base64":
            return base64.b64encode(data).decode()
        return data.decode()

    # -- delivery ----------------------------------------------------------------------------------
    def deliver(self, result: Result) -> int:
        """Send every queue and blob output of a successful invocation; the number of items sent."""
        sent = 0
        for output in result.outputs:
            kind = output.param.binding["type"]
            if kind == "queue":
                sent += self.send(output.param.binding, queue_messages(output))
            elif kind == "blob":
                self.write_blob(output.param.binding, str(output.path), blob_bytes(output))
                sent += 1
        return sent

    def send(self, binding: dict[str, Any], messages: list[str | bytes]) -> int:
        if not messages:
            return 0
        client = self.client(binding.get("connection") or DEFAULT_CONNECTION, binding["queueName"])
        for item in messages:
            body = self.encode(item)
            try:
                client.send_message(body)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    client.create_queue()
                client.send_message(body)
        self.notify(binding["queueName"])
        return len(messages)

    def write_blob(self, binding: dict[str, Any], path: str, data: bytes) -> None:
        container, name = split_blob_path(path)
        service = self.blob_service(binding.get("connection") or DEFAULT_CONNECTION)
        blob = service.get_blob_client(container, name)
        try:
            blob.upload_blob(data, overwrite=True)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                service.get_container_client(container).create_container()
            blob.upload_blob(data, overwrite=True)

    # -- blob inputs -------------------------------------------------------------------------------
    def read(self, connection: str, path: str) -> bytes | None:
        container, name = split_blob_path(path)
        try:
            return bytes(self.blob_service(connection).get_blob_client(container, name).download_blob().readall())
        except ResourceNotFoundError:
            return None  # the host binds a missing blob as null: the parameter is None
