"""The Corda VMs' cloud-init carries the node agent as the repository has it, and sets it up with
least privilege: its own user, write access to ``additional-node-infos`` (and its own state) only,
a timer, and no way to restart Corda but the flag-day path unit."""

from __future__ import annotations

import base64
import configparser
import io
import lzma
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from nodeagent.config import ConfigError, parse
from shared.ports.scalesets import ScaleSetSpec
from tests.nodeagent.conftest import Published, config_for
from tests.nodeagent.test_agent_azurite import World, on_disk, publish_all
from tools import node_cloud_init

ROOT = Path(__file__).resolve().parents[2]
TEXT = node_cloud_init.CLOUD_INIT.read_text(encoding="utf-8")
DOC: dict[str, Any] = yaml.safe_load(TEXT)
FILES = {f["path"]: f for f in DOC["write_files"]}
PLACEHOLDERS = {"MEMBER_ID", "GENESIS_HASH", "PUBLIC_CONTAINER_URL", "NODES_IDENTITY_CLIENT_ID", "INBOX_CONTAINER_URL"}


def content(path: str) -> bytes:
    entry = FILES[path]
    if entry.get("encoding") == "b64":
        data = base64.b64decode(entry["content"])
        return lzma.decompress(data) if path.endswith(".xz") else data
    return str(entry["content"]).encode()


def unpacked() -> dict[str, tarfile.TarInfo]:
    """The archive's entries as ``tar -xf ... -C /opt/nodeagent`` lays them out, by path under ``APP``."""
    with tarfile.open(fileobj=io.BytesIO(content(node_cloud_init.ARCHIVE))) as tar:
        return {"." if m.name == "app" else m.name.removeprefix("app/"): m for m in tar.getmembers()}


