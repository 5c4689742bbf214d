"""Run the real ``function_app.py`` on the local host against the local stack.

``member_stack`` starts the one-deployment-per-member shape (docs/contract.md, "The local stack") the way
``make up`` does (``tools.stack.up_members``: Azurite with an account per member, each provisioned,
the emulator with each member's identity, vault and subscription, each member's settings file, the
founders' genesis ceremony, one local host per member), but in a temporary folder and on free ports,
never the default ones, so a test session runs beside a ``make up`` stack and beside other sessions:
the harness's ``LocalStack`` (``tools/harness/stack.py``), with the emulator fast. A module starts one
stack and its tests share it.

``run_app`` and ``app_settings`` start version 1's single host on the session Azurite, for the tests
that still run on that shape.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from shared import settings as settings_module
from shared.services.records import list_rejections
from tools import azurite
from tools.harness import hosts
from tools.harness.stack import FAST_EMULATOR, LocalStack
from tools.harness.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


class MemberStack(LocalStack):
    """The local stack of one test module (``tools.harness.stack``), with what its tests ask of a member."""

    def status(self, member: str) -> str:
        record = self.own_record(member)
        return str(record["status"]) if record else "outside"

    def wait_status(self, member: str, status: str, timeout: float = 60) -> dict[str, Any]:
        wait_until(f"{member} {status} (is {self.status(member)})", lambda: self.status(member) == status, timeout)
        return self.own_record(member) or {}

    def rejections(self, member: str) -> list[dict[str, Any]]:
        return list_rejections(self.platform(member).state)


def start_member_stack(
    root: Path,
    members: tuple[str, ...] = azurite.MEMBER_IDS,
    *,
    values: Mapping[str, str] | None = None,
    per_member: Mapping[str, Mapping[str, str]] | None = None,
) -> MemberStack:
    """``tools.stack.up_members`` in ``root`` on free ports, the emulator fast; ``values`` (and ``per_member``)
    are settings each member's file starts with, before the stack writes what makes it that member's deployment."""
    return MemberStack.start(root, members, values=values, per_member=per_member, emulator_config=FAST_EMULATOR)


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
        running.stop()


@pytest.fixture
def app_settings(storage_connection_string: str) -> dict[str, str]:
    return {**settings_module.local_defaults(), "AzureWebJobsStorage": storage_connection_string}


def start_host(
    tmp_path: Path, name: str, values: Mapping[str, str], started: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    """One more local host of the real app on ``values`` (a free port), returned once it takes messages."""
    settings_file = tmp_path / f"{name}.settings.json"
    settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": dict(values)}))
    ready, log = tmp_path / f"{name}.ready", tmp_path / f"{name}.log"
    port = azurite.free_ports(1)[0]
    proc = hosts.spawn(hosts.funchost(ready=ready, settings=settings_file, port=port, app_dir=ROOT), log, append=False)
    started.append(proc)
    hosts.await_ready(proc, ready, f"the host {name}", log, 60)
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
