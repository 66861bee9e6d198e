"""The inline tier: small payloads in store.sqlite, large ones as files; one identity, one copy.

Real store roots throughout; damage is done for real, through SQLite and in the database
file's pages on disk."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from helpers import head, message, started, write
from sqlalchemy import text

from sessiondb.ops.demo import agent_session, fork_and_invoke
from sessiondb.store import CorruptBlobError, Store
from sessiondb.store.blobs.canonical import blob_id
from sessiondb.store.blobs.pack import pack_blobs
from sessiondb.store.integrity import check_consistency, scan_blobs
from sessiondb.store.settings import Settings

FIXTURES = Path(__file__).parent.parent / "fixtures"


def open_store(root: Path, **settings: object) -> Store:
    return Store.open(root, Settings.from_env(root=str(root), **settings))


def rows(store: Store, query: str, **params: object) -> list:
    with store.engine.connect() as conn, conn.begin():
        return [tuple(r) for r in conn.execute(text(query), params)]


def tier(store: Store, blob: str) -> str:
    """'inline', 'file', 'both' (an inline copy and a file) or 'none', as stored."""
    [(bytes_id,)] = rows(store, "SELECT bytes_id FROM blobs WHERE blob_id = :b", b=blob)
    inline = bytes_id is not None and rows(store, "SELECT 1 FROM blob_bytes WHERE bytes_id = :i", i=bytes_id)
    on_disk = store.blobs.path(blob).exists()
    return {(True, False): "inline", (False, True): "file", (True, True): "both"}.get((bool(inline), on_disk), "none")


def corrupt_inline(store: Store, blob: str) -> None:
    """Flip one byte of an inline payload through SQLite."""
    with store.engine.connect() as conn:
        conn.info["begin"] = "BEGIN IMMEDIATE"
        with conn.begin():
            bytes_id = conn.execute(text("SELECT bytes_id FROM blobs WHERE blob_id = :b"), {"b": blob}).scalar_one()
            data = conn.execute(text("SELECT data FROM blob_bytes WHERE bytes_id = :i"), {"i": bytes_id}).scalar_one()
            conn.execute(text("UPDATE blob_bytes SET data = :d WHERE bytes_id = :i"),
                         {"d": bytes([data[0] ^ 1]) + data[1:], "i": bytes_id})


def content_blob(store: Store, session: str, index: int = -1) -> str:
    return store.message_records(session)[index]["content_blob"]


# (`open_store` in a test's arguments is the fixture: that test runs on either backend)

# -- the threshold ------------------------------------------------------------------------------

def test_a_payload_at_the_threshold_is_inline_one_byte_more_is_a_file(tmp_path, open_store):
    with open_store(tmp_path / "s", inline_max_bytes=1000) as store:
        payloads = {size: "x" * (size - 1) + str(size % 10) for size in (999, 1000, 1001)}
        store.commit(write("s", {"type": "session/started"}, *[message(p) for p in payloads.values()]))
        records = store.message_records("s", include_content=True)
        assert [r["content"] for r in records] == list(payloads.values())
        for record, (size, payload) in zip(records, payloads.items(), strict=True):
            assert record["content_blob"] == blob_id(payload.encode())  # the same identity in either tier
            assert store.blob(record["content_blob"]) == payload.encode()
            assert tier(store, record["content_blob"]) == ("inline" if size <= 1000 else "file"), size


def test_a_threshold_of_zero_stores_every_payload_as_a_file(tmp_path, open_store):
    with open_store(tmp_path / "s", inline_max_bytes=0) as store:
        store.commit(write("s", {"type": "session/started"}, message("tiny")))
        assert tier(store, content_blob(store, "s")) == "file"
        assert rows(store, "SELECT count(*) FROM blob_bytes") == [(0,)]


def test_a_head_state_stored_inline_gives_the_view_of_the_head(tmp_path, open_store):
    with open_store(tmp_path / "s") as store:
        store.commit(write("s", {"type": "session/started"}, message("m1"), head("h1", None)))
        store.commit(write("s", message("m2"), head("h2", "h1")))
        state = store.history_view("s")["heads"][0]["state_blob"]
        assert tier(store, state) == "inline"
        assert [m["content"] for m in store.message_records("s", include_content=True)] == ["m1", "m2"]
        assert [m["message_id"] for m in store.view("s#h1")["messages"]] == [1]


# -- dedupe across tiers -------------------------------------------------------------------------

def test_content_stored_as_a_file_is_not_stored_inline_again(tmp_path, open_store):
    root = tmp_path / "s"
    with open_store(root, inline_max_bytes=0) as store:
        store.commit(write("s", {"type": "session/started"}, message("the same words")))
        blob = content_blob(store, "s")
    with open_store(root) as store:  # now the same content is inline-sized
        store.commit(write("s", message("the same words")))
        assert content_blob(store, "s") == blob and tier(store, blob) == "file"
        assert rows(store, "SELECT count(*) FROM blob_bytes") == [(0,)]
        assert rows(store, "SELECT count(*) FROM blobs WHERE blob_id = :b", b=blob) == [(1,)]
        assert [m["content"] for m in store.message_records("s", include_content=True)] == ["the same words"] * 2


def test_content_stored_inline_gets_no_file_when_it_is_written_again_above_the_threshold(tmp_path, open_store):
    root = tmp_path / "s"
    with open_store(root) as store:
        store.commit(write("s", {"type": "session/started"}, message("the same words")))
        blob = content_blob(store, "s")
    with open_store(root, inline_max_bytes=0) as store:  # now every payload is file-sized
        store.commit(write("s", message("the same words")))
        assert tier(store, blob) == "inline" and not list(store.blobs.iter_files())
        assert rows(store, "SELECT count(*) FROM blob_bytes") == [(1,)]


def test_the_same_content_twice_in_one_group_is_stored_once(tmp_path, open_store):
    with open_store(tmp_path / "s") as store:
        store.commit(started("s"))
        store.commit_many([write("s", message("twice")), write("s", message("twice"))])
        assert rows(store, "SELECT count(*) FROM blob_bytes") == [(1,)]


# -- quarantine and self-heal --------------------------------------------------------------------

def test_corrupt_inline_bytes_are_quarantined_and_a_rewrite_of_the_same_content_heals_them(tmp_path):
    with open_store(tmp_path / "s") as store:
        store.commit(write("s", {"type": "session/started"}, message("precious words")))
        blob = content_blob(store, "s")
        corrupt_inline(store, blob)
        with pytest.raises(CorruptBlobError, match="hash mismatch"):
            store.blob(blob)
        with pytest.raises(CorruptBlobError, match="hash mismatch"):  # the joined read checks each row too
            store.message_records("s", include_content=True)

        report = scan_blobs(store, full=True)
        [finding] = report.findings
        assert finding.type == "blob/hash-mismatch" and finding.data["blob_id"] == blob
        assert finding.data["tier"] == "inline" and report.counts["quarantined"] == 1
        assert rows(store, "SELECT status, bytes_id FROM blobs WHERE blob_id = :b", b=blob) == [("quarantined", None)]
        [(kept,)] = rows(store, "SELECT data FROM blob_quarantine WHERE blob_id = :b", b=blob)
        assert kept != b"precious words" and len(kept) == len(b"precious words")  # moved, never deleted
        assert [f.type for f in scan_blobs(store, full=True).findings] == ["blob/quarantined"]
        with pytest.raises(CorruptBlobError):
            store.message_records("s", include_content=True)

        store.commit(write("s", message("precious words")))  # the same content again
        assert tier(store, blob) == "inline"
        assert [m["content"] for m in store.message_records("s", include_content=True)] == ["precious words"] * 2
        assert scan_blobs(store, full=True).ok and check_consistency(store).ok


def test_a_byte_flipped_in_the_database_file_on_disk_is_found_and_quarantined(tmp_path):
    root = tmp_path / "s"
    secret = "a payload whose bytes sit in a page of store.sqlite " * 20
    with open_store(root) as store:
        store.commit(write("s", {"type": "session/started"}, message(secret)))
        blob = content_blob(store, "s")
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db = root / "store.sqlite"
    raw = bytearray(db.read_bytes())
    at = raw.find(secret.encode())
    assert at > 0 and raw.find(secret.encode(), at + 1) == -1  # one copy, in a page of the file
    raw[at + 100] ^= 0x20
    db.write_bytes(bytes(raw))

    with open_store(root) as store:
        report = scan_blobs(store, full=True)
        assert [(f.type, f.data["blob_id"]) for f in report.findings] == [("blob/hash-mismatch", blob)]
        assert report.counts["sqlite_integrity_check"] == 1  # SQLite's own check found no damage: the blob scan did
        store.commit(write("s", message(secret)))
        assert store.blob(blob) == secret.encode()
        assert scan_blobs(store, full=True).ok


def test_a_dry_run_reports_corrupt_inline_bytes_and_leaves_them(tmp_path):
    with open_store(tmp_path / "s") as store:
        store.commit(write("s", {"type": "session/started"}, message("precious words")))
        blob = content_blob(store, "s")
        corrupt_inline(store, blob)
        report = scan_blobs(store, full=True, repair=False)
        assert [f.type for f in report.findings] == ["blob/hash-mismatch"]
        assert rows(store, "SELECT status FROM blobs WHERE blob_id = :b", b=blob) == [("ok",)]


# -- scans and checks on a mixed store -----------------------------------------------------------

@pytest.fixture
def mixed(tmp_path):
    """Demo traffic with a 30-byte threshold: some payloads inline, some files."""
    with open_store(tmp_path / "mixed", inline_max_bytes=30) as store:
        for w in [*agent_session("a", 3), *fork_and_invoke("a", "f", "c")]:
            store.commit(w)
        yield store


def test_a_mixed_store_scans_and_checks_clean_and_every_blob_is_hashed(mixed):
    [(total,)] = rows(mixed, "SELECT count(*) FROM blobs")
    [(inline,)] = rows(mixed, "SELECT count(*) FROM blobs WHERE bytes_id IS NOT NULL")
    assert 0 < inline < total
    report = scan_blobs(mixed, full=True)
    assert report.ok and report.findings == []
    assert report.counts["blobs_hashed"] == total
    assert report.counts["inline_rows"] == inline and report.counts["files_listed"] == total - inline
    assert check_consistency(mixed).ok


def test_partitions_and_progress_cover_the_inline_blobs_too(mixed):
    [(total,)] = rows(mixed, "SELECT count(*) FROM blobs")
    seen: list[tuple[int, int]] = []
    halves = [scan_blobs(mixed, full=True, partition=f"{i}/2", progress=lambda _p, d, t: seen.append((d, t)))
              for i in range(2)]
    assert sum(r.counts["blobs_hashed"] for r in halves) == total
    assert seen and seen[-1][0] == seen[-1][1]


def test_an_interrupted_scan_resumes_over_inline_blobs(mixed):
    [(total,)] = rows(mixed, "SELECT count(*) FROM blobs")

    def stop(_phase, done, _total):
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan_blobs(mixed, full=True, progress=stop, checkpoint_seconds=0)
    resumed = scan_blobs(mixed, full=True)
    assert resumed.counts["resumed"] == 1 and resumed.counts["planned_done"] == total and resumed.ok


def test_an_inline_row_whose_bytes_are_gone_is_reported_by_check_and_scan(mixed):
    [(victim, bytes_id)] = rows(mixed, "SELECT blob_id, bytes_id FROM blobs WHERE bytes_id IS NOT NULL"
                                       " ORDER BY blob_id LIMIT 1")
    with mixed.engine.connect() as conn, conn.begin():
        conn.execute(text("DELETE FROM blob_bytes WHERE bytes_id = :i"), {"i": bytes_id})
    check = check_consistency(mixed)
    assert [(f.type, f.data["target_table"]) for f in check.findings if f.data.get("target") == str(bytes_id)] == [
        ("ref/dangling", "blob_bytes")]
    scan = scan_blobs(mixed, full=True)
    assert [(f.type, f.data["blob_id"]) for f in scan.findings] == [("blob/missing", victim)]


# -- pack ----------------------------------------------------------------------------------------

def test_pack_moves_small_files_inline_and_keeps_large_ones(tmp_path):
    root = tmp_path / "s"
    with open_store(root, inline_max_bytes=0) as store:
        store.commit(write("s", {"type": "session/started"}, message("small"), message("L" * 5000)))
        before = store.message_records("s", include_content=True)
    with open_store(root, inline_max_bytes=1000) as store:
        counts = pack_blobs(store)
        assert counts["packed"] == counts["files_removed"] == 1 and counts["kept_large"] == 1
        small, large = (r["content_blob"] for r in before)
        assert tier(store, small) == "inline" and tier(store, large) == "file"
        assert store.message_records("s", include_content=True) == before
        assert scan_blobs(store, full=True).ok and check_consistency(store).ok
        assert pack_blobs(store)["packed"] == 0  # nothing left to do


def test_pack_after_a_crash_between_commit_and_unlink_removes_the_leftover_file(tmp_path):
    root = tmp_path / "s"
    with open_store(root, inline_max_bytes=0) as store:
        store.commit(write("s", {"type": "session/started"}, message("small")))
        blob = content_blob(store, "s")
        path = store.blobs.path(blob)
        kept = path.read_bytes()
    with open_store(root) as store:
        pack_blobs(store)
        path.write_bytes(kept)  # as if the pack had died after its commit, before the unlink
        assert tier(store, blob) == "both" and store.blob(blob) == b"small"
        assert scan_blobs(store, full=True, grace_seconds=0).ok  # not an orphan: its row exists
        assert pack_blobs(store)["files_removed"] == 1 and tier(store, blob) == "inline"


def test_pack_leaves_a_corrupt_file_for_the_scan(tmp_path):
    root = tmp_path / "s"
    with open_store(root, inline_max_bytes=0) as store:
        store.commit(write("s", {"type": "session/started"}, message("small")))
        blob = content_blob(store, "s")
        store.blobs.path(blob).write_bytes(b"Small")
    with open_store(root) as store:
        assert pack_blobs(store)["kept_corrupt"] == 1 and tier(store, blob) == "file"


def test_pack_refuses_while_another_process_holds_the_writer_lock(tmp_path):
    import subprocess
    import sys

    root = tmp_path / "s"
    with open_store(root, inline_max_bytes=0) as store:
        store.commit(write("s", {"type": "session/started"}, message("small")))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from sessiondb.store.writer_lock import WriterLock\n"
        "lock = WriterLock(sys.argv[1]); assert lock.try_acquire(); print('held', flush=True); time.sleep(60)"),
        str(root)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"  # type: ignore[union-attr]
        from sessiondb.store import WriterLockHeldError

        with open_store(root) as store, pytest.raises(WriterLockHeldError):
            pack_blobs(store)
    finally:
        holder.kill()
        holder.wait()


# -- a store written by the previous version -----------------------------------------------------

def test_a_v3_store_migrates_reads_the_same_scans_clean_and_packs(tmp_path):
    root = tmp_path / "store-v3"
    shutil.copytree(FIXTURES / "store-v3", root)
    expected = json.loads((FIXTURES / "store-v3.expected.json").read_text())
    contents = {"alpha": ["hello from v3", {"json": [1, 2, 3], "ok": True}, "x" * 3000, "hello from v3"],
                "beta": ["big " + "y" * 100_000, b"\x00\x01binary"]}

    def reads(store: Store) -> dict:
        found = {name: {"view": store.view(name), "history": store.history_view(name),
                        "events": store.event_view(name), "messages": store.message_records(name, all_branches=True)}
                 for name in ("alpha", "beta")}
        return json.loads(json.dumps(found, sort_keys=True))

    with sqlite3.connect(root / "store.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
    with Store.open(root) as store:
        assert store.schema_version == 5
        assert reads(store) == expected
        for name, values in contents.items():
            assert [m["content"] for m in store.message_records(name, include_content=True)] == values
        assert store.blob(store.view("alpha")["final"]) == b"two"
        assert scan_blobs(store, full=True).ok and check_consistency(store).ok

        counts = pack_blobs(store)
        assert counts["packed"] == 8 and counts["kept_large"] == 1  # the 100 KB payload stays a file
        assert reads(store) == expected
        for name, values in contents.items():
            assert [m["content"] for m in store.message_records(name, include_content=True)] == values
        assert len(list(store.blobs.iter_files())) == 1
        assert scan_blobs(store, full=True).ok and check_consistency(store).ok
