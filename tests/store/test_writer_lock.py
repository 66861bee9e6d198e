"""One writer per store root: `Store.commit_many` holds the writer lock, or refuses to write.

A real second process holds `<root>/writer.lock` (as a fleet's writer does); no mocks.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from sessiondb.store import Store, WriterLockHeldError
from sessiondb.store.writer_lock import WriterLock, held_elsewhere, holder_pid, is_locked

HOLDER = """
import sys, time
from sessiondb.store.writer_lock import WriterLock
assert WriterLock(sys.argv[1]).try_acquire()
print("held", flush=True)
sys.stdin.read()  # hold it until the test closes our stdin
"""


def start(session: str) -> dict:
    return {"write_id": f"{session}-start", "session": session, "events": [{"type": "session/started"}]}


def message(session: str, n: int) -> dict:
    return {"write_id": f"{session}-{n}", "session": session,
            "events": [{"type": "message/added", "role": "user", "content": f"m{n}"}]}


@pytest.fixture
def holder(tmp_path):
    """Another process that holds the writer lock of tmp_path/store until the test ends."""
    root = tmp_path / "store"
    root.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"held\n"
    yield proc
    if proc.poll() is None:
        proc.stdin.close()
        proc.wait(30)


def test_a_commit_takes_the_lock_for_its_length_and_gives_it_back(tmp_path):
    with Store.open(tmp_path / "store") as store:
        assert store.commit(start("a"))["status"] == "committed"
        assert not is_locked(tmp_path / "store" / "writer.lock")  # given back: a fleet's writer can start
        assert holder_pid(tmp_path / "store") is not None


def test_while_another_process_holds_the_lock_writes_are_refused_and_reads_work(tmp_path, holder):
    root = tmp_path / "store"
    with Store.open(root) as store:
        with pytest.raises(WriterLockHeldError) as refused:
            store.commit(start("b"))
        assert refused.value.holder_pid == holder.pid
        assert f"pid {holder.pid}" in str(refused.value) and str(root) in str(refused.value)
        assert held_elsewhere(root)
        with pytest.raises(WriterLockHeldError):
            store.commit_many([start("b"), message("b", 1)])
        with pytest.raises(WriterLockHeldError):
            store.write_alias("bee", "b")
        holder.stdin.close()  # the holder exits: the kernel drops its lock
        holder.wait(30)
        assert store.commit_many([start("b"), message("b", 1)])[1]["status"] == "committed"
        assert [m["content"] for m in store.message_records("b", include_content=True)] == ["m1"]


def test_reads_keep_working_while_another_process_holds_the_lock(tmp_path):
    root = tmp_path / "store"
    with Store.open(root) as store:
        store.commit_many([start("c"), message("c", 1)])
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"held\n"
        with Store.open(root) as store:
            assert store.view("c")["session"]["session_id"] == "c"
            assert [m["content"] for m in store.message_records("c", include_content=True)] == ["m1"]
    finally:
        proc.stdin.close()
        proc.wait(30)


def test_a_process_that_holds_the_lock_commits_through_any_store_object(tmp_path):
    root = tmp_path / "store"
    lock = WriterLock(root)
    assert lock.try_acquire()
    try:
        with Store.open(root) as store:  # as the fleet's writer does: lock first, then its Store
            assert store.commit(start("d"))["status"] == "committed"
        assert lock.held and is_locked(root / "writer.lock") and not held_elsewhere(root)
    finally:
        lock.release()


def test_after_another_process_held_the_lock_a_commit_names_this_process_in_it(tmp_path, holder):
    """The pid is rewritten only when it changes (a truncate per commit cost more than the
    commit); when another process held the lock before, its pid must not stay behind."""
    import os

    root = tmp_path / "store"
    holder.stdin.close()
    holder.wait(30)
    assert holder_pid(root) == holder.pid  # what the last holder left
    with Store.open(root) as store:
        store.commit(start("c"))
        assert holder_pid(root) == os.getpid()
        store.commit(message("c", 1))  # taken again: the file already names us
        assert (root / "writer.lock").read_text() == f"{os.getpid()}\n"
        assert len(store.message_records("c")) == 1