def app_files() -> dict[str, bytes]:
    """What the cloud-init writes into ``APP``: each file's path under it, and its bytes."""
    with tarfile.open(fileobj=io.BytesIO(content(node_cloud_init.ARCHIVE))) as tar:
        return {
            m.name.removeprefix("app/"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def unit(path: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(content(path).decode())
    return parser


def test_the_agents_code_in_the_cloud_init_is_the_repositorys_as_it_is_now() -> None:
    assert node_cloud_init.render(TEXT) == TEXT, "out of date: run `python -m tools.node_cloud_init`"


def test_it_carries_exactly_the_agent_and_the_modules_it_imports_byte_for_byte() -> None:
    embedded = app_files()
    modules = {p.relative_to(ROOT).as_posix() for p in node_cloud_init.agent_modules()}
    assert set(embedded) == modules
    assert {"shared/decisions/chain/__init__.py", "shared/decisions/node_infos.py", "nodeagent/run.py"} <= modules
    assert not any(m.startswith(("shared/adapters", "shared/services", "tools/", "functions/")) for m in modules)
    for relative in modules:
        assert embedded[relative] == (ROOT / relative).read_bytes(), relative
    assert not any(p.startswith(node_cloud_init.APP + "/") for p in FILES), "the modules travel in the archive only"


def test_the_archive_unpacks_under_the_app_directory_readable_by_the_agent_and_owned_by_root() -> None:
    entries = unpacked()
    assert all(not name.startswith(("/", "..")) and ".." not in name.split("/") for name in entries)
    assert all((m.uid, m.gid, m.mtime) == (0, 0, 0) for m in entries.values())
    assert all(m.mode == (0o755 if m.isdir() else 0o644) and (m.isdir() or m.isfile()) for m in entries.values())
    runcmd = [str(c) for c in DOC["runcmd"]]
    unpack = runcmd.index(f"tar -xf {node_cloud_init.ARCHIVE} -C /opt/nodeagent --no-same-owner")
    assert unpack < runcmd.index("systemctl enable --now corda-flagday.path nodeagent.timer")
    assert content("/opt/nodeagent/requirements.txt") == (ROOT / node_cloud_init.REQUIREMENTS).read_bytes()


def test_it_fits_in_a_vms_custom_data() -> None:
    assert len(TEXT.encode()) <= node_cloud_init.MAX_CUSTOM_DATA
    assert TEXT.startswith("#cloud-config\n")
    assert "network map" not in TEXT.replace("without a network map", "")  # no signed network map any more


def test_the_agents_config_has_the_documented_placeholders_and_refuses_to_run_until_they_are_filled() -> None:
    text = content("/etc/nodeagent/config.toml").decode()
    assert set(re.findall(r"\$\{([A-Z_]+)\}", text)) == PLACEHOLDERS
    assert all(f"${{{p}}}" in TEXT.split("package_update")[0] for p in PLACEHOLDERS)  # the header names each
    with pytest.raises(ConfigError, match="member_id is still the placeholder"):
        parse(tomllib.loads(text))
    filled = (
        text.replace("${MEMBER_ID}", "bank-a")
        .replace("${GENESIS_HASH}", "ab" * 32)
        .replace("${PUBLIC_CONTAINER_URL}", "https://stpubbanka.blob.core.windows.net/consortium-public")
        .replace("${NODES_IDENTITY_CLIENT_ID}", "00000000-0000-0000-0000-000000000001")
        .replace("${INBOX_CONTAINER_URL}", "https://stbanka.blob.core.windows.net/node-infos-inbox")
    )
    config = parse(tomllib.loads(filled))
    assert config.credential.value == "managed-identity"
    assert config.inbox_url == "https://stbanka.blob.core.windows.net/node-infos-inbox"
    assert str(config.node_infos_dir) == "/opt/corda/additional-node-infos"
    assert str(config.state_dir) == "/var/lib/nodeagent"


def test_the_agent_runs_as_its_own_user_writing_only_its_state_and_additional_node_infos() -> None:
    service = unit("/etc/systemd/system/nodeagent.service")["Service"]
    assert (service["User"], service["Type"]) == ("nodeagent", "oneshot")
    assert service["ExecStart"].endswith("-m nodeagent --config /etc/nodeagent/config.toml")
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "true"
    assert service["ReadWritePaths"].split() == ["/var/lib/nodeagent", "/opt/corda/additional-node-infos"]
    assert service["CapabilityBoundingSet"] == ""
    timer = unit("/etc/systemd/system/nodeagent.timer")["Timer"]
    assert (timer["OnCalendar"], timer["Persistent"]) == ("minutely", "true")
    runcmd = [str(c) for c in DOC["runcmd"]]
    assert "install -d -o nodeagent -g corda -m 2750 /opt/corda/additional-node-infos" in runcmd
    assert "systemctl enable --now corda-flagday.path nodeagent.timer" in runcmd
    assert not any("sudo" in c for c in runcmd)


def test_only_a_flag_day_request_restarts_corda() -> None:
    path = unit("/etc/systemd/system/corda-flagday.path")["Path"]
    assert path["PathChanged"] == "/var/lib/nodeagent/flagday/restart-request.json"
    restart = [c for c in TEXT.splitlines() if "systemctl restart" in c]
    assert restart == ["      ExecStart=/usr/bin/systemctl restart corda.service"]
    assert "User" not in unit("/etc/systemd/system/corda-flagday.service")["Service"]  # root: it installs a file


def test_the_corda_service_unit_is_kept() -> None:
    corda = unit("/etc/systemd/system/corda.service")
    assert corda["Service"]["ExecStart"] == "/usr/bin/java -jar /opt/corda/corda.jar --config-file /opt/corda/node.conf"
    assert (corda["Service"]["User"], corda["Service"]["Restart"]) == ("corda", "on-failure")
    assert "openjdk-17-jre-headless" in DOC["packages"]


def test_the_agent_as_cloud_init_installs_it_runs_against_the_members_container(
    published: Published, tmp_path: Path
) -> None:
    """The files are unpacked as the cloud-init lays them out and run from there, not from the checkout."""
    app = tmp_path / "app"
    for relative, data in app_files().items():
        target = app / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    world = World()
    publish_all(published, world)
    config = config_for(published, tmp_path, world.genesis)
    toml = tmp_path / "config.toml"
    toml.write_text(
        f'member_id = "bank-a"\ngenesis = "{world.genesis}"\ncontainer_url = "{published.read_url}"\n'
        f'credential = "sas"\ncorda_dir = "{config.corda_dir}"\nstate_dir = "{config.state_dir}"\n'
    )
    probe = "import nodeagent, shared.decisions.chain as c; print(nodeagent.__file__, c.__file__)"
    env = {"PYTHONPATH": str(app), "PATH": "/usr/bin:/bin"}
    where = subprocess.run([sys.executable, "-c", probe], cwd=app, env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.split() == [str(app / "nodeagent/__init__.py"), str(app / "shared/decisions/chain/__init__.py")]

    done = subprocess.run(
        [sys.executable, "-m", "nodeagent", "--config", str(toml)],
        cwd=app, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "INFO nodeagent: chain version 1" in done.stderr
    assert len(on_disk(config)) == 3


def _spec(custom_data: str, client_id: str = "00000000-0000-0000-0000-000000000001") -> ScaleSetSpec:
    return ScaleSetSpec(
        name="vmss-bank-a", location="westeurope", capacity=0, vm_size="Standard_D2s_v5", image="a:b:c:latest",
        subnet_id="/subnets/nodes", backend_pool_id="/pools/corda", identity_id="/identities/id-corda-bank-a",
        custom_data=custom_data, node_identity_client_id=client_id,
    )  # fmt: skip


def test_the_control_plane_fills_the_agents_placeholders_when_it_creates_the_scale_set() -> None:
    spec = _spec(base64.b64encode(TEXT.encode()).decode()).node_config(
        member_id="bank-a", genesis_hash="ab" * 32,
        public_container_url="https://stpubbanka.blob.core.windows.net/consortium-public?sv=x&sig=y",
        inbox_container_url="https://stbanka.blob.core.windows.net/node-infos-inbox",
    )  # fmt: skip
    filled = base64.b64decode(spec.custom_data).decode()
    assert not re.search(r"\$\{[A-Z_]+\}", filled)
    files = {f["path"]: f for f in yaml.safe_load(filled)["write_files"]}
    config = parse(tomllib.loads(str(files["/etc/nodeagent/config.toml"]["content"])))
    assert (config.member_id, config.genesis) == ("bank-a", "ab" * 32)
    assert config.container_url == "https://stpubbanka.blob.core.windows.net/consortium-public", "no SAS on a VM"
    assert config.managed_identity_client_id == "00000000-0000-0000-0000-000000000001"
    assert config.inbox_url == "https://stbanka.blob.core.windows.net/node-infos-inbox", "private account, no SAS"


@pytest.mark.parametrize(
    ("text", "client_id", "genesis", "error"),
    [
        (
            "member = ${MEMBER_ID}\ngenesis = ${GENESIS_HASH}\n",
            "c",
            "",
            r"\$\{GENESIS_HASH\}: set CONSORTIUM_GENESIS_HASH",
        ),
        ("client = ${NODES_IDENTITY_CLIENT_ID}\n", "", "ab" * 32, "node_identity_client_id"),
        ("inbox = ${INBOX_CONTAINER_URL}\n", "c", "ab" * 32, r"\$\{INBOX_CONTAINER_URL\}: set AzureWebJobsStorage"),
        (
            "secret = ${SOMETHING_ELSE}\n",
            "c",
            "ab" * 32,
            r"\$\{SOMETHING_ELSE\}, which the control plane does not fill",
        ),
    ],
)
def test_a_placeholder_the_control_plane_cannot_fill_stops_the_scale_set_with_its_name(
    text: str, client_id: str, genesis: str, error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        _spec(base64.b64encode(text.encode()).decode(), client_id).node_config(
            member_id="bank-a", genesis_hash=genesis, public_container_url="https://x/consortium-public"
        )


def test_a_template_without_custom_data_is_left_as_it_is() -> None:
    spec = _spec("")
    assert spec.node_config(member_id="bank-a", genesis_hash="", public_container_url="") is spec
