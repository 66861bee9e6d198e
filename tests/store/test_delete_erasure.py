"""Erased means erased on disk: no byte of a deleted session's text anywhere under the store root."""

from __future__ import annotations

import sys
from pathlib import Path

from helpers import message, started, write

from sessiondb.store import Store
from sessiondb.store.blobs import inline
from sessiondb.store.index import Index

sys.path.insert(0, str(Path(__file__).parent))
from test_delete import full_session  # noqa: E402

SHARED_BIG = "shared file-tier payload " * 2000


def hits(root: Path, marker: bytes) -> list[str]:
    """Every file under `root` (-wal and -shm included) holding `marker`."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and marker in p.read_bytes())


def test_no_byte_of_a_deleted_session_survives_anywhere_in_the_store_root(tmp_path):
    root = tmp_path / "store"
    with Store.open(root) as store:
        full_session(store, "a", marker="ZQXMARK")
        store.commit(write("a", message(SHARED_BIG), {"type": "session/error", "error": "ZQXMARK error"}))
        store.commit_many([write("a", message("ZQXMARK rejected", turn=99))])  # a dead letter of the session
        store.commit(started("b"))
        store.commit(write("b", message("shared between sessions"), message(SHARED_BIG)))
        with Index.open(root) as index:
            index.catch_up()
            index.rebuild()  # an older generation stays on disk for its readers
            index.catch_up()
        big = [m for m in store.message_records("a") if m["chars"] > 40_000][0]["content_blob"]
        store.blobs.quarantine(big)  # a scan found its file corrupt: the copy in quarantine/ must go too
        small = store.view("a")["messages"][0]["content_blob"]
        with store.engine.begin() as conn:
            bytes_id = conn.exec_driver_sql("SELECT bytes_id FROM blobs WHERE blob_id = ?", (small,)).scalar_one()
            inline.quarantine(conn, small, bytes_id, "2026-01-01T00:00:00Z")
        assert hits(root, b"ZQXMARK")  # the test can see the marker where it is
        store.delete_session("a")
        with Index.open(root) as index:
            index.catch_up()
            assert index.q('[:find ?t :where [?e :session/title ?t]]') == []
        assert hits(root, b"ZQXMARK") == []
        # what the other session shares is still there and readable
        contents = [m["content"] for m in store.message_records("b", include_content=True)]
        assert contents == ["shared between sessions", SHARED_BIG]
    assert hits(root, b"ZQXMARK") == []  # nor after close (a last checkpoint)


def test_the_marker_is_gone_from_the_wal_even_when_never_checkpointed_before(tmp_path):
    root = tmp_path / "store"
    with Store.open(root) as store:
        store.commit(started("a"))
        store.commit(write("a", *[message(f"WALMARK {i}") for i in range(50)]))
        assert "store.sqlite-wal" in hits(root, b"WALMARK")
        store.delete_session("a")
        assert hits(root, b"WALMARK") == []
        assert (root / "store.sqlite-wal").stat().st_size == 0
