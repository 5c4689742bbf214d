"""Many versions read at once (``shared.verification``): the chain's own checks, the signatures on
every core, with the verdicts, the versions and the errors of one version at a time."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from shared import verification
from shared.decisions import chain
from shared.verification import pools
from tests.support.chain_world import banks, genesis, next_version, sign

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "membership-chain.json").read_text(encoding="utf-8"))
VALID = VECTORS["valid"]


def published(versions: list[dict[str, Any]]) -> list[bytes]:
    return [chain.published_bytes(v) for v in versions]


def test_a_chain_read_at_once_verifies_as_one_version_at_a_time_does() -> None:
    """``verify_published`` checks version N's signatures while it reads N+1: same versions, same hashes."""
    trusted, error = verification.verify_published(VALID["chain"]["genesis"], published(VALID["chain"]["versions"]))
    assert error is None and [t.hash for t in trusted] == VALID["hashes"]
    node = chain.NodeTrust(VALID["chain"]["genesis"])
    assert node.accept_published(published(VALID["chain"]["versions"])[0])
    assert verification.accept_all(node, published(VALID["chain"]["versions"])[1:]) == len(VALID["hashes"]) - 1
    assert [t.hash for t in node.chain] == VALID["hashes"] and not node.refused


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=[c["case"] for c in VECTORS["invalid"]])
def test_a_chain_read_at_once_refuses_each_invalid_vector_where_one_at_a_time_does(case: dict[str, Any]) -> None:
    node = chain.NodeTrust(case["chain"]["genesis"])
    one_by_one = [v for v in published(case["chain"]["versions"]) if node.accept_published(v)]
    trusted, error = verification.verify_published(case["chain"]["genesis"], published(case["chain"]["versions"]))
    assert error is not None and str(error).startswith(case["why"]), str(error)
    assert [t.hash for t in trusted] == [t.hash for t in node.chain[: len(one_by_one)]]
    assert type(error) is type(node.errors[0])


def test_a_bad_signature_stops_a_chain_read_at_once_there_even_when_a_later_version_breaks_another_rule() -> None:
    versions = copy.deepcopy(VALID["chain"]["versions"])
    versions[2]["signatures"][0]["sig"] = "A" * 86  # version 2: a signature that does not verify
    versions[4]["previous"] = "0" * 64  # version 4: not chained
    trusted, error = verification.verify_published(VALID["chain"]["genesis"], published(versions))
    assert [t.version for t in trusted] == [0, 1]
    assert isinstance(error, chain.SignatureError) and error.version == 2


def long_chain(length: int) -> tuple[str, list[bytes]]:
    """A genesis of three banks, then ``length`` rotate versions (each a new endpoint), as published."""
    founders = banks("bank-a", "bank-b", "bank-c")
    versions = [genesis(founders)]
    trusted = chain.verify_genesis(chain.document_hash(versions[0]), versions[0])
    for n in range(length):
        bank = founders[("bank-a", "bank-b", "bank-c")[n % 3]]
        entry = {**bank.entry, "endpoint": f"https://st{n}.blob.core.windows.net/consortium-public"}
        document = sign(next_version(trusted, "rotate", bank.member_id, entry), *founders.values())
        trusted = chain.verify_next(trusted, document)
        versions.append(document)
    return chain.document_hash(versions[0]), published(versions)


def test_a_long_chain_is_checked_in_worker_processes_with_the_verdicts_of_this_one() -> None:
    pinned, raws = long_chain(verification.PROCESSES_FROM + 5)
    raws[40] = chain.published_bytes(
        {**chain.parse_published(raws[40]), "signatures": [
            {**s, "sig": "A" * 86} for s in chain.parse_published(raws[40])["signatures"]
        ]}
    )  # fmt: skip
    verification.forget()
    trusted, error = verification.verify_published(pinned, raws)
    assert [t.version for t in trusted] == list(range(40))
    assert isinstance(error, chain.SignatureError) and error.version == 40


def test_without_worker_processes_a_long_chain_is_checked_in_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures.process import BrokenProcessPool

    class Broken:
        def submit(self, *_args: Any) -> None:
            raise BrokenProcessPool("no processes here")

    monkeypatch.setattr(pools, "process_executor", lambda: Broken())
    pinned, raws = long_chain(verification.PROCESSES_FROM)
    trusted, error = verification.verify_published(pinned, raws)
    assert error is None and len(trusted) == len(raws)


def test_batches_no_worker_has_started_are_checked_by_the_reading_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers that never get to the batches: the reading thread takes every one back and checks it
    itself, with the same verdicts (a bad signature still stops the chain where it is)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    busy, release = ThreadPoolExecutor(max_workers=1), threading.Event()
    busy.submit(release.wait)  # the only worker is busy until the test ends
    monkeypatch.setattr(pools, "executor", lambda: busy)
    pinned, raws = long_chain(3 * verification.BATCH + 2)
    bad = chain.parse_published(raws[2 * verification.BATCH])
    bad["signatures"] = [{**s, "sig": "A" * 86} for s in bad["signatures"]]
    try:
        trusted, error = verification.verify_published(pinned, raws[:-1])
        node = chain.NodeTrust(pinned)
        assert all(node.accept_published(raw) for raw in raws[:-1])
        assert error is None and [t.hash for t in trusted] == [t.hash for t in node.chain]
        trusted, error = verification.verify_published(
            pinned, [*raws[: 2 * verification.BATCH], chain.published_bytes(bad)]
        )
        assert [t.version for t in trusted] == list(range(2 * verification.BATCH))
        assert isinstance(error, chain.SignatureError) and error.version == 2 * verification.BATCH
    finally:
        release.set()
        busy.shutdown()


def test_signatures_checked_on_several_cores_give_the_verdicts_of_one_core_in_the_same_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    founders = banks(*(f"bank-{i:02d}" for i in range(12)))
    document = genesis(founders)
    signatures = [dict(s) for s in document["signatures"]]
    signatures[3]["sig"] = signatures[4]["sig"]  # bank-03's slot carries bank-04's signature
    signatures[7]["sig"] = "A" * 86  # well-formed, not a signature
    signatures.append(dict(signatures[0]))  # bank-00 listed twice
    forged = {**document, "signatures": signatures}  # as a forger publishes it, unmerged
    typed = chain.parse(forged)
    digest = bytes.fromhex(chain.document_hash(forged))
    results = {}
    for mode, threshold in (("one core", 10**9), ("several", 2)):
        monkeypatch.setattr(pools, "PARALLEL_FROM", threshold)
        monkeypatch.setattr("os.cpu_count", lambda: 4)
        results[mode] = chain.signature_result(None, typed, digest, check=verification.check_on_cores)
    assert results["one core"] == results["several"]
    assert [(m, why) for m, _kid, why in results["several"].invalid] == [
        ("bank-03", "signature does not verify"),
        ("bank-07", "signature does not verify"),
        ("bank-00", "listed twice"),
    ]
    assert not results["several"].sufficient


def test_a_node_takes_from_a_reader_of_many_versions_only_those_that_follow_its_head() -> None:
    trusted = chain.verify_chain(VALID["chain"]["genesis"], VALID["chain"]["versions"])
    node = chain.NodeTrust(VALID["chain"]["genesis"])
    with pytest.raises(ValueError, match="does not follow"):
        node.extend(trusted[1:], None)
    assert node.extend(trusted[:2], None) == 2 and node.head == trusted[1]
    with pytest.raises(ValueError, match="does not follow"):
        node.extend(trusted[1:], None)
    assert node.extend(trusted[2:], None) == len(trusted) - 2 and not node.refused
