"""The blob I/O thread: a group's blob files are written while its rows are inserted, made
durable together, and a failure fails only the batch it belongs to."""

from __future__ import annotations

import os

import pytest

from sessiondb.store import Store
from sessiondb.store.blobs import BlobStore
from sessiondb.store.blobs.canonical import blob_id
from sessiondb.store.blobs.io import BlobWriter

LARGE = 40_000  # above the default inline threshold: a blob file


def writes(prefix: str, n: int) -> list[dict]:
    return [{"write_id": f"{prefix}{i}", "session": "s",
             "events": [{"type": "message/added", "role": "user", "content": f"{prefix}{i} " + "x" * LARGE}]}
            for i in range(n)]


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "store")
    s.commit({"write_id": "start", "session": "s", "events": [{"type": "session/started"}]})
    yield s
    s.close()


def contents(store: Store) -> list[str]:
    return [r["content"].split(" ")[0] for r in store.message_records("s", include_content=True)]


def temp_files(store: Store) -> list[str]:
    return [f for _, _, files in os.walk(store.blobs.dir) for f in files if ".tmp-" in f]


def test_a_group_of_large_payloads_commits_whole_as_files(store):
    receipts = store.commit_many(writes("a", 40))
    assert {r["status"] for r in receipts} == {"committed"}
    store.commit_many(writes("b", 3))
    assert contents(store) == [f"a{i}" for i in range(40)] + ["b0", "b1", "b2"]
    assert len(list(store.blobs.iter_files())) == 43 and not temp_files(store)


def test_a_write_whose_file_cannot_be_made_is_rejected_alone_and_nothing_is_half_written(store):
    [bad, good] = writes("a", 2)
    content = bad["events"][0]["content"].encode()
    blocker = store.blobs.dir / blob_id(content)[7:9]
    blocker.write_bytes(b"not a directory")  # where the blob's directory must go
    try:
        receipts = store.commit_many([bad, good])
    finally:
        blocker.unlink()
    assert [r["status"] for r in receipts] == ["rejected", "committed"]
    assert receipts[0]["error"]["type"] == "write/failed"
    assert contents(store) == ["a1"] and not temp_files(store)
    assert store.commit(bad)["status"] == "committed"  # the same write goes through once it can
    assert contents(store) == ["a1", "a0"]


def _payloads(n: int) -> dict[str, bytes]:
    data = [f"blob {i} ".encode() * 50 for i in range(n)]
    return {blob_id(d): d for d in data}


def test_more_staged_files_than_descriptors_allow_are_published_early_and_all_reported(tmp_path):
    blobs = BlobStore(tmp_path / "store")
    writer = BlobWriter(blobs)
    many = _payloads(BlobWriter.MAX_OPEN + 10)
    writer.stage(1, [(k, v, True) for k, v in many.items()])
    assert len(writer.staged) < BlobWriter.MAX_OPEN  # a lot went out before the batch finished
    assert sorted(writer.finish(1)) == sorted(many)
    for k, v in many.items():
        assert blobs.get(k) == v
    writer.close()
    blobs.close()


def test_a_failed_publish_fails_its_batch_only_and_the_writer_goes_on(tmp_path):
    blobs = BlobStore(tmp_path / "store")
    writer = BlobWriter(blobs)
    doomed, fine = _payloads(1), _payloads(5)
    (bid, data), = doomed.items()
    writer.stage(1, [(bid, data, True)])
    os.rmdir(os.path.dirname(blobs.path(bid)))  # its directory goes away: linkat fails (ENOENT)
    with pytest.raises(FileNotFoundError):
        writer.finish(1)
    assert not blobs.path(bid).exists()
    writer.stage(2, [(k, v, True) for k, v in fine.items() if k != bid])
    assert sorted(writer.finish(2)) == sorted(k for k in fine if k != bid)
    writer.close()
    blobs.close()


def test_put_many_reuses_a_good_file_and_rewrites_none(tmp_path):
    blobs = BlobStore(tmp_path / "store")
    payloads = _payloads(3)
    assert sorted(blobs.put_many(payloads)) == sorted(payloads)
    assert blobs.put_many(payloads) == []
    blobs.close()
