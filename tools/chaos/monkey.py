"""The faults of a trial: kill -9 of deployments (at most two down at once, each restarted a few seconds
later), 429, 5xx and latency storms from the emulator, and one Azurite restart on the same ports and data.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from typing import Any

from tools.chaos.deployments import MemberStack
from tools.harness.wait import retrying


class Monkey(threading.Thread):
    """Random faults while a trial runs: kill -9 of deployments, storms from the emulator, one Azurite restart."""

    def __init__(self, stack: MemberStack, rng: random.Random, started: float, *, azurite_restart_after: float | None):
        super().__init__(daemon=True, name="monkey")
        self.stack, self.rng, self.started = stack, rng, started
        self.azurite_restart_after = azurite_restart_after
        self.actions: Counter[str] = Counter()
        self.log: list[str] = []
        self.errors: list[str] = []
        self._stop_event = threading.Event()
        self._restarts: list[tuple[float, int]] = []
        self._clear_at: dict[str, float] = {}

    def note(self, what: str) -> None:
        self.actions[what.split(" ", 1)[0]] += 1
        self.log.append(f"{time.monotonic() - self.started:6.1f}s {what}")

    def run(self) -> None:
        while not self._stop_event.wait(self.rng.uniform(1.5, 4.5)):
            try:
                self.step()
            except Exception as e:  # the harness itself must not die mid-trial
                self.errors.append(f"{type(e).__name__}: {e}")

    def step(self) -> None:
        now = time.monotonic()
        for due, n in list(self._restarts):
            if due <= now:
                self._restarts.remove((due, n))
                self.stack.start_instance(n)
                self.note(f"restart {self.stack.instances[n].name}")
        for service, due in list(self._clear_at.items()):
            if due <= now:
                del self._clear_at[service]
                self.stack.admin("PUT", f"/_admin/faults/{service}", {})
        if self.azurite_restart_after is not None and now - self.started >= self.azurite_restart_after:
            self.azurite_restart_after = None
            down = self.rng.uniform(0.5, 3)
            self.stack.restart_azurite(down)
            self.note(f"azurite-restart (down {down:.1f} s)")
            return
        kind = self.rng.choice(["kill", "kill", "429", "5xx", "latency"])
        if kind == "kill":
            alive = [n for n in range(len(self.stack.instances)) if self.stack.running(n)]
            if len(alive) > len(self.stack.instances) - 2:  # at most two deployments down at once
                n = self.rng.choice(alive)
                self.stack.kill_instance(n)
                self._restarts.append((now + self.rng.uniform(0.5, 5), n))
                self.note(f"kill -9 {self.stack.instances[n].name}")
            return
        service = self.rng.choice(["compute", "metrics", "keyvault"])
        if kind == "429":
            spec: dict[str, Any] = {"status": 429, "count": self.rng.randint(3, 12), "retry_after": 1}
        elif kind == "5xx":
            spec = {"status": self.rng.choice([500, 502, 503]), "count": self.rng.randint(3, 12)}
        else:
            spec = {"latency_ms": self.rng.randint(200, 1500)}
            self._clear_at[service] = now + self.rng.uniform(2, 6)
        self.stack.admin("PUT", f"/_admin/faults/{service}", spec)
        self.note(f"{kind} {service} {spec}")

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=60)
        with contextlib.suppress(Exception):
            retrying(lambda: self.stack.admin("DELETE", "/_admin/faults"))
        self.stack.ensure_running()
