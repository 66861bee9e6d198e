"""The writer lock of a PostgreSQL store (store/advisory_lock.py), against the suite's real server.

One writer per database, whatever machine it runs on: two writer processes on different store
roots share one database (as two machines would); the standby takes over when the holder is
killed with SIGKILL, and nothing acknowledged is lost or applied twice. A writer whose lock
session is cut (`pg_terminate_backend`) commits nothing more (fencing, inside each group's
transaction), and readers never need the lock.
"""

from __future__ import annotations

import collections
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from sessiondb.store import Settings, Store, WriterLockHeldError
from sessiondb.store.advisory_lock import KEY
from sessiondb.store.errors import WriterFencedError

CHILD = Path(__file__).with_name("failover_writer.py")
SECOND_WRITER = """
import sys
from sessiondb.store import Settings, Store
root, url = sys.argv[1:3]
with Store.open(root, Settings.from_env(root=root, database_url=url)) as store:
    store.commit({"write_id": "w1", "session": "s",
                  "events": [{"type": "message/added", "role": "user", "content": "the new writer"}]})
"""


def admin(url: str) -> psycopg.Connection:
    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database,
                           autocommit=True)


def lock_holders(url: str) -> list[int]:
    """Backend pids holding the store's writer lock."""
    with admin(url) as conn:
        return [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s AND objid = %s"
            " AND objsubid = 2", KEY)]


def cut_lock_session(url: str) -> None:
    [pid] = lock_holders(url)
    with admin(url) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]


