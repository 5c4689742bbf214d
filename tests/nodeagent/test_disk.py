"""The agent's files: whole or not at all, temporary files where Corda never reads them, its state kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodeagent.disk import STAGING, AgentState, NodeInfosDir, StateDir, StateError


def test_a_node_info_is_written_through_the_staging_folder_corda_does_not_read(tmp_path: Path) -> None:
    folder = NodeInfosDir(tmp_path / "additional-node-infos")
    folder.write("nodeInfo-bank-a-" + "0" * 64, b"node info")

    assert folder.present() == {"nodeInfo-bank-a-" + "0" * 64}  # the staging folder is not a regular file
    assert (folder.root / STAGING).is_dir() and list((folder.root / STAGING).iterdir()) == []
    assert (folder.root / ("nodeInfo-bank-a-" + "0" * 64)).stat().st_mode & 0o777 == 0o644  # corda's group reads it


def test_the_directory_counts_every_file_corda_would_read_and_removes_them(tmp_path: Path) -> None:
    folder = NodeInfosDir(tmp_path)
    (tmp_path / "stray").write_bytes(b"x")
    os.symlink(tmp_path / "stray", tmp_path / "link")
    assert folder.present() == {"stray", "link"}
    folder.remove(["link", "stray", "absent"])
    assert folder.present() == set()


def test_state_round_trips_and_a_version_is_never_replaced_by_another_document(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.save(AgentState({"bank-b": (3, "ab" * 32)}, ["epoch-1"]))
    assert state.load() == AgentState({"bank-b": (3, "ab" * 32)}, ["epoch-1"])
    state.store_version(0, b"version 0")
    state.store_version(0, b"version 0")  # the same bytes again: nothing to do
    with pytest.raises(StateError, match="already holds another document of version 0"):
        state.store_version(0, b"another version 0")
    assert state.versions() == [b"version 0"]


def test_a_state_file_that_is_not_the_agents_is_named(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"indexes": 1}')
    with pytest.raises(StateError, match=r"state.json is not the agent's state"):
        StateDir(tmp_path).load()
