"""Timer triggers as the timer extension runs them, one listener across instances.

- The listener is a singleton (``[Singleton(Mode = Listener)]``): a blob lease on
  ``azure-webjobs-hosts/locks/{hostId}/Host.Functions.{name}.Listener`` (``listenerLockPeriod``,
  60 s by default, renewed every half period). An instance that does not get it retries every
  ``listenerLockRecoveryPollingInterval`` (1 min by default); one that loses it stops the listener.
- The schedule monitor (``useMonitor``, on unless the schedule fires more than once a minute) keeps
  ``azure-webjobs-hosts/timers/{hostId}/Host.Functions.{name}/status`` = {Last, Next, LastUpdated};
  a missed occurrence fires once at start with ``past_due=True`` (one catch-up, not one per slot),
  otherwise ``runOnStartup`` fires once at start.
- Invocations never overlap: the next occurrence is armed only after the previous run ends.
- A failed run is not retried unless the function has a retry policy (fixed or exponential delay),
  then it runs at most 1 + max_retry_count times, with ``context.retry_context`` counting.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.functions import meta
from azure.storage.blob import BlobClient, BlobLeaseClient, ContainerClient

from shared.adapters.storage import blob_service

from . import logs
from .config import SingletonOptions, parse_timespan
from .indexing import FunctionSpec
from .invoke import RetryContext, Trigger, call
from .ncrontab import Schedule
from .outputs import Outputs

HOSTS_CONTAINER = "azure-webjobs-hosts"
MIN_VALUE = "0001-01-01T00:00:00+00:00"


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _parse(text: str | None) -> datetime | None:
    if not text or text.startswith("0001-01-01"):
        return None
    return datetime.fromisoformat(text).astimezone(UTC)


class ListenerLock:
    """The listener singleton: a renewable blob lease; ``lost`` is set the moment a renewal fails."""

    def __init__(self, blob: BlobClient, container: ContainerClient, options: SingletonOptions, holder: str):
        self.blob, self.container, self.options, self.holder = blob, container, options, holder
        self.lease: BlobLeaseClient | None = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def try_acquire(self) -> bool:
        try:
            props = self.blob.get_blob_properties()
            if props.lease.state == "leased":
                return False
        except ResourceNotFoundError:
            try:
                self.blob.upload_blob(b"", overwrite=False)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    self.container.create_container()
                return self.try_acquire()
            except (ResourceExistsError, HttpResponseError):
                pass
        lease = BlobLeaseClient(self.blob)
        try:
            lease.acquire(lease_duration=int(self.options.listener_lock_period.total_seconds()))
        except HttpResponseError as e:
            if e.status_code == 409:
                return False
            raise
        self.lease = lease
        self.lost.clear()
        self._stop.clear()
        with contextlib.suppress(HttpResponseError):
            self.blob.set_blob_metadata({"holder": self.holder}, lease=lease)
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True, name="listener-lock")
        self._renewer.start()
        return True

    def _renew_loop(self) -> None:
        interval = self.options.listener_lock_period.total_seconds() / 2
        while not self._stop.wait(interval):
            if self.lease is None:  # released: nothing left to renew
                return
            try:
                self.lease.renew()
                interval = self.options.listener_lock_period.total_seconds() / 2
            except HttpResponseError as e:
                if e.status_code and e.status_code >= 500:
                    interval = max(1.0, interval / 2)  # LinearSpeedupStrategy down to 1 s
                    continue
                logs.event(
                    "Singleton lock renewal failed; stopping the listener",
                    blob=self.blob.blob_name,
                    error=str(e),
                )
                self.lost.set()
                return
            except Exception as e:  # connection errors: treat like 5xx
                logs.event("listener lock renewal error", blob=self.blob.blob_name, error=str(e))
                interval = max(1.0, interval / 2)

    def release(self) -> None:
        self._stop.set()
        if self._renewer:
            self._renewer.join(timeout=5)
        if self.lease is not None:
            try:
                self.lease.release()
            except HttpResponseError:
                pass  # 404/409: already gone or taken
            self.lease = None


class ScheduleMonitor:
    """The status blob and the past-due check of ``ScheduleMonitor.CheckPastDueAsync``."""

    def __init__(self, blob: BlobClient, schedule: Schedule):
        self.blob, self.schedule = blob, schedule

    def read(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.blob.download_blob().readall()))
        except ResourceNotFoundError:
            return None

    def write(self, status: dict[str, Any]) -> None:
        try:
            self.blob.upload_blob(json.dumps(status), overwrite=True)
        except HttpResponseError as e:  # best effort, as the host logs and ignores it
            logs.event("schedule status update failed", blob=self.blob.blob_name, error=str(e))

    def check_past_due(self, now: datetime) -> tuple[bool, dict[str, Any]]:
        status = self.read()
        if status is None:
            status = {
                "Last": MIN_VALUE,
                "Next": _iso(self.schedule.next_after(now)),
                "LastUpdated": _iso(now),
            }
            self.write(status)
            recorded_next = _parse(status["Next"])
        else:
            last, updated = _parse(status.get("Last")), _parse(status.get("LastUpdated"))
            expected = self.schedule.next_after(last or updated or now)
            if _parse(status.get("Next")) != expected:  # the schedule expression changed
                if now > expected:
                    expected = self.schedule.next_after(now)
                status = {"Last": MIN_VALUE, "Next": _iso(expected), "LastUpdated": _iso(now)}
                self.write(status)
            recorded_next = _parse(status.get("Next"))
        return (recorded_next is not None and now > recorded_next), status

    def record_run(self, invoked_at: datetime, status: dict[str, Any]) -> dict[str, Any]:
        recorded_next = _parse(status.get("Next"))
        last = recorded_next if recorded_next and invoked_at < recorded_next else invoked_at
        new = {"Last": _iso(last), "Next": _iso(self.schedule.next_after(last)), "LastUpdated": _iso(last)}
        self.write(new)
        return new


class TimerListener:
    def __init__(
        self,
        spec: FunctionSpec,
        settings: Mapping[str, str],
        singleton: SingletonOptions,
        host_id: str,
        holder: str,
        app_dir: str,
        outputs: Outputs,
        connection: str = "AzureWebJobsStorage",
    ):
        self.spec, self.app_dir, self.outputs = spec, app_dir, outputs
        self.schedule = Schedule.parse(spec.trigger["schedule"])
        self.run_on_startup = bool(spec.trigger.get("runOnStartup", False))
        use_monitor = spec.trigger.get("useMonitor", True)
        self.use_monitor = bool(use_monitor) and not self.schedule.fires_more_than_once_a_minute(datetime.now(UTC))
        service = blob_service(settings, connection)
        full_name = f"Host.Functions.{spec.name}"
        self.lock = ListenerLock(
            service.get_blob_client(HOSTS_CONTAINER, f"locks/{host_id}/{full_name}.Listener"),
            service.get_container_client(HOSTS_CONTAINER),
            singleton,
            holder,
        )
        self.monitor = ScheduleMonitor(
            service.get_blob_client(HOSTS_CONTAINER, f"timers/{host_id}/{full_name}/status"), self.schedule
        )
        self.singleton = singleton
        self.stopping = threading.Event()
        self.running = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                acquired = self.lock.try_acquire()
            except Exception as e:
                logs.event("listener lock acquisition failed", function=self.spec.name, error=str(e))
                acquired = False
            if not acquired:
                self.stopping.wait(self.singleton.listener_lock_recovery_polling_interval.total_seconds())
                continue
            logs.event("timer listener started (holds the listener lock)", function=self.spec.name)
            try:
                self._listen()
            finally:
                self.lock.release()
            if not self.stopping.is_set():
                logs.event("timer listener stopped (listener lock lost)", function=self.spec.name)

    def _listen(self) -> None:
        now = datetime.now(UTC)
        status: dict[str, Any] = {}
        past_due = False
        if self.use_monitor:
            past_due, status = self.monitor.check_past_due(now)
        if past_due or self.run_on_startup:
            status = self._fire(past_due=past_due, status=status)
        while not self.stopping.is_set() and not self.lock.lost.is_set():
            after = datetime.now(UTC)
            last = _parse(status.get("Last")) if status else None
            due = self.schedule.next_after(max(after - timedelta(milliseconds=1), last or after))
            while not self.stopping.is_set() and not self.lock.lost.is_set():
                remaining = (due - datetime.now(UTC)).total_seconds()
                if remaining <= 0:
                    break
                self.stopping.wait(min(remaining, 1.0))
            if self.stopping.is_set() or self.lock.lost.is_set():
                return
            status = self._fire(past_due=False, status=status, scheduled=due)

    def _fire(self, *, past_due: bool, status: dict[str, Any], scheduled: datetime | None = None) -> dict[str, Any]:
        invoked_at = datetime.now(UTC)
        schedule_status = dict(status) if self.use_monitor else {}
        self.running.set()
        try:
            self._invoke_with_retries(timer_trigger(past_due, schedule_status))
        finally:
            self.running.clear()
        if self.use_monitor:
            return self.monitor.record_run(scheduled or invoked_at, status)
        last = scheduled or invoked_at
        return {"Last": _iso(last), "Next": _iso(self.schedule.next_after(last)), "LastUpdated": _iso(last)}

    def _invoke_with_retries(self, trigger: Trigger) -> None:
        policy = self.spec.retry or {}
        max_retries = int(policy.get("max_retry_count", 0)) if policy else 0
        delays = _retry_delays(policy)
        attempt = 0
        while True:
            invocation_id = str(uuid.uuid4())
            fields = {"function": self.spec.name, "invocation_id": invocation_id, "trigger": "timerTrigger",
                      "past_due": trigger.binding_data["IsPastDue"], "retry_count": attempt}  # fmt: skip
            token = logs.current_invocation.set(fields)
            started = time.monotonic()
            try:
                result = call(self.spec, trigger, invocation_id=invocation_id, app_dir=self.app_dir,
                              retry=RetryContext(attempt, max_retries), blobs=self.outputs)  # fmt: skip
                self.outputs.deliver(result)  # outputs of a run that succeeded; a failed delivery fails the run
                logs.invocation("Succeeded", duration_ms=round((time.monotonic() - started) * 1000, 1), **fields)
                return
            except Exception as e:
                logs.log.exception("function failed", extra={"fields": fields})
                logs.invocation("Failed", duration_ms=round((time.monotonic() - started) * 1000, 1),
                                error=f"{type(e).__name__}: {e}", **fields)  # fmt: skip
            finally:
                logs.current_invocation.reset(token)
            if max_retries != -1 and attempt >= max_retries:
                return  # the timer extension swallows the failure; the schedule goes on
            attempt += 1
            if self.stopping.wait(next(delays)):
                return

    def stop(self, timeout: float) -> bool:
        self.stopping.set()
        deadline = time.monotonic() + timeout
        while self.running.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.running.is_set()


def timer_trigger(past_due: bool, schedule_status: Mapping[str, Any]) -> Trigger:
    """The timer payload the host sends: ``{"Schedule", "ScheduleStatus", "IsPastDue"}`` as JSON."""
    payload = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": dict(schedule_status), "IsPastDue": past_due}
    return Trigger(meta.Datum(type="json", value=json.dumps(payload)), {}, {"IsPastDue": past_due})


def _retry_delays(policy: Mapping[str, str]) -> Any:
    """Delays between attempts: fixed ``delay_interval``, or randomized exponential min..max."""
    strategy = policy.get("strategy", "fixed_delay") if policy else "fixed_delay"

    def seconds(key: str, default: float) -> float:
        value = policy.get(key) if policy else None
        if value is None:
            return default
        text = str(value)
        return parse_timespan(text, key).total_seconds() if ":" in text else float(text)

    if strategy == "exponential_backoff":
        minimum, maximum = seconds("minimum_interval", 1.0), seconds("maximum_interval", 900.0)
        current, exponent = minimum, 0
        rng = random.Random()  # noqa: S311 - jitter, not security  # nosec B311
        while True:
            if exponent == 0:
                current = minimum
            else:
                current = min(maximum, minimum + rng.uniform(0.8, 1.2) * (2 ** (exponent - 1)) * minimum)
            exponent += 1
            yield current
    else:
        delay = seconds("delay_interval", 1.0)
        while True:
            yield delay