class Writer:
    """A failover_writer.py child; its output lines in a queue, its acknowledged write ids in `acked`."""

    def __init__(self, root: Path, url: str, name: str, mode: str = "standby") -> None:
        self.proc = subprocess.Popen([sys.executable, str(CHILD), str(root), url, name, mode],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.acked: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if line.startswith("ack ") and line.endswith("\n"):
                self.acked.append(line.split()[1])
            self.lines.put(line.strip())
        self.lines.put("<eof>")

    def wait_for(self, word: str, timeout: float = 60.0) -> None:
        """Until the child prints a line starting with `word` (acks are skipped over)."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {word!r} within {timeout}s") from None
            if line.startswith(word):
                return
            if line == "<eof>":
                raise AssertionError(f"the child exited ({self.proc.wait()}) before {word!r}: "
                                     f"{self.proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]

    def acks_beyond(self, count: int, timeout: float = 60.0) -> None:
        deadline = threading.Event()
        for _ in range(int(timeout * 20)):
            if len(self.acked) > count:
                return
            deadline.wait(0.05)
        raise AssertionError(f"fewer than {count} acknowledged writes within {timeout}s")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.reader.join(30)


def machine(tmp_path: Path, name: str) -> Path:
    """The store root of one simulated machine: its own directory, the blob directory a shared
    mount (payloads above the inline threshold are files every writer and reader must reach)."""
    shared = tmp_path / "shared-blobs"
    shared.mkdir(mode=0o700, exist_ok=True)
    root = tmp_path / name
    root.mkdir(mode=0o700)
    (root / "blobs").symlink_to(shared)
    return root


def stored_contents(root: Path, url: str) -> list[str]:
    with Store.open(root, Settings.from_env(root=str(root), database_url=url), readonly=True) as store:
        return [m["content"].split()[0] for m in store.message_records("fo", include_content=True,
                                                                         all_branches=True)]


def test_the_standby_on_another_root_takes_over_after_kill_9_and_nothing_is_lost_or_doubled(
        tmp_path, pg_database_url):
    url = pg_database_url
    first = Writer(machine(tmp_path, "machine-a"), url, "a")
    second = None
    try:
        first.wait_for("writer")
        second = Writer(machine(tmp_path, "machine-b"), url, "b")
        second.wait_for("waiting")
        first.acks_beyond(200)
        assert lock_holders(url) and len(lock_holders(url)) == 1
        first.kill()  # under load: mid-group, most likely
        second.wait_for("writer", timeout=30)  # its session's lock was dropped with the dead one's socket
        before = len(second.acked)
        second.acks_beyond(before + 100)
    finally:
        first.kill()
        if second is not None:
            second.kill()
    contents = stored_contents(tmp_path / "machine-b", url)
    doubled = [c for c, n in collections.Counter(contents).items() if n > 1]
    assert doubled == []  # nothing applied twice (re-sent write ids included)
    acked = set(first.acked) | set(second.acked)
    assert acked - set(contents) == set()  # nothing acknowledged lost
    assert {c.split("-")[0] for c in contents} == {"a", "b"}  # both wrote, one after the other


def test_a_writer_whose_lock_session_is_cut_commits_nothing_more(tmp_path, pg_database_url):
    url = pg_database_url
    writer = Writer(tmp_path / "a", url, "a", mode="exit")
    try:
        writer.wait_for("writer")
        writer.acks_beyond(100)
        cut_lock_session(url)
        writer.wait_for("fenced", timeout=60)
        assert writer.proc.wait(60) == 3
    finally:
        writer.kill()
    contents = stored_contents(tmp_path / "a", url)
    # every stored write was acknowledged: the group fenced (and any later one) committed nothing
    assert set(contents) == set(writer.acked)
    assert lock_holders(url) == []


def test_in_one_process_a_cut_session_fences_the_next_commit_and_another_writer_takes_over(
        tmp_path, pg_database_url):
    url = pg_database_url
    first = Store.open(tmp_path / "a", Settings.from_env(root=str(tmp_path / "a"), database_url=url))
    first.hold_writer_lock()
    first.commit({"write_id": "w0", "session": "s", "events": [{"type": "session/started"}]})
    cut_lock_session(url)
    with pytest.raises(WriterFencedError, match="not the writer any more"):
        first.commit({"write_id": "w1", "session": "s", "events": [{"type": "message/added", "role": "user",
                                                                     "content": "after the cut"}]})
    # another writer (another root, same database) takes the lock; the fenced one may not write
    with admin(url) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", KEY)  # a third party holds it now
        with pytest.raises(WriterLockHeldError):
            first.commit({"write_id": "w2", "session": "s", "events": [{"type": "message/added", "role": "user",
                                                                         "content": "while held"}]})
        # reads never need the lock
        assert first.view("s")["messages"] == []
    first.close()
    with Store.open(tmp_path / "b", Settings.from_env(root=str(tmp_path / "b"), database_url=url)) as second:
        second.commit({"write_id": "w3", "session": "s", "events": [{"type": "message/added", "role": "user",
                                                                      "content": "the new writer"}]})
        assert [m["content"] for m in second.message_records("s", include_content=True)] == ["the new writer"]


def test_a_commit_while_another_process_holds_the_lock_is_refused_naming_it(tmp_path, pg_database_url):
    url = pg_database_url
    holder = Writer(machine(tmp_path, "a"), url, "a")
    try:
        holder.wait_for("writer")
        holder.acks_beyond(0)
        root = machine(tmp_path, "b")
        with Store.open(root, Settings.from_env(root=str(root), database_url=url)) as other:
            with pytest.raises(WriterLockHeldError, match=f"pid {holder.proc.pid}"):
                other.commit({"write_id": "x", "session": "fo", "events": [{"type": "session/started"}]})
            assert "x" not in stored_contents(root, url)
    finally:
        holder.kill()


def test_a_writer_that_lost_its_lock_to_another_is_fenced_by_the_generation(tmp_path, pg_database_url):
    url = pg_database_url
    first = Store.open(tmp_path / "a", Settings.from_env(root=str(tmp_path / "a"), database_url=url))
    first.hold_writer_lock()
    first.commit({"write_id": "w0", "session": "s", "events": [{"type": "session/started"}]})
    cut_lock_session(url)
    # another process (in this one, the lock is still ours as far as this process knows)
    subprocess.run([sys.executable, "-c", SECOND_WRITER, str(tmp_path / "b"), url], check=True, timeout=120)
    with pytest.raises(WriterFencedError, match="another writer took over"):
        first.commit({"write_id": "w2", "session": "s", "events": [{"type": "message/added", "role": "user",
                                                                     "content": "the old writer"}]})
    assert [m["content"] for m in first.message_records("s", include_content=True)] == ["the new writer"]
    first.close()
