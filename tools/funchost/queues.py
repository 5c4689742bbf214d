"""Queue triggers with the Storage queues extension's semantics.

Mirrors ``QueueListener``/``QueueProcessor`` of the extension (5.x): receive up to ``batchSize``
messages with a 10-minute invisibility, process each on its own worker, poll again once in-flight
work drops to ``newBatchThreshold``; back off 100 ms → ``maxPollingInterval`` (randomized exponential)
while the queue is empty or missing. While a message runs its invisibility is renewed every 5 minutes.
Success deletes it; failure makes it visible again after ``visibilityTimeout``, or, once its dequeue
count reaches ``maxDequeueCount``, copies it to ``<queue>-poison`` (created if missing) and deletes it.
A message that arrives already past ``maxDequeueCount`` is poisoned without running; a base64 message
that does not decode goes straight to poison. The invocation's outputs (``outputs.Outputs``) are sent
only after the function succeeds, and a failed send fails the invocation like an exception would.

Testing facility, not a host behaviour: with ``FUNCHOST_DELIVER_TWICE`` set (read by ``tools.funchost``
only; the chaos suite sets it) every message is delivered twice, as at-least-once queues may do. With
``after``, a first delivery that succeeds is not deleted but made visible again at once (a completion
that was lost), so some instance runs it a second time; with ``during``, a first delivery is made
visible again as it starts (an invisibility that ran out mid-run), so a second delivery may run beside
it. Either way the second delivery has dequeue count 2 and is then handled normally. Each listener
doubles a given body once: a function that hands its message on unchanged (re-posting it for later)
would otherwise see its copies double every round, which no real queue does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.functions import meta
from azure.storage.queue import QueueClient, QueueMessage

from shared.adapters.storage import queue_service

from . import logs
from .bindings import json_properties
from .config import QueueOptions
from .indexing import FunctionSpec
from .invoke import RetryContext, Trigger, call
from .outputs import Outputs

RECEIVE_VISIBILITY = timedelta(minutes=10)
RENEW_EVERY = timedelta(minutes=5)
MIN_POLL = 0.1
#: Values of ``FUNCHOST_DELIVER_TWICE`` (see the module docstring); empty: each message once, as the host does.
DELIVER_TWICE_MODES = ("", "after", "during")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")


def poison_queue_name(queue: str) -> str | None:
    """``<queue>-poison``, or None where the extension would have none (already poison, or too long)."""
    if queue.endswith("-poison"):
        return None
    name = f"{queue}-poison"
    return name if _QUEUE_NAME.match(name) else None


class Backoff:
    """``RandomizedExponentialBackoffStrategy``: min 100 ms, delta = min, randomization 0.2, cap max."""

    def __init__(self, maximum: float, minimum: float = MIN_POLL, rng: random.Random | None = None):
        self.minimum, self.maximum = minimum, maximum
        self.current, self.exponent = minimum, 0
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security  # nosec B311

    def next(self, found_since_last_delay: bool) -> float:
        if found_since_last_delay:
            self.current, self.exponent = self.minimum, 1
        elif self.current != self.maximum:
            if self.exponent == 0:
                candidate = self.minimum
            else:
                candidate = self.minimum + self.rng.uniform(0.8, 1.2) * (2 ** (self.exponent - 1)) * self.minimum
            if candidate < self.maximum:
                self.current, self.exponent = candidate, self.exponent + 1
            else:
                self.current = self.maximum
        return self.current


class QueueListener:
    """Polls one queue for one function and processes its messages until stopped."""

    def __init__(
        self,
        spec: FunctionSpec,
        options: QueueOptions,
        settings: Mapping[str, str],
        outputs: Outputs,
        app_dir: str,
        receive_visibility: timedelta = RECEIVE_VISIBILITY,
        deliver_twice: str = "",
    ):
        if deliver_twice not in DELIVER_TWICE_MODES:
            raise ValueError(f"FUNCHOST_DELIVER_TWICE={deliver_twice!r} must be one of {DELIVER_TWICE_MODES}")
        self.deliver_twice = deliver_twice
        self._doubled: set[str] = set()
        self._doubled_lock = threading.Lock()
        self.spec, self.options, self.outputs, self.app_dir = spec, options, outputs, app_dir
        self.queue = spec.trigger["queueName"]
        self._binary = str(spec.trigger.get("dataType", "")).upper() == "BINARY"
        service = queue_service(settings, spec.trigger.get("connection") or "AzureWebJobsStorage")
        self.client = service.get_queue_client(self.queue)
        poison = poison_queue_name(self.queue)
        self.poison_client = service.get_queue_client(poison) if poison else None
        self.receive_visibility = receive_visibility
        self.backoff = Backoff(options.max_polling_interval.total_seconds())
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.inflight = 0
        self.inflight_changed = threading.Condition()
        self.pool = ThreadPoolExecutor(
            max_workers=options.batch_size + options.new_batch_threshold, thread_name_prefix=f"q-{spec.name}"
        )

    # -- polling ---------------------------------------------------------------------------------
    def run(self) -> None:
        found_since_last_delay = False
        while not self.stopping.is_set():
            try:
                batch = list(
                    self.client.receive_messages(
                        messages_per_page=self.options.batch_size,
                        max_messages=self.options.batch_size,
                        visibility_timeout=int(self.receive_visibility.total_seconds()),
                    )
                )
            except ResourceNotFoundError:
                batch = []  # the queue does not exist yet: back off, as the extension does
            except (HttpResponseError, ServiceRequestError) as e:
                status = getattr(e, "status_code", None)
                if status is not None and status < 500 and status != 409:
                    raise
                logs.event("queue poll failed; backing off", function=self.spec.name, queue=self.queue, error=str(e))
                batch = []
            if batch:
                found_since_last_delay = True
                for message in batch:
                    with self.inflight_changed:
                        self.inflight += 1
                    self.pool.submit(self._process, message)
                with self.inflight_changed:
                    self.inflight_changed.wait_for(
                        lambda: self.inflight <= self.options.new_batch_threshold or self.stopping.is_set()
                    )
                continue
            delay = self.backoff.next(found_since_last_delay)
            found_since_last_delay = False
            self.wake.wait(delay)
            if self.wake.is_set():
                self.wake.clear()
                self.backoff.next(True)

    def notify(self) -> None:
        """A message was just enqueued here by this host (``SharedQueueWatcher``): poll now."""
        self.wake.set()

    def stop(self, timeout: float) -> bool:
        """Stop polling and wait up to ``timeout`` for running invocations; True if all finished."""
        self.stopping.set()
        self.wake.set()
        with self.inflight_changed:
            self.inflight_changed.notify_all()
            finished = self.inflight_changed.wait_for(lambda: self.inflight == 0, timeout=timeout)
        self.pool.shutdown(wait=finished, cancel_futures=True)
        return finished

    # -- one message -----------------------------------------------------------------------------
    def _process(self, message: QueueMessage) -> None:
        try:
            self._process_one(message)
        except Exception as e:  # a storage failure while completing: the message simply reappears
            logs.event("message completion failed", function=self.spec.name, message_id=message.id, error=str(e))
        finally:
            with self.inflight_changed:
                self.inflight -= 1
                self.inflight_changed.notify_all()

    def _decode(self, message: QueueMessage) -> bytes | None:
        raw = message.content if isinstance(message.content, str) else (message.content or b"").decode()
        if self.options.message_encoding == "none":
            return raw.encode()
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None

    def _process_one(self, message: QueueMessage) -> None:
        invocation_id = str(uuid.uuid4())
        fields: dict[str, Any] = {
            "function": self.spec.name,
            "invocation_id": invocation_id,
            "trigger": "queueTrigger",
            "queue": self.queue,
            "message_id": message.id,
            "dequeue_count": message.dequeue_count,
        }
        if message.dequeue_count and message.dequeue_count > self.options.max_dequeue_count:
            self._poison(message, fields, "dequeue count already past maxDequeueCount")
            return
        body = self._decode(message)
        if body is None:
            self._poison(message, fields, "Message decoding has failed! Check MessageEncoding settings.")
            return

        doubled = (message.dequeue_count or 0) == 1 and self._double(body)
        if doubled and self.deliver_twice == "during":
            self._release(message, message.pop_receipt, visibility=0)  # the testing facility: visible again now
        renewer = _VisibilityRenewer(self.client, message, self.receive_visibility)
        renewer.start()
        logs.event(f"Executing '{self.spec.name}' (new queue message on {self.queue})", **fields)
        started = time.monotonic()
        token = logs.current_invocation.set(fields)
        outcome, error = "Succeeded", None
        try:
            trigger = queue_trigger(message, body, binary=self._binary)
            result = call(self.spec, trigger, invocation_id=invocation_id, app_dir=self.app_dir,
                          retry=RetryContext(0, 0), blobs=self.outputs)  # fmt: skip
            self.outputs.deliver(result)
        except Exception as e:
            outcome, error = "Failed", f"{type(e).__name__}: {e}"
            logs.log.exception("function failed", extra={"fields": fields})
        finally:
            logs.current_invocation.reset(token)
            renewer.stop()
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        pop_receipt = renewer.pop_receipt
        if outcome == "Succeeded" and doubled and self.deliver_twice == "after":
            self._release(message, pop_receipt, visibility=0)  # the testing facility: as if the delete was lost
            outcome = "Succeeded (delivered again: FUNCHOST_DELIVER_TWICE=after)"
        elif outcome == "Succeeded":
            self._delete(message.id, pop_receipt)
        elif self.poison_client is None:
            outcome = "Failed (left invisible: no poison queue for this queue)"
        elif (message.dequeue_count or 0) >= self.options.max_dequeue_count:
            self._copy_to_poison(message, body_text=message.content)
            self._delete(message.id, pop_receipt)
            outcome = "Poisoned"
        else:
            self._release(message, pop_receipt)
        logs.invocation(outcome, duration_ms=duration_ms, error=error, **fields)

    def _double(self, body: bytes) -> bool:
        """Whether this first delivery is to be delivered again (the testing facility, once per body)."""
        if not self.deliver_twice:
            return False
        digest = hashlib.sha256(body).hexdigest()
        with self._doubled_lock:
            if digest in self._doubled:
                return False
            if len(self._doubled) > 100_000:
                self._doubled.clear()
            self._doubled.add(digest)
            return True

    def _delete(self, message_id: str, pop_receipt: str | None) -> None:
        try:
            self.client.delete_message(message_id, pop_receipt=pop_receipt)
        except ResourceNotFoundError:
            pass  # already gone, or the pop receipt changed: the extension ignores both
        except HttpResponseError as e:
            if e.status_code not in (400, 404):
                raise

    def _release(self, message: QueueMessage, pop_receipt: str | None, visibility: int | None = None) -> None:
        if visibility is None:
            visibility = int(self.options.visibility_timeout.total_seconds())
        try:
            self.client.update_message(message.id, pop_receipt=pop_receipt, visibility_timeout=visibility)
        except (ResourceNotFoundError, HttpResponseError):
            pass  # lost ownership: the message reappears when its invisibility ends

    def _copy_to_poison(self, message: QueueMessage, body_text: Any) -> None:
        if self.poison_client is None:  # callers check first
            raise RuntimeError(f"no poison queue for {self.queue}")
        text = body_text if isinstance(body_text, str) else (body_text or b"").decode()
        try:
            self.poison_client.send_message(text)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                self.poison_client.create_queue()
            self.poison_client.send_message(text)

    def _poison(self, message: QueueMessage, fields: dict[str, Any], reason: str) -> None:
        if self.poison_client is None:
            logs.invocation("Failed (not processed: no poison queue)", error=reason, **fields)
            return
        self._copy_to_poison(message, body_text=message.content)
        self._delete(message.id, message.pop_receipt)
        logs.invocation("Poisoned", error=reason, duration_ms=0, **fields)


def _when(moment: datetime | None) -> meta.Datum | None:
    return None if moment is None else meta.Datum(type="json", value=json.dumps(moment.isoformat()))


def queue_trigger(message: QueueMessage, body: bytes, *, binary: bool = False) -> Trigger:
    """The queue trigger as the host hands it to the worker (``QueueTriggerBinding.CreateBindingData``).

    The body is a ``string`` datum (``bytes`` with ``dataType: binary``, or when it is not UTF-8); the
    trigger metadata carries ``Id``, ``DequeueCount``, ``ExpirationTime``, ``InsertionTime``,
    ``NextVisibleTime``, ``PopReceipt``, which the ``func.QueueMessage`` converter reads; binding data
    adds ``QueueTrigger`` (the body as text) and a JSON body's properties for binding expressions.
    """
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    datum = meta.Datum(type="bytes", value=body) if binary or text is None else meta.Datum(type="string", value=text)
    metadata = {
        "Id": meta.Datum(type="string", value=message.id),
        "DequeueCount": meta.Datum(type="json", value=json.dumps(message.dequeue_count or 0)),
        "ExpirationTime": _when(message.expires_on),
        "InsertionTime": _when(message.inserted_on),
        "NextVisibleTime": _when(message.next_visible_on),
        "PopReceipt": meta.Datum(type="string", value=message.pop_receipt),
    }
    data: dict[str, object] = {**json_properties(text), "Id": message.id, "DequeueCount": message.dequeue_count or 0,
                               "PopReceipt": message.pop_receipt}  # fmt: skip
    if text is not None:
        data["QueueTrigger"] = text
    return Trigger(datum, {k: v for k, v in metadata.items() if v is not None}, data)


class _VisibilityRenewer:
    """Keeps a running message invisible: every 5 minutes, another 10 minutes (new pop receipt kept)."""

    def __init__(self, client: QueueClient, message: QueueMessage, visibility: timedelta):
        self.client, self.message, self.visibility = client, message, visibility
        self.pop_receipt: str | None = message.pop_receipt
        self.interval = min(RENEW_EVERY, visibility / 2).total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                updated = self.client.update_message(
                    self.message.id,
                    pop_receipt=self.pop_receipt,
                    visibility_timeout=int(self.visibility.total_seconds()),
                )
                self.pop_receipt = updated.pop_receipt
            except ResourceNotFoundError:
                return  # ownership lost: stop renewing
            except HttpResponseError as e:
                if e.status_code and e.status_code < 500:
                    return
                self.interval = max(60.0, self.interval / 2)
