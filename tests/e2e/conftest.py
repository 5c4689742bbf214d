"""Run the real ``function_app.py`` on the local host against the local stack.

``member_stack`` starts the one-deployment-per-member shape (CONTRACT.md, "The local stack") the way
``make up`` does (``tools.stack.up_members``: Azurite with an account per member, each provisioned,
the emulator with each member's identity, vault and subscription, each member's settings file, the
founders' genesis ceremony, one local host per member), but in a temporary folder and on free ports,
never the default ones, so a test session runs beside a ``make up`` stack and beside other sessions.
A module starts one stack and its tests share it.

``run_app`` and ``app_settings`` start version 1's single host on the session Azurite, for the tests
that still run on that shape.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shared import settings as settings_module
from shared.bootstrap import Platform
from shared.services.records import list_rejections, member_path
from shared.settings import Settings
from tests.conftest import admin
from tools import azurite, member_settings, stack
from tools.emulator import EmulatorHandle
from tools.harness.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
#: Fast emulator operations for tests (ARM's long-running operations take 0.3 s, nodes boot at once).
FAST_EMULATOR = {"operation_seconds": 0.3, "boot_delay_seconds": 0, "restart_seconds": 0.2}


@dataclass
class MemberStack:
    """The local stack of one test module: every member's deployment, each read through its own settings."""

    paths: stack.StackPaths
    members: tuple[str, ...]
    az: azurite.Azurite
    emulator: EmulatorHandle
    record: dict[str, Any]
    _platforms: dict[str, Platform] = field(default_factory=dict)

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
        doc = self.platform(member).state.read(member_path(member))
        return doc.body if doc else None

    def status(self, member: str) -> str:
        record = self.own_record(member)
        return str(record["status"]) if record else "outside"

    def wait_status(self, member: str, status: str, timeout: float = 60) -> dict[str, Any]:
        wait_until(f"{member} {status} (is {self.status(member)})", lambda: self.status(member) == status, timeout)
        return self.own_record(member) or {}

    def rejections(self, member: str) -> list[dict[str, Any]]:
        return list_rejections(self.platform(member).state)

    def admin(self, method: str, path: str, body: object = None) -> object:
        return admin(self.emulator, method, path, body)

    def host_pid(self, member: str) -> int:
        return int(self.record[f"{stack.HOST_KEY}:{member}"]["pid"])

    def log(self, member: str) -> str:
        path = self.paths.logs / f"{stack.HOST_KEY}-{member}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start_member_stack(
    root: Path,
    members: tuple[str, ...] = azurite.MEMBER_IDS,
    *,
    values: Mapping[str, str] | None = None,
    per_member: Mapping[str, Mapping[str, str]] | None = None,
) -> MemberStack:
    """``tools.stack.up_members`` in ``root`` on free ports; ``values`` (and ``per_member``) are settings
    each member's file starts with, before the stack writes what makes it that member's deployment."""
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
            paths,
            members=members,
            emulator_port=ports[3],
            azurite_ports=(ports[0], ports[1], ports[2]),
            host_ports={m: ports[4 + i] for i, m in enumerate(members)},
            quiet=True,
        )
    except BaseException:
        stack.down(paths, quiet=True)
        raise
    handle = EmulatorHandle(ports[3], paths.local / "emulator")
    admin(handle, "PUT", "/_admin/config", FAST_EMULATOR)
    return MemberStack(paths, members, azurite.Azurite(ports[0], ports[1], ports[2]), handle, record)


@pytest.fixture(scope="module")
def member_stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., MemberStack]]:
    """Start (at most one per module) a member stack; stopped when the module's tests are done."""
    started: list[MemberStack] = []

    def start(members: tuple[str, ...] = azurite.MEMBER_IDS, **options: Any) -> MemberStack:
        root = Path(tmp_path_factory.mktemp("stack"))
        started.append(start_member_stack(root, members, **options))
        return started[-1]

    yield start
    for running in started:
        stack.down(running.paths, quiet=True)


@pytest.fixture
def app_settings(storage_connection_string: str) -> dict[str, str]:
    return {**settings_module.local_defaults(), "AzureWebJobsStorage": storage_connection_string}


def start_host(
    tmp_path: Path, name: str, values: Mapping[str, str], started: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    """One more local host of the real app on ``values`` (a free port), returned once it takes messages."""
    settings_file = tmp_path / f"{name}.settings.json"
    settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": dict(values)}))
    ready = tmp_path / f"{name}.ready"
    port = azurite.free_ports(1)[0]
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed when the process ends
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.funchost", "--app-dir", str(ROOT), "--settings", str(settings_file),
         "--port", str(port), "--ready-file", str(ready)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    started.append(proc)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, (tmp_path / f"{name}.log").read_text()
        assert time.monotonic() < deadline, "the host did not start"
        time.sleep(0.1)
    return proc


def stop_hosts(started: list[subprocess.Popen[bytes]]) -> None:
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def run_app(tmp_path: Path, app_settings: dict[str, str]) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(deployment: str, **extra: str) -> subprocess.Popen[bytes]:
        values = {
            **app_settings,
            "CONSORTIUM_DEPLOYMENT": deployment,
            "AzureFunctionsWebHost__hostid": deployment,
            **extra,
        }
        return start_host(tmp_path, deployment, values, started)

    yield start
    stop_hosts(started)
