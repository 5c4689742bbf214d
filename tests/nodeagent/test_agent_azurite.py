"""The node agent, run for real against a member's container in Azurite: what lands in
``additional-node-infos`` is exactly what the chain it verified admits, and nothing that does not
verify changes anything else.

Each container is written as the member's control plane writes it (chain versions, signed node-info
indexes and files, a flag day); the agent reads it with the read-only SAS its config carries, the
local stand-in for the nodes' identity's Storage Blob Data Reader on that container.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nodeagent.config import AgentConfig
from nodeagent.container import BlobContainer
from nodeagent.disk import StateError
from nodeagent.run import Report, run_once
from shared.decisions import chain, node_infos
from tests.nodeagent.conftest import Published, config_for, signed_flag_day, signed_index
from tests.support.chain_world import Bank, banks, genesis, new_key, next_version, sign

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "tests" / "data" / "membership-chain.json").read_text(encoding="utf-8"))
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def node_info(member_id: str, n: int = 1) -> bytes:
    """Stand-in bytes of a serialized SignedNodeInfo (the agent never parses them; Corda does)."""
    return f"corda-signed-node-info {member_id} node {n}".encode()


class World:
    """Three banks: a and b found the consortium, c is admitted in version 1."""

    def __init__(self) -> None:
        self.banks = banks("bank-a", "bank-b", "bank-c")
        a, b, c = self.banks["bank-a"], self.banks["bank-b"], self.banks["bank-c"]
        v0 = genesis({"bank-a": a, "bank-b": b})
        self.genesis = chain.document_hash(v0)
        t0 = chain.verify_genesis(self.genesis, v0)
        v1 = sign(next_version(t0, "admit", "bank-c", c.entry), a, b, c)
        self.versions = [v0, v1]
        self.trusted = [t0, chain.verify_next(t0, v1)]

    def bank(self, member_id: str) -> Bank:
        return self.banks[member_id]

    def append(self, kind: str, member_id: str, *signers: Bank, entry: dict[str, Any] | None = None) -> dict[str, Any]:
        raw = sign(next_version(self.trusted[-1], kind, member_id, entry, at="2026-11-28T11:30:00Z"), *signers)
        self.trusted.append(chain.verify_next(self.trusted[-1], raw))
        self.versions.append(raw)
        return raw


@pytest.fixture
def world() -> World:
    return World()


def run(config: AgentConfig, now: datetime = NOW) -> tuple[Report, list[str]]:
    lines: list[str] = []
    report = run_once(config, BlobContainer.from_config(config), now=lambda: now, log=lines.append)
    return report, lines


def on_disk(config: AgentConfig) -> dict[str, bytes]:
    folder = config.node_infos_dir
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} if folder.exists() else {}


def names(*pairs: tuple[str, bytes]) -> dict[str, bytes]:
    return {node_infos.disk_name(m, hashlib.sha256(d).hexdigest()): d for m, d in pairs}


def publish_all(published: Published, world: World, seq: int = 1) -> None:
    published.put_chain(world.versions)
    for member_id in ("bank-a", "bank-b", "bank-c"):
        published.put_node_infos(world.bank(member_id), [node_info(member_id)], seq=seq)


# --- a good chain ------------------------------------------------------------------------------


def test_a_good_chain_puts_every_admitted_members_node_info_and_nothing_else(
    published: Published, world: World, tmp_path: Path
) -> None:
    publish_all(published, world)
    published.put("nodes/bank-d/index.json", b"{}")  # not a member: never read
    config = config_for(published, tmp_path, world.genesis)

    report, refusals = run(config)

    assert refusals == []
    assert (report.version, report.hash, report.adopted) == (1, world.trusted[1].hash, 2)
    assert report.admitted == ("bank-a", "bank-b", "bank-c")
    assert on_disk(config) == names(*((m, node_info(m)) for m in ("bank-a", "bank-b", "bank-c")))
    assert report.restart is not None and report.restart.reason is node_infos.RestartReason.NO_FLAG_DAY
    assert report.line().startswith("nodeagent: chain version 1 (")
    assert "3 written, 0 removed, 0 unchanged; 0 refused, 0 waiting; restart: no (no_flag_day" in report.line()
    assert sorted(p.name for p in (config.state_dir / "chain").iterdir()) == ["00000000.json", "00000001.json"]


def test_the_contracts_vector_chain_is_followed_to_its_head(published: Published, tmp_path: Path) -> None:
    versions = VECTORS["valid"]["chain"]["versions"]
    published.put_chain(versions)
    config = config_for(published, tmp_path, VECTORS["valid"]["chain"]["genesis"])

    report, lines = run(config)

    assert (report.version, report.hash) == (5, VECTORS["valid"]["hashes"][-1])
    assert report.admitted == ("bank-a", "bank-b")  # bank-c removed, bank-d left
    # no member has published an index: nothing is written, and each is named as missing
    assert on_disk(config) == {}
    assert {(r.where, r.rule) for r in report.refused} == {
        ("nodes/bank-a/index.json", "missing"), ("nodes/bank-b/index.json", "missing")
    }  # fmt: skip
    assert report.rejected == [] and lines == []  # awaited, not refused: no line of their own
    assert "0 refused, 2 waiting (nodes/bank-a/index.json, nodes/bank-b/index.json)" in report.line()


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=[c["case"] for c in VECTORS["invalid"]])
def test_each_invalid_vector_is_refused_with_its_rule_and_the_head_before_it_kept(
    case: dict[str, Any], published: Published, tmp_path: Path
) -> None:
    versions = case["chain"]["versions"]
    published.put_chain(versions)
    config = config_for(published, tmp_path, case["chain"]["genesis"])

    report, refusals = run(config)

    valid = VECTORS["valid"]["hashes"]
    kept = report.version
    assert kept is None or report.hash == valid[kept]  # what it kept is a prefix of the valid chain
    refused = [r for r in report.refused if r.where.startswith("chain/")]
    assert len(refused) == 1 and refusals == [str(refused[0])]  # one line, naming the rule
    assert refused[0].message.startswith(case["why"])
    assert refused[0].where == f"chain/{(kept + 1) if kept is not None else 0:08d}.json"


# --- the chain's refusals ----------------------------------------------------------------------


def test_a_forged_next_version_is_refused_and_nothing_else_is_lost(
    published: Published, world: World, tmp_path: Path
) -> None:
    publish_all(published, world)
    config = config_for(published, tmp_path, world.genesis)
    run(config)
    before = on_disk(config)
    # version 2 removes bank-b, "signed" by bank-a and a key no version lists for bank-c
    forged = next_version(world.trusted[1], "remove", "bank-b", at="2026-11-28T11:30:00Z")
    impostor = Bank("bank-c", new_key("bank-c"))
    published.put("chain/00000002.json", chain.published_bytes(sign(forged, world.bank("bank-a"), impostor)))

    report, refusals = run(config)

    assert report.version == 1 and report.adopted == 0
    assert [(r.where, r.rule) for r in report.refused] == [("chain/00000002.json", "signatures")]
    assert "not signed as the contract requires" in refusals[0]
    assert on_disk(config) == before  # bank-b is still admitted: its node stays
    assert not (config.state_dir / "chain" / "00000002.json").exists()


def test_a_version_whose_bytes_are_not_canonical_is_refused(published: Published, world: World, tmp_path: Path) -> None:
    publish_all(published, world)
    v2 = world.append("leave", "bank-c", world.bank("bank-a"), world.bank("bank-b"), world.bank("bank-c"))
    published.put("chain/00000002.json", json.dumps(v2, indent=2).encode())  # the same document, pretty-printed
    config = config_for(published, tmp_path, world.genesis)

    report, _ = run(config)

    assert report.version == 1
    assert [(r.where, r.rule) for r in report.refused] == [("chain/00000002.json", "not_canonical")]
    assert len(on_disk(config)) == 3


# --- node-info files ---------------------------------------------------------------------------


def test_a_file_whose_bytes_are_not_in_the_verified_index_is_refused_and_its_member_keeps_what_it_had(
    published: Published, world: World, tmp_path: Path
) -> None:
    publish_all(published, world)
    config = config_for(published, tmp_path, world.genesis)
    run(config)
    b = world.bank("bank-b")
    good = node_info("bank-b", 2)
    published.put_node_infos(b, [node_info("bank-b"), good], seq=2)
    # the blob at the path of the second file is swapped for other bytes after the index was signed
    published.put(node_infos.node_info_path("bank-b", hashlib.sha256(good).hexdigest()), b"forged node info")
    # and a file no index lists is simply never read
    published.put(node_infos.node_info_path("bank-b", "f" * 64), b"unlisted")

    report, _ = run(config)

    assert [(r.where, r.rule) for r in report.refused] == [
        (node_infos.node_info_path("bank-b", hashlib.sha256(good).hexdigest()), "hash")
    ]
    assert on_disk(config) == names(*((m, node_info(m)) for m in ("bank-a", "bank-b", "bank-c")))
    # once the right bytes are there, the same index is applied
    published.put(node_infos.node_info_path("bank-b", hashlib.sha256(good).hexdigest()), good)
    report, _ = run(config)
    assert report.refused == [] and report.written == tuple(names(("bank-b", good)))


def test_an_index_signed_by_a_key_the_chain_does_not_list_for_that_member_is_refused(
    published: Published, world: World, tmp_path: Path
) -> None:
    published.put_chain(world.versions)
    a, c = world.bank("bank-a"), world.bank("bank-c")
    published.put_node_infos(a, [node_info("bank-a")], seq=1)
    published.put_node_infos(world.bank("bank-b"), [node_info("bank-b")], seq=1, key=c.key)  # c signs b's index
    published.put_node_infos(c, [node_info("bank-c")], seq=1, key=new_key("bank-c"))  # a key no version lists
    config = config_for(published, tmp_path, world.genesis)

    report, refusals = run(config)

    assert sorted((r.where, r.rule) for r in report.refused) == [
        ("nodes/bank-b/index.json", "signature"), ("nodes/bank-c/index.json", "signature")
    ]  # fmt: skip
    assert all("signed with a key its chain entry does not list" in line for line in refusals)
    assert on_disk(config) == names(("bank-a", node_info("bank-a")))


def test_an_index_of_another_member_mirrored_under_a_members_path_is_refused(
    published: Published, world: World, tmp_path: Path
) -> None:
    published.put_chain(world.versions)
    published.put(node_infos.index_path("bank-b"), signed_index(world.bank("bank-a"), [node_info("bank-a")], seq=1))
    config = config_for(published, tmp_path, world.genesis)

    report, _ = run(config)

    assert ("nodes/bank-b/index.json", "member") in {(r.where, r.rule) for r in report.refused}


def test_an_older_index_read_again_is_refused_as_a_replay(published: Published, world: World, tmp_path: Path) -> None:
    publish_all(published, world, seq=5)
    config = config_for(published, tmp_path, world.genesis)
    run(config)
    a = world.bank("bank-a")
    published.put_node_infos(a, [node_info("bank-a"), node_info("bank-a", 9)], seq=4)

    report, _ = run(config)

    assert [(r.where, r.rule) for r in report.refused] == [("nodes/bank-a/index.json", "replayed")]
    assert len(on_disk(config)) == 3


def test_a_member_removed_in_a_later_version_drops_from_the_nodes_view(
    published: Published, world: World, tmp_path: Path
) -> None:
    publish_all(published, world)
    config = config_for(published, tmp_path, world.genesis)
    run(config)
    a, b = world.bank("bank-a"), world.bank("bank-b")
    world.append("remove", "bank-c", a, b)
    published.put_chain(world.versions)

    report, _ = run(config)

    assert (report.version, report.adopted) == (2, 1)
    assert report.removed == tuple(names(("bank-c", node_info("bank-c"))))
    assert on_disk(config) == names(("bank-a", node_info("bank-a")), ("bank-b", node_info("bank-b")))
    assert report.restart is not None and not report.restart.restart  # a member gone restarts nothing


def test_a_file_nobody_admitted_put_in_the_directory_is_removed(
    published: Published, world: World, tmp_path: Path
) -> None:
    publish_all(published, world)
    config = config_for(published, tmp_path, world.genesis)
    config.node_infos_dir.mkdir(parents=True)
    (config.node_infos_dir / "nodeInfo-ABCDEF").write_bytes(b"dropped here by hand")

    report, _ = run(config)

    assert "nodeInfo-ABCDEF" in report.removed and len(on_disk(config)) == 3


# --- state: resume, never back -----------------------------------------------------------------


def test_the_agent_resumes_from_its_verified_head_and_never_goes_back(
    published: Published, world: World, tmp_path: Path
) -> None:
    publish_all(published, world)
    config = config_for(published, tmp_path, world.genesis)
    run(config)
    # the container now holds only version 2 (the earlier ones gone): the agent verifies it against its own 1
    a, b, c = world.bank("bank-a"), world.bank("bank-b"), world.bank("bank-c")
    world.append("leave", "bank-c", a, b, c)
    for path in ("chain/00000000.json", "chain/00000001.json"):
        published.delete(path)
    published.put("chain/00000002.json", chain.published_bytes(world.versions[2]))

    report, _ = run(config)
    assert (report.version, report.adopted) == (2, 1)

    # rolled back: the container's chain is an older one again; the agent keeps version 2
    published.delete("chain/00000002.json")
    published.put_chain(world.versions[:2])
    report, _ = run(config)
    assert (report.version, report.adopted, report.admitted) == (2, 0, ("bank-a", "bank-b"))
    assert set(on_disk(config)) == set(names(("bank-a", node_info("bank-a")), ("bank-b", node_info("bank-b"))))


def test_state_written_for_another_genesis_is_refused_naming_the_file(
    published: Published, world: World, tmp_path: Path
) -> None:
    publish_all(published, world)
    run(config_for(published, tmp_path, world.genesis))
    other = config_for(published, tmp_path, "1" * 64)

    with pytest.raises(
        StateError, match=r"chain/00000000.json does not verify from the pinned genesis \(genesis_hash\)"
    ):
        run(other)


# --- flag days ---------------------------------------------------------------------------------


def test_nothing_restarts_without_a_flag_day_whatever_else_changes(
    published: Published, world: World, tmp_path: Path
) -> None:
    publish_all(published, world)
    config = config_for(published, tmp_path, world.genesis)
    reports = [run(config)[0]]
    world.append("remove", "bank-c", world.bank("bank-a"), world.bank("bank-b"))
    published.put_chain(world.versions)
    published.put_node_infos(world.bank("bank-a"), [node_info("bank-a", 2)], seq=2)
    reports.append(run(config)[0])

    assert [r.restart.reason for r in reports if r.restart] == [node_infos.RestartReason.NO_FLAG_DAY] * 2
    assert not (config.state_dir / "flagday").exists()


def test_a_flag_day_restarts_the_node_once_after_its_switch_time(
    published: Published, world: World, tmp_path: Path
) -> None:
    publish_all(published, world)
    parameters = b"serialized SignedNetworkParameters, epoch 2"
    a = world.bank("bank-a")
    published.put("flag-day.json", signed_flag_day(a, "epoch-2", parameters, "2026-11-28T13:00:00Z"))
    config = config_for(published, tmp_path, world.genesis)

    before, _ = run(config, NOW)
    assert before.restart is not None and before.restart.reason is node_infos.RestartReason.NOT_YET_DUE
    due, _ = run(config, datetime(2026, 11, 28, 13, 0, 1, tzinfo=UTC))
    assert due.restart is not None and due.restart.reason is node_infos.RestartReason.PARAMETERS_NOT_READY
    assert [(r.where, r.rule) for r in due.refused][-1][1] == "missing"
    assert not (config.state_dir / "flagday").exists()

    published.put(node_infos.network_parameters_path(hashlib.sha256(parameters).hexdigest()), parameters)
    due, _ = run(config, datetime(2026, 11, 28, 13, 0, 2, tzinfo=UTC))
    assert due.restart is not None and due.restart.restart and "restart: requested" in due.line()
    assert (config.state_dir / "flagday" / "network-parameters").read_bytes() == parameters
    assert json.loads((config.state_dir / "flagday" / "restart-request.json").read_bytes()) == {
        "flag_day_id": "epoch-2"
    }

    again, _ = run(config, datetime(2026, 11, 28, 14, 0, tzinfo=UTC))
    assert again.restart is not None and again.restart.reason is node_infos.RestartReason.ALREADY_APPLIED


def test_a_flag_day_signed_by_another_member_restarts_nothing(
    published: Published, world: World, tmp_path: Path
) -> None:
    publish_all(published, world)
    parameters = b"params"
    forged = signed_flag_day(world.bank("bank-b"), "epoch-9", parameters, "2026-11-28T00:00:00Z")
    published.put("flag-day.json", forged)
    published.put(node_infos.network_parameters_path(hashlib.sha256(parameters).hexdigest()), parameters)
    config = config_for(published, tmp_path, world.genesis)

    report, _ = run(config)

    assert ("flag-day.json", "member") in {(r.where, r.rule) for r in report.refused}
    assert report.restart is not None and report.restart.reason is node_infos.RestartReason.NO_FLAG_DAY
    # bank-b's flag day re-labelled as bank-a's: the signature no longer verifies with bank-a's key
    doc = json.loads(forged)
    published.put("flag-day.json", chain.canonical({**doc, "member_id": "bank-a"}))
    report, _ = run(config)
    assert ("flag-day.json", "signature") in {(r.where, r.rule) for r in report.refused}
    assert not (config.state_dir / "flagday").exists()


# --- the entry point ---------------------------------------------------------------------------


def test_python_m_nodeagent_runs_from_its_config_file_and_logs_one_line(
    published: Published, world: World, tmp_path: Path
) -> None:
    publish_all(published, world)
    config = config_for(published, tmp_path, world.genesis)
    path = tmp_path / "config.toml"
    path.write_text(
        f'member_id = "bank-a"\ngenesis = "{world.genesis}"\ncontainer_url = "{published.read_url}"\n'
        f'credential = "sas"\ncorda_dir = "{config.corda_dir}"\nstate_dir = "{config.state_dir}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "nodeagent", "--config", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1].startswith("INFO nodeagent: chain version 1 (")
    assert len(on_disk(config)) == 3

    path.write_text(path.read_text().replace(world.genesis, "${GENESIS_HASH}"))
    done = subprocess.run(
        [sys.executable, "-m", "nodeagent", "--config", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "genesis is still the placeholder" in done.stderr


def test_an_unreachable_container_changes_nothing_and_exits_1(world: World, tmp_path: Path) -> None:
    from tools import azurite

    port = azurite.free_ports(1)[0]
    path = tmp_path / "config.toml"
    url = f"http://127.0.0.1:{port}/nodeagent/consortium-public?sv=2024-01-01&sp=rl&sig=x"
    path.write_text(
        f'member_id = "bank-a"\ngenesis = "{world.genesis}"\ncontainer_url = "{url}"\n'
        f'credential = "sas"\ncorda_dir = "{tmp_path / "corda"}"\nstate_dir = "{tmp_path / "state"}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "nodeagent", "--config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "nothing changed" in done.stderr
    assert not (tmp_path / "corda").exists()
