"""The local stack of the tools, the benches and the tests: what ``make up`` starts, in a folder of its own
and on free ports.

``LocalStack.start`` runs ``tools.stack.up_members`` (Azurite with one account per member, each
provisioned; the Azure emulator with each member's identity, vault and subscription; each member's
settings file; the founders' genesis ceremony; with ``hosts``, one local Functions host per member)
under ``root``, never on the contract's default ports, so a run goes on beside a ``make up`` stack and
beside other runs. ``values`` and ``per_member`` are settings each member's file starts with (short
timers for chaos, say), kept by ``member_settings.write`` under what makes the file that member's
deployment. ``emulator_config`` (``FAST_EMULATOR`` for the suites) is put to the emulator once it runs;
without it the emulator keeps what ``make up`` gives it, as the benches measure.

What a member's deployment sees is read back through the member's OWN settings (``values``,
``platform``): its storage, queues, vault and subscription, never the harness's notes. Starting and
stopping the hosts of a chaos trial (kill -9, restart) is the chaos monkey's own business
(``tools/chaos``); this module only starts what ``make up`` starts.

``running_azurite`` and ``running_emulator`` are the pieces alone, on free ports, for what runs without
the members' stack: the test session's Azurite and emulator, the storage tests' fresh accounts, and the
benches that run version 1's single deployment.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from shared.bootstrap import Platform
from shared.services.records import member_path
from shared.settings import Settings
from tools import azurite, emulator, member_settings, stack
from tools.emulator import EmulatorHandle

#: Fast emulator operations for tests and chaos (ARM's long-running operations take 0.3 s, nodes boot at once).
FAST_EMULATOR = {"operation_seconds": 0.3, "boot_delay_seconds": 0, "restart_seconds": 0.2}

S = TypeVar("S", bound="LocalStack")


def admin(handle: EmulatorHandle, method: str, path: str, body: object = None) -> Any:
    """Call the emulator's admin API (load, faults, configuration); its JSON answer, or None."""
    context = ssl.create_default_context(cafile=str(handle.ca))
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the emulator's https://localhost URL
        f"{handle.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310 - https://localhost  # nosec B310
        raw = response.read()
    return json.loads(raw) if raw else None


@dataclass
class LocalStack:
    """A started local stack: every member's deployment, each read through its own settings."""

    paths: stack.StackPaths
    members: tuple[str, ...]
    az: azurite.Azurite
    emulator: EmulatorHandle
    record: dict[str, Any]
    _platforms: dict[str, Platform] = field(default_factory=dict)

    @classmethod
    def start(
        cls: type[S],
        root: Path,
        members: tuple[str, ...] = azurite.MEMBER_IDS,
        *,
        values: Mapping[str, str] | None = None,
        per_member: Mapping[str, Mapping[str, str]] | None = None,
        hosts: bool = True,
        emulator_config: Mapping[str, object] | None = None,
    ) -> S:
        """``tools.stack.up_members`` under ``root`` on free ports; stopped again if it does not start whole."""
        ports = azurite.free_ports(4 + len(members))
        for member in members:
            extra = {**(values or {}), **((per_member or {}).get(member) or {})}
            if extra:
                target = member_settings.settings_path(member, root)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps({"IsEncrypted": False, "Values": extra}))
        paths = stack.StackPaths(root=root)
        try:
            record = stack.up_members(
                paths, members=members, emulator_port=ports[3], azurite_ports=(ports[0], ports[1], ports[2]),
                host_ports={m: ports[4 + i] for i, m in enumerate(members)}, quiet=True, start_hosts=hosts,
            )  # fmt: skip
            handle = EmulatorHandle(ports[3], paths.local / "emulator")
            if emulator_config is not None:
                admin(handle, "PUT", "/_admin/config", dict(emulator_config))
        except BaseException:
            stack.down(paths, quiet=True)
            raise
        served = record["azurite"]
        az = azurite.Azurite(ports[0], ports[1], ports[2], pid=int(served["pid"]), accounts=tuple(served["accounts"]))
        return cls(paths, members, az, handle, record)

    def stop(self) -> None:
        """Stop what ``start`` started (``make down`` of this folder)."""
        stack.down(self.paths, quiet=True)

    @property
    def root(self) -> Path:
        return self.paths.root

    def values(self, member: str) -> dict[str, str]:
        """The settings ``member``'s deployment runs with (its ``.local/members/{id}/local.settings.json``)."""
        return member_settings.read(member_settings.settings_path(member, self.paths.root))[0]

    def platform(self, member: str) -> Platform:
        """``member``'s own storage, queues, vault and subscription, as its deployment sees them."""
        if member not in self._platforms:
            self._platforms[member] = Platform(Settings(self.values(member)))
        return self._platforms[member]

    def as_(self, member: str, **changes: str) -> Settings:
        """``member``'s identity with some settings changed (another member's vault or subscription)."""
        return Settings({**self.values(member), **changes})

    def send(self, member: str, queue: str, body: str | Mapping[str, Any]) -> None:
        """Post to ``member``'s own queue, as its operator does."""
        self.platform(member).queues.send(queue, body if isinstance(body, str) else json.dumps(body))

    def own_record(self, member: str) -> dict[str, Any] | None:
        """``member``'s record of itself, in its own storage."""
        doc = self.platform(member).state.read(member_path(member))
        return doc.body if doc else None

    def admin(self, method: str, path: str, body: object = None) -> Any:
        return admin(self.emulator, method, path, body)

    def host_pid(self, member: str) -> int:
        return int(self.record[f"{stack.HOST_KEY}:{member}"]["pid"])

    def url(self, member: str) -> str:
        """Where ``member``'s host (started by ``start``) answers HTTP."""
        return f"http://localhost:{self.record[f'{stack.HOST_KEY}:{member}']['port']}"

    def log(self, member: str) -> str:
        path = self.paths.logs / f"{stack.HOST_KEY}-{member}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def running_azurite(
    location: Path, *, accounts: Iterable[str] = azurite.ACCOUNTS, log_file: Path | None = None
) -> Iterator[azurite.Azurite]:
    """An Azurite of its own on free ports, its data in ``location``, serving ``accounts``; stopped on leaving."""
    ports = azurite.free_ports(3)
    az, proc = azurite.start(location, ports=(ports[0], ports[1], ports[2]), log_file=log_file, accounts=accounts)
    try:
        yield az
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait(timeout=10)


@contextmanager
def running_emulator(
    state_dir: Path, *, config: Mapping[str, object] | None = None, log_file: Path | None = None
) -> Iterator[EmulatorHandle]:
    """The Azure emulator on a free port with its state in ``state_dir``, configured with ``config`` when
    given; stopped on leaving."""
    handle, proc = emulator.start(state_dir, azurite.free_ports(1)[0], log_file=log_file)
    try:
        if config is not None:
            admin(handle, "PUT", "/_admin/config", dict(config))
        yield handle
    finally:
        azurite.stop_pid(proc.pid)
        proc.wait(timeout=10)
