"""One host instance: index the app, start a listener per trigger, serve HTTP, stop gracefully."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import logs
from .config import HostConfigError, host_id_for, load_host_json, load_local_settings
from .http import HttpRoutes, serve
from .indexing import FunctionSpec, IndexingError, index_app
from .ncrontab import ScheduleError
from .outputs import Outputs
from .queues import RECEIVE_VISIBILITY, QueueListener
from .timers import TimerListener

#: Stopping never waits longer than this for running invocations, whatever functionTimeout says.
MAX_STOP_WAIT = timedelta(minutes=2)


@dataclass(frozen=True)
class HostOptions:
    app_dir: Path
    module: str = "function_app"
    settings_file: str = "local.settings.json"
    host_json: str = "host.json"
    port: int | None = 7071
    instance_index: int = 0


class Host:
    def __init__(self, options: HostOptions):
        self.options = options
        app_dir = options.app_dir.resolve()
        self.app_dir = app_dir
        # The host puts app settings into the worker's environment before the app is imported.
        values = load_local_settings(app_dir / options.settings_file)
        for key, value in values.items():
            os.environ.setdefault(key, value)
        os.environ.setdefault("AZURE_FUNCTIONS_ENVIRONMENT", "Development")
        self.instance_id = os.environ.get("WEBSITE_INSTANCE_ID") or f"{socket.gethostname()}-{options.instance_index}"
        os.environ["WEBSITE_INSTANCE_ID"] = self.instance_id
        logs.INSTANCE["id"] = self.instance_id
        self.settings: dict[str, str] = dict(os.environ)
        self.config = load_host_json(app_dir / options.host_json)
        self.host_id = host_id_for(self.config, self.settings, app_dir)
        self.specs: list[FunctionSpec] = index_app(options.module, app_dir, self.settings)
        self.state = "Initialized"
        self.started_at = datetime.now(UTC)
        receive_visibility = timedelta(
            seconds=float(os.environ.get("FUNCHOST_RECEIVE_VISIBILITY_SECONDS", RECEIVE_VISIBILITY.total_seconds()))
        )
        # A testing facility (see tools/funchost/queues.py): every message delivered twice; the chaos suite sets it.
        deliver_twice = self.deliver_twice = os.environ.get("FUNCHOST_DELIVER_TWICE", "").strip().lower()
        self.queue_listeners: list[QueueListener] = []
        self.outputs = Outputs(self.settings, self.config.queues.message_encoding, self._notify)
        for spec in self.specs:
            if spec.trigger_type == "queueTrigger":
                self.queue_listeners.append(
                    QueueListener(
                        spec,
                        self.config.queues,
                        self.settings,
                        self.outputs,
                        str(app_dir),
                        receive_visibility,
                        deliver_twice,
                    )
                )
        self.timer_listeners = [
            TimerListener(
                spec, self.settings, self.config.singleton, self.host_id, self.instance_id, str(app_dir), self.outputs
            )
            for spec in self.specs
            if spec.trigger_type == "timerTrigger"
        ]
        self.threads: list[threading.Thread] = []
        self.http_server: Any = None
        self.stopped = threading.Event()

    def _notify(self, queue: str) -> None:
        for listener in self.queue_listeners:
            if listener.queue == queue:
                listener.notify()

    def status(self) -> dict[str, Any]:
        return {
            "id": self.host_id,
            "state": self.state,
            "instance": self.instance_id,
            "processId": os.getpid(),
            "functions": [s.name for s in self.specs],
            "startedAt": self.started_at.isoformat(),
        }

    def banner(self) -> str:
        lines = [
            "Local Functions host (tools/funchost): a development stand-in for `func start`, not a production host.",
            f"  app {self.app_dir.name}/{self.options.module}.py  host id {self.host_id}  instance {self.instance_id}",
            "  Functions:",
        ]
        for spec in self.specs:
            lines.append(f"    {spec.name}: {describe_trigger(spec)}")
        if self.deliver_twice:
            lines.append(f"  FUNCHOST_DELIVER_TWICE={self.deliver_twice}: each queue message delivered twice (testing)")
        if self.options.port is not None and any(s.trigger_type == "httpTrigger" for s in self.specs):
            lines.append(f"  HTTP on http://localhost:{self.options.port} (auth levels are not enforced locally)")
        return "\n".join(lines)

    def start(self) -> None:
        for listener in self.queue_listeners:
            self._thread(listener.run, f"poll-{listener.spec.name}")
        for timer in self.timer_listeners:
            self._thread(timer.run, f"timer-{timer.spec.name}")
        if self.options.port is not None:
            routes = HttpRoutes(self.specs, str(self.app_dir), self.status, self.outputs)
            self.http_server, _ = serve(routes, self.options.port)
        self.state = "Running"
        logs.event("host started", host_id=self.host_id, functions=len(self.specs), port=self.options.port)

    def _thread(self, target: Any, name: str) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception:
                logs.log.exception(f"listener {name} crashed")

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self) -> bool:
        """Stop listening, let running invocations finish within functionTimeout; True if all did."""
        self.state = "Stopping"
        budget = min(self.config.function_timeout, MAX_STOP_WAIT).total_seconds()
        logs.event("host stopping; waiting for running invocations", timeout_seconds=budget)
        finished = all(
            [listener.stop(budget) for listener in self.queue_listeners]
            + [t.stop(budget) for t in self.timer_listeners]
        )
        for thread in self.threads:
            thread.join(timeout=5)
        if self.http_server is not None:
            self.http_server.shutdown()
        self.state = "Stopped"
        logs.event("host stopped", all_invocations_finished=finished)
        self.stopped.set()
        return finished


def describe_trigger(spec: FunctionSpec) -> str:
    t = spec.trigger
    if spec.trigger_type == "queueTrigger":
        return f"queue {t['queueName']}"
    if spec.trigger_type == "timerTrigger":
        return f"timer {t['schedule']}"
    if spec.trigger_type == "httpTrigger":
        return f"http {','.join(t.get('methods') or ['*'])} /api/{t.get('route') or spec.name}"
    return spec.trigger_type


def run(options: HostOptions, *, ready_file: Path | None = None) -> int:
    logs.configure()
    try:
        host = Host(options)
    except (IndexingError, HostConfigError, ScheduleError) as e:
        # Refused at start, before any message or request is taken: one line naming what and why.
        print(f"funchost: refused to start: {e}", file=sys.stderr, flush=True)
        return 2
    print(host.banner(), file=sys.stderr, flush=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    host.start()
    if ready_file is not None:
        ready_file.write_text(str(os.getpid()))
    stop.wait()
    finished = host.stop()
    return 0 if finished else 1
