"""The blob I/O process: large groups' blobs are written by a child process while the writer plans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from sessiondb.store import Settings, Store
from sessiondb.store.blobs import BlobStore
from sessiondb.store.blobs.canonical import blob_id
from sessiondb.store.blobs.io import BlobIOError, BlobWriter


def writes(prefix: str, n: int) -> list[dict]:
    return [{"write_id": f"{prefix}{i}", "session": "s",
             "events": [{"type": "message/added", "role": "user", "content": f"{prefix}{i} " + "x" * 3000}]}
            for i in range(n)]


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "store", Settings(root=str(tmp_path / "store"), blob_io_process_min=10))
    s.commit({"write_id": "start", "session": "s", "events": [{"type": "session/started"}]})
    yield s
    s.close()


def contents(store: Store) -> list[str]:
    return [r["content"].split(" ")[0] for r in store.message_records("s", include_content=True)]


def temp_files(store: Store) -> list[str]:
    return [f for _, _, files in os.walk(store.blobs.dir) for f in files if ".tmp-" in f]


def test_a_large_group_goes_through_the_blob_io_process_and_commits_whole(store):
    receipts = store.commit_many(writes("a", 300))  # more than one publish's worth of files
    assert {r["status"] for r in receipts} == {"committed"}
    children = [store.blobs._io[slot].proc for slot in (0, 1)]  # two processes (the default) took turns
    assert all(child.poll() is None for child in children)  # they stay up for the next large group
    store.commit_many(writes("b", 20))
    assert [store.blobs._io[slot].proc for slot in (0, 1)] == children
    store.commit_many(writes("c", 3))  # a small group: the I/O thread
    assert contents(store) == [f"a{i}" for i in range(300)] + [f"b{i}" for i in range(20)] + ["c0", "c1", "c2"]
    assert not temp_files(store)


def test_a_killed_blob_io_process_fails_no_write_and_is_replaced(store):
    store.commit_many(writes("a", 10))
    first = store.blobs._io[0].proc
    first.kill()
    first.wait()
    receipts = store.commit_many(writes("b", 50))  # the group falls back to one write at a time
    assert {r["status"] for r in receipts} == {"committed"}
    store.commit_many(writes("c", 10))
    assert store.blobs._io[0].proc.pid != first.pid
    assert contents(store) == [f"a{i}" for i in range(10)] + [f"b{i}" for i in range(50)] + [
        f"c{i}" for i in range(10)]


def test_a_batch_whose_process_died_reports_it(store):
    batch = store.blobs.batch(processes=2)
    store.blobs._io[0].proc.kill()  # the other process gets every second chunk and is fine
    store.blobs._io[0].proc.wait()
    for i in range(200):
        data = f"lost {i}".encode()
        batch.add(blob_id(data), data)
    with pytest.raises(BlobIOError, match="blob I/O process"):
        batch.durable().result()
    receipts = store.commit_many(writes("after", 20))  # a new process replaces it; the other is in step
    assert {r["status"] for r in receipts} == {"committed"}


def test_the_blob_io_process_ends_with_its_writer(tmp_path):
    script = (
        "import sys; from sessiondb.store import Settings, Store\n"
        "s = Store.open(sys.argv[1], Settings(root=sys.argv[1], blob_io_process_min=1))\n"
        "s.commit({'write_id': 'w', 'session': 's', 'events': [{'type': 'session/started'}]})\n"
        "print(s.blobs._io[0].proc.pid, s.blobs._io[1].proc.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "store")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    children = [int(pid) for pid in writer.stdout.readline().split()]  # type: ignore[union-attr]
    assert len(children) == 2 and all(_alive(child) for child in children)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    deadline = time.monotonic() + 60
    while any(_alive(child) for child in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(child) for child in children)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def _payloads(n: int) -> dict[str, bytes]:
    data = [f"blob {i} ".encode() * 50 for i in range(n)]
    return {blob_id(d): d for d in data}


def test_background_publishing_overlaps_staging_and_finish_reports_each_batch(tmp_path):
    blobs = BlobStore(tmp_path / "store")
    writer = BlobWriter(blobs, background=True)
    first, second = _payloads(300), _payloads(600)
    second = {k: v for k, v in second.items() if k not in first}
    writer.stage(1, [(k, v, True) for k, v in first.items()])
    writer.publish_soon()  # lot 1 is published on the publisher thread ...
    writer.stage(2, [(k, v, True) for k, v in second.items()])  # ... while batch 2 is staged
    assert sorted(writer.finish(1)) == sorted(first)
    assert sorted(writer.finish(2)) == sorted(second)
    assert writer.publishing is None and writer.staged == []
    for k, v in {**first, **second}.items():
        assert blobs.get(k) == v
    writer.close()
    blobs.close()


def test_a_failed_background_publish_fails_its_batch_only_and_the_writer_goes_on(tmp_path):
    blobs = BlobStore(tmp_path / "store")
    writer = BlobWriter(blobs, background=True)
    doomed, fine = _payloads(1), _payloads(5)
    (bid, data), = doomed.items()
    writer.stage(1, [(bid, data, True)])
    os.rmdir(os.path.dirname(blobs.path(bid)))  # its directory goes away: linkat fails (ENOENT)
    writer.publish_soon()
    with pytest.raises(FileNotFoundError):
        writer.finish(1)
    assert not blobs.path(bid).exists()
    writer.stage(2, [(k, v, True) for k, v in fine.items() if k != bid])
    assert sorted(writer.finish(2)) == sorted(k for k in fine if k != bid)
    writer.close()
    blobs.close()
