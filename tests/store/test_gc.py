"""Blob GC: unreferenced payloads (inline and files) and orphan files go after the grace period;
referenced ones never do, also while a real writer re-uses the candidates during the sweep.

Real store roots; "unreferenced" is made the way a delete or retention leaves it: the rows that
referenced a payload are removed through SQLite."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from helpers import message, started, write
from sqlalchemy import text

from sessiondb.store import ReadOnlyStoreError, Store
from sessiondb.store.blobs.canonical import blob_id
from sessiondb.store.blobs.gc import collect_garbage
from sessiondb.store.integrity import check_consistency, last_reports, scan_blobs
from sessiondb.store.settings import Settings

SMALL, LARGE = 64, 4096  # inline_max_bytes=1024 below: SMALL payloads are inline, LARGE ones files


def open_store(root: Path, **settings: object) -> Store:
    return Store.open(root, Settings.from_env(root=str(root), inline_max_bytes=1024, **settings))


def sql(store: Store, query: str, **params: object) -> list[tuple]:
    with store.engine.connect() as conn:
        conn.info["begin"] = "BEGIN IMMEDIATE"
        with conn.begin():
            result = conn.execute(text(query), params)
            return [tuple(r) for r in result] if result.returns_rows else []


def payload(i: int, size: int) -> str:
    return (f"payload {i} " * size)[:size]


def forget_messages(store: Store, session: str) -> None:
    """What a delete or retention leaves: the rows gone, their payloads unreferenced."""
    sql(store, "DELETE FROM messages WHERE session_id = :s", s=session)


def blob_row(store: Store, bid: str) -> bool:
    return bool(sql(store, "SELECT 1 FROM blobs WHERE blob_id = :b", b=bid))


def clean(store: Store) -> None:
    scan = scan_blobs(store, full=True, grace_seconds=0)
    assert scan.ok, scan.findings
    assert not scan.of_type("blob/orphan")
    check = check_consistency(store, save=False)
    assert check.ok, check.findings


def test_unreferenced_inline_and_file_payloads_are_collected_referenced_ones_stay(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    store.commit(started("keep"))
    store.commit(write("keep", message(payload(0, SMALL)), message(payload(0, LARGE))))
    store.commit(started("gone"))
    store.commit(write("gone", message(payload(1, SMALL)), message(payload(1, LARGE)),
                       message(payload(0, SMALL))))  # shares one payload with "keep"
    shared, small, large = (blob_id(payload(0, SMALL).encode()), blob_id(payload(1, SMALL).encode()),
                            blob_id(payload(1, LARGE).encode()))
    assert store.blobs.path(large).exists()
    forget_messages(store, "gone")

    young = collect_garbage(store)  # default grace: 24 h, everything is younger
    assert young.counts["candidates"] == 0 and young.counts["kept_young"] == 2
    assert blob_row(store, small) and blob_row(store, large)

    dry = collect_garbage(store, grace_hours=0, dry_run=True)
    assert dry.counts["candidates"] == 2 and dry.counts["dry_run"] == 1
    assert blob_row(store, small) and store.blobs.path(large).exists()

    report = collect_garbage(store, grace_hours=0)
    assert report.counts["collected_inline"] == 1 and report.counts["collected_files"] == 1
    assert report.counts["bytes_freed"] == SMALL + LARGE
    assert not blob_row(store, small) and not blob_row(store, large)
    assert not store.blobs.path(large).exists()
    assert blob_row(store, shared)
    assert [m["content"] for m in store.message_records("keep", include_content=True)] == [
        payload(0, SMALL), payload(0, LARGE)]
    [stored] = last_reports(store, kind="blob-gc", limit=1)
    assert stored.report_id == report.report_id and stored.counts["bytes_freed"] == SMALL + LARGE
    clean(store)

    # writing a collected payload again stores it again
    store.commit(write("gone", message(payload(1, LARGE))))
    assert store.message_records("gone", include_content=True)[-1]["content"] == payload(1, LARGE)
    clean(store)
    store.close()


def test_orphan_and_temp_files_go_after_the_grace_period(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    store.commit(started("s"))
    orphan = store.blobs.put(b"x" * LARGE)  # a file whose write crashed before its commit
    temp = Path(str(store.blobs.path(orphan)) + ".tmp-0badf00d")
    temp.write_bytes(b"half")
    assert collect_garbage(store, grace_hours=1).counts["orphan_files"] == 0
    old = time.time() - 7200
    os.utime(store.blobs.path(orphan), (old, old))
    os.utime(temp, (old, old))
    report = collect_garbage(store, grace_hours=1)
    assert report.counts["orphan_files"] == 1 and report.counts["temp_files"] == 1
    assert not store.blobs.path(orphan).exists() and not temp.exists()
    clean(store)
    store.close()


def test_annotation_payloads_named_only_by_their_metadata_blob_stay(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    store.commit(started("s"))
    store.commit(write("s", {"type": "note/added", "payload": payload(7, LARGE), "x": 1}))
    report = collect_garbage(store, grace_hours=0)
    assert report.counts["candidates"] == 0
    assert store.blobs.path(blob_id(payload(7, LARGE).encode())).exists()
    clean(store)
    store.close()


def test_read_only_store_refuses_a_collection_but_not_a_dry_run(tmp_path: Path) -> None:
    open_store(tmp_path / "s").close()
    ro = Store.open(tmp_path / "s", readonly=True)
    with pytest.raises(ReadOnlyStoreError):
        collect_garbage(ro, grace_hours=0)
    assert collect_garbage(ro, grace_hours=0, dry_run=True).counts["candidates"] == 0
    with pytest.raises(ValueError, match="grace_hours"):
        collect_garbage(ro, grace_hours=-1, dry_run=True)
    ro.close()


def test_a_payload_the_writer_reuses_during_the_sweep_survives(tmp_path: Path) -> None:
    """A real writer commits writes that re-use the candidate payloads (dedupe against the
    existing row/file) while GC runs in a loop: no committed row ever loses its payload."""
    store = open_store(tmp_path / "s")
    sizes = [SMALL, LARGE]
    store.commit(started("seed"))
    for i in range(40):
        store.commit(write("seed", message(payload(i, sizes[i % 2]))))
    stop = threading.Event()
    failures: list[BaseException] = []
    rounds = {"writes": 0, "gc": 0, "collected": 0}

    def writer() -> None:
        try:
            n = 0
            while not stop.is_set():
                sid = f"w{n}"
                store.commit(started(sid))
                store.commit(write(sid, *[message(payload(i, sizes[i % 2])) for i in range(n % 40, n % 40 + 3)]))
                forget_messages(store, f"w{n - 1}") if n % 2 else None  # keep making candidates
                n += 1
                rounds["writes"] = n
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    forget_messages(store, "seed")
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and (rounds["gc"] < 20 or rounds["writes"] < 40):
            report = collect_garbage(store, grace_hours=0, save=False)
            rounds["gc"] += 1
            rounds["collected"] += report.counts["collected_inline"] + report.counts["collected_files"]
    finally:
        stop.set()
        thread.join()
    assert not failures, failures
    assert rounds["gc"] >= 5 and rounds["writes"] >= 10 and rounds["collected"] > 0, rounds
    sessions = [r[0] for r in sql(store, "SELECT session_id FROM sessions")]
    for sid in sessions:
        for record in store.message_records(sid, include_content=True):
            assert record["content"].startswith("payload ")
        store.view(sid)
    clean(store)
    store.close()


@pytest.mark.parametrize("moment", ["mark", "sweep"])
def test_a_payload_written_again_between_mark_and_sweep_or_rows_and_files_survives(tmp_path: Path,
                                                                                   moment: str) -> None:
    """Deterministic interleavings: a real commit, at the moment after the mark (the writer
    upserts the candidate's existing row) or after the sweep deleted the rows and before it
    unlinks the files (the writer finds no row and re-uses the file still at the name)."""
    store = open_store(tmp_path / "s")
    store.commit(started("a"))
    store.commit(write("a", message(payload(3, SMALL)), message(payload(3, LARGE))))
    forget_messages(store, "a")
    store.commit(started("b"))
    wrote: list[str] = []

    def at(phase: str, done: int, total: int) -> None:
        if phase == moment and not wrote:
            wrote.append(phase)
            store.commit(write("b", message(payload(3, SMALL)), message(payload(3, LARGE))))

    report = collect_garbage(store, grace_hours=0, progress=at)
    assert wrote == [moment]
    if moment == "mark":
        assert report.counts["revived"] == 2 and report.counts["bytes_freed"] == 0
    assert [m["content"] for m in store.message_records("b", include_content=True)] == [
        payload(3, SMALL), payload(3, LARGE)]
    assert store.blobs.path(blob_id(payload(3, LARGE).encode())).exists()
    clean(store)
    store.close()
