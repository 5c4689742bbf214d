"""The blob state store against Azurite: reading every document under a prefix downloads only what changed."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from azure.storage.blob import ContainerClient

from shared.adapters.blob_state import BlobStateStore
from shared.adapters.storage import expand_connection_string


@pytest.fixture
def counted(storage_connection_string: str, unique_name: str) -> tuple[BlobStateStore, Counter[str]]:
    calls: Counter[str] = Counter()

    def hook(request: Any) -> None:
        http = request.http_request
        calls["list" if "comp=list" in http.url else http.method] += 1

    container = ContainerClient.from_connection_string(
        expand_connection_string(storage_connection_string), unique_name, raw_request_hook=hook
    )
    container.create_container()
    return BlobStateStore(container), calls


def test_read_all_downloads_only_the_documents_that_changed(counted: tuple[BlobStateStore, Counter[str]]) -> None:
    store, calls = counted
    for n in range(5):
        store.create(f"members/bank-{n}.json", {"member_id": f"bank-{n}", "n": n})
    store.create("other/x.json", {"x": 1})

    first = store.read_all("members/")
    assert [d.body["n"] for d in first] == [0, 1, 2, 3, 4] and all(d.etag.startswith('"') for d in first)
    calls.clear()
    again = store.read_all("members/")
    assert again == first and calls == Counter({"list": 1}), "nothing changed: one listing, no download"

    store.replace("members/bank-2.json", {"member_id": "bank-2", "n": 20}, first[2].etag)
    store.create("members/bank-5.json", {"member_id": "bank-5", "n": 5})
    calls.clear()
    changed = store.read_all("members/")
    assert [d.body["n"] for d in changed] == [0, 1, 20, 3, 4, 5]
    assert calls == Counter({"list": 1, "GET": 2}), "only the changed and the new document are downloaded"
    assert changed[2].etag == store.read("members/bank-2.json").etag  # type: ignore[union-attr]


def test_read_all_hands_out_copies_and_forgets_deleted_documents(counted: tuple[BlobStateStore, Counter[str]]) -> None:
    store, _ = counted
    store.create("members/a.json", {"member_id": "a", "keys": {"tls": {"version": "1"}}})
    store.create("members/b.json", {"member_id": "b"})
    [a, _b] = store.read_all("members/")
    a.body["keys"]["tls"]["version"] = "changed by a caller"
    assert store.read_all("members/")[0].body["keys"]["tls"]["version"] == "1"
    store.container.delete_blob("members/b.json")
    assert [d.path for d in store.read_all("members/")] == ["members/a.json"]
    assert store.read_all("nothing/") == []
