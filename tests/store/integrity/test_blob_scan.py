"""Blob scans: every kind of damage to the blob tree, made for real, is reported with its type."""

from __future__ import annotations

import os

import pytest
from helpers import message, started, write
from sqlalchemy import text

from sessiondb.store import Store
from sessiondb.store.integrity import last_reports, scan_blobs

DAY = 24 * 3600


def biggest(store: Store) -> str:
    """The largest blob (its first bytes can be damaged without touching its size)."""
    with store.engine.connect() as conn, conn.begin():
        return conn.execute(text("SELECT blob_id FROM blobs ORDER BY size DESC, blob_id LIMIT 1")).scalar_one()


def test_a_healthy_store_scans_clean_and_every_blob_is_hashed(busy, kit):
    report = scan_blobs(busy, full=True)
    assert report.ok and report.findings == []
    assert report.counts["blobs_hashed"] == len(kit.blob_ids(busy)) == report.counts["files_listed"]
    assert report.status == "completed" and report.report_id is not None


def test_a_flipped_byte_is_a_hash_mismatch_and_the_file_moves_to_quarantine(busy, kit):
    victim = biggest(busy)
    path = busy.blobs.path(victim)
    kit.flip_byte(path, at=1)
    report = scan_blobs(busy, full=True)
    [finding] = report.findings
    assert finding.type == "blob/hash-mismatch" and finding.severity == "error"
    assert finding.data["blob_id"] == victim and not report.ok
    assert not path.exists()  # moved, never deleted
    assert os.path.exists(finding.data["quarantined_to"])
    assert kit.sql(busy, "SELECT status FROM blobs WHERE blob_id = :b", b=victim) == ["quarantined"]


def test_a_quarantined_blob_is_reported_as_such_until_restored(busy, kit):
    victim = biggest(busy)
    kit.flip_byte(busy.blobs.path(victim))
    scan_blobs(busy, full=True)
    again = scan_blobs(busy, full=True)
    assert [f.type for f in again.findings] == ["blob/quarantined"]


def test_a_deleted_file_is_missing(busy, kit):
    victim = biggest(busy)
    busy.blobs.path(victim).unlink()
    report = scan_blobs(busy, full=True)
    assert [(f.type, f.data["blob_id"]) for f in report.findings] == [("blob/missing", victim)]
    assert report.counts["skipped_missing"] == 1


def test_a_truncated_file_is_a_size_mismatch_and_is_quarantined(busy, kit):
    victim = biggest(busy)
    path = busy.blobs.path(victim)
    path.write_bytes(path.read_bytes()[:-3])
    [finding] = scan_blobs(busy, full=True).findings
    assert finding.type == "blob/size-mismatch"
    assert finding.data["file_size"] == finding.data["recorded_size"] - 3 and not finding.data["file_intact"]
    assert kit.sql(busy, "SELECT status FROM blobs WHERE blob_id = :b", b=victim) == ["quarantined"]


def test_a_wrong_recorded_size_with_an_intact_file_is_reported_but_not_quarantined(busy, kit):
    victim = biggest(busy)
    kit.execute(busy, "UPDATE blobs SET size = size + 1 WHERE blob_id = :b", b=victim)
    [finding] = scan_blobs(busy, full=True).findings
    assert finding.type == "blob/size-mismatch" and finding.data["file_intact"]
    assert busy.blobs.path(victim).exists()


def test_quarantine_then_a_write_of_the_same_content_heals_the_blob(store, kit):
    store.commit(write("s", {"type": "session/started"}, message("precious words")))
    [content] = [m["content_blob"] for m in store.message_records("s")]
    kit.flip_byte(store.blobs.path(content))
    assert [f.type for f in scan_blobs(store, full=True).findings] == ["blob/hash-mismatch"]
    with pytest.raises(Exception, match="missing"):
        store.message_records("s", include_content=True)

    store.commit(write("s", message("precious words")))  # any write carrying the same bytes

    assert kit.sql(store, "SELECT status FROM blobs WHERE blob_id = :b", b=content) == ["ok"]
    assert store.message_records("s", include_content=True)[0]["content"] == "precious words"
    assert scan_blobs(store, full=True).ok


def test_an_old_unreferenced_file_is_an_orphan_and_a_young_one_is_not(busy, kit):
    old = busy.blobs.put(b"left behind by a crash between blobs and rows")
    young = busy.blobs.put(b"a write in progress")
    kit.make_old(busy.blobs.path(old))
    report = scan_blobs(busy, full=True)
    assert [(f.type, f.data["blob_id"]) for f in report.findings] == [("blob/orphan", old)]
    assert report.ok  # orphans are warnings
    assert busy.blobs.path(old).exists() and busy.blobs.path(young).exists()  # never deleted by default


def test_orphans_past_the_grace_period_are_collected_only_on_request(busy, kit):
    old = busy.blobs.put(b"orphan one")
    young = busy.blobs.put(b"orphan two")
    kit.make_old(busy.blobs.path(old), 2 * 3600)
    kit.make_old(busy.blobs.path(young), 600)
    report = scan_blobs(busy, full=True, collect_orphans=True, grace_seconds=3600)
    [finding] = report.of_type("blob/orphan")
    assert finding.data["blob_id"] == old and finding.data["collected"]
    assert not busy.blobs.path(old).exists() and busy.blobs.path(young).exists()


def test_a_file_referenced_by_a_row_is_never_an_orphan(busy, kit):
    for blob_id in kit.blob_ids(busy):
        kit.make_old(busy.blobs.path(blob_id))
    report = scan_blobs(busy, full=True, collect_orphans=True)
    assert report.findings == [] and report.counts["collected"] == 0


def test_an_old_temp_file_is_a_leftover(busy, kit):
    final = busy.blobs.path(biggest(busy))
    old = final.with_name(final.name + ".tmp-0a1b2c3d")
    young = final.with_name(final.name + ".tmp-deadbeef")
    old.write_bytes(b"half a blob")
    young.write_bytes(b"half a blob")
    kit.make_old(old)
    report = scan_blobs(busy, full=True)
    assert [(f.type, f.data["path"]) for f in report.findings] == [("blob/temp-leftover", str(old))]
    scan_blobs(busy, full=True, collect_orphans=True)
    assert not old.exists() and young.exists()


def test_files_with_names_that_are_not_blobs_are_reported(busy, kit):
    some = busy.blobs.path(biggest(busy))
    (some.parent / "notes.txt").write_text("not a blob")
    misplaced = busy.blobs.dir / "00" / "00" / ("ff" * 32)
    misplaced.parent.mkdir(parents=True, exist_ok=True)
    misplaced.write_bytes(b"x")
    (busy.blobs.dir / "stray").mkdir()
    a_directory = busy.blobs.dir / "ab" / "cd" / ("abcd" + "0" * 60)
    a_directory.mkdir(parents=True)
    report = scan_blobs(busy, full=True)
    bad = sorted(f.data["path"] for f in report.of_type("blob/bad-name"))
    assert bad == sorted([str(some.parent / "notes.txt"), str(misplaced), str(busy.blobs.dir / "stray"),
                          str(a_directory)])
    assert report.by_type() == {"blob/bad-name": 4}
    assert scan_blobs(busy, full=True, collect_orphans=True, grace_seconds=0).counts["collected"] == 0
    assert (some.parent / "notes.txt").exists()  # reported, never touched


def test_partitions_split_the_blob_space_and_each_problem_is_reported_once(busy, kit):
    victim = biggest(busy)
    kit.flip_byte(busy.blobs.path(victim))
    (busy.blobs.dir / "stray.txt").write_text("x")
    halves = [scan_blobs(busy, full=True, partition=f"{i}/2", workers=1) for i in range(2)]
    assert sum(r.counts.get("blobs_hashed", 0) for r in halves) == len(kit.blob_ids(busy))
    types = sorted(f.type for r in halves for f in r.findings)
    assert types == ["blob/bad-name", "blob/hash-mismatch"]
    owner = [r for r in halves if r.of_type("blob/hash-mismatch")][0]
    assert owner.partition == ("0/2" if victim[7] < "8" else "1/2")
    by_prefix = scan_blobs(busy, full=True, prefixes=[victim[7]])
    assert by_prefix.of_type("blob/quarantined") and by_prefix.partition == victim[7]


def test_an_interrupted_scan_resumes_where_it_stopped(store, kit):
    store.commit(started("s"))
    store.commit(write("s", *[message(f"message number {i}") for i in range(30)]))
    ids = kit.blob_ids(store)
    early, late = ids[1], ids[-2]
    kit.flip_byte(store.blobs.path(early))
    kit.flip_byte(store.blobs.path(late))
    calls = []

    def stop_after_ten_blobs(phase: str, done: int, total: int) -> None:
        calls.append((phase, done, total))
        if phase == "hash" and done >= 10:
            raise KeyboardInterrupt("operator pressed Ctrl-C")

    with pytest.raises(KeyboardInterrupt):
        scan_blobs(store, full=True, checkpoint_seconds=0, progress=stop_after_ten_blobs)
    [interrupted] = last_reports(store, "blob-scan", limit=1)
    assert interrupted.status == "interrupted"
    assert [f.data["blob_id"] for f in interrupted.findings] == [early]

    resumed = scan_blobs(store, full=True, checkpoint_seconds=0, progress=lambda *a: calls.append(a))
    assert resumed.counts["resumed"] == 1
    assert resumed.counts["blobs_hashed"] == len(ids)  # each blob hashed once across both runs
    assert sorted(f.data["blob_id"] for f in resumed.findings) == sorted([early, late])
    assert calls[0] == ("hash", 1, len(ids)) and calls[-1] == ("hash", len(ids), len(ids))

    fresh = scan_blobs(store, full=True)
    assert "resumed" not in fresh.counts and fresh.by_type() == {"blob/quarantined": 2}


def test_incremental_scans_hash_new_blobs_and_roll_over_old_ones(store, kit):
    from datetime import UTC, datetime, timedelta

    store.commit(started("s"))
    store.commit(write("s", *[message(f"old message {i}") for i in range(60)]))
    t0 = datetime.now(UTC)
    first = scan_blobs(store, now=t0, period_seconds=4 * DAY)
    assert first.counts["blobs_hashed"] == len(kit.blob_ids(store))  # no earlier scan: everything is new

    store.commit(write("s", message("brand new")))
    second = scan_blobs(store, now=t0, period_seconds=4 * DAY)
    assert second.counts["blobs_hashed"] == 1  # just the new message

    ids = [b for b in kit.blob_ids(store)]
    low = next(b for b in ids if b[7] in "0123")  # in the first quarter of the id space
    high = next(b for b in reversed(ids) if b[7] in "cdef")  # in the last quarter
    kit.flip_byte(store.blobs.path(low))
    kit.flip_byte(store.blobs.path(high))

    day1 = scan_blobs(store, now=t0 + timedelta(days=1), period_seconds=4 * DAY)
    assert [f.data["blob_id"] for f in day1.findings if f.type == "blob/hash-mismatch"] == [low]
    day2 = scan_blobs(store, now=t0 + timedelta(days=2), period_seconds=4 * DAY)
    assert not day2.of_type("blob/hash-mismatch")
    day4 = scan_blobs(store, now=t0 + timedelta(days=4), period_seconds=4 * DAY)
    assert [f.data["blob_id"] for f in day4.findings if f.type == "blob/hash-mismatch"] == [high]
    hashed = sum(r.counts.get("blobs_hashed", 0) for r in (day1, day2, day4))
    assert hashed == len(ids)  # exactly one full cycle over the id space


def test_reports_are_kept_in_the_scan_history(busy, kit):
    kit.flip_byte(busy.blobs.path(biggest(busy)))
    scan_blobs(busy, full=True)
    scan_blobs(busy)
    latest = last_reports(busy)
    assert [r.kind for r in latest] == ["blob-scan/incremental", "blob-scan/full"]
    assert latest[1].by_type() == {"blob/hash-mismatch": 1} and not latest[1].ok
    as_dict = latest[1].as_dict()
    assert as_dict["ok"] is False and as_dict["errors"] == 1 and as_dict["findings"][0]["severity"] == "error"
    assert [r.kind for r in last_reports(busy, "blob-scan/full")] == ["blob-scan/full"]


def test_worker_processes_find_the_same_problems_as_an_in_process_scan(busy, kit):
    victim = biggest(busy)
    kit.flip_byte(busy.blobs.path(victim))
    gone = kit.sql(busy, "SELECT blob_id FROM blobs WHERE blob_id != :v ORDER BY blob_id LIMIT 1", v=victim)[0]
    busy.blobs.path(gone).unlink()
    orphan = busy.blobs.put(b"nobody's")
    kit.make_old(busy.blobs.path(orphan))
    report = scan_blobs(busy, full=True, workers=2)
    assert sorted((f.type, f.data["blob_id"]) for f in report.findings) == sorted(
        [("blob/hash-mismatch", victim), ("blob/missing", gone), ("blob/orphan", orphan)])
    assert report.counts["blobs_hashed"] == len(kit.blob_ids(busy)) - 1
    busy.commit(write("a", message("the store is still writable after the workers ended")))
    assert scan_blobs(busy, full=True, workers=0).by_type() == {
        "blob/missing": 1, "blob/orphan": 1, "blob/quarantined": 1}


def test_an_interrupted_scan_with_worker_processes_resumes_and_leaves_no_worker_behind(store, kit):
    import os

    store.commit(started("s"))
    store.commit(write("s", *[message(f"message {i}") for i in range(40)]))
    ids = kit.blob_ids(store)
    kit.flip_byte(store.blobs.path(ids[-1]))

    def stop(phase: str, done: int, total: int) -> None:
        if done >= 5:
            raise KeyboardInterrupt

    def children() -> set[str]:
        tasks = f"/proc/{os.getpid()}/task"
        return {pid for tid in os.listdir(tasks) for pid in open(f"{tasks}/{tid}/children").read().split()}

    before = children()
    with pytest.raises(KeyboardInterrupt):
        scan_blobs(store, full=True, workers=2, checkpoint_seconds=0, progress=stop)
    assert children() <= before  # every forked worker has ended and been reaped
    resumed = scan_blobs(store, full=True, workers=2, checkpoint_seconds=0)
    assert resumed.counts["resumed"] == 1 and resumed.counts["blobs_hashed"] == len(ids)
    assert [f.data["blob_id"] for f in resumed.findings] == [ids[-1]]


CRASHING_SCAN = """
import os, sys
from sessiondb.store import Store
from sessiondb.store.integrity import scan_blobs

def die(phase, done, total):
    if done >= 10:
        os.kill(os.getpid(), 9)  # kill -9 in the middle of the scan

scan_blobs(Store.open(sys.argv[1]), full=True, workers=0, checkpoint_seconds=0, progress=die)
"""


def test_a_scan_killed_with_sigkill_resumes_from_its_last_checkpoint(store, kit):
    import subprocess
    import sys
    from pathlib import Path

    store.commit(started("s"))
    store.commit(write("s", *[message(f"message {i}") for i in range(30)]))
    ids = kit.blob_ids(store)
    kit.flip_byte(store.blobs.path(ids[0]))
    repo = Path(__file__).resolve().parents[3]
    crashed = subprocess.run([sys.executable, "-c", CRASHING_SCAN, str(store.root)], cwd=repo,
                             env={**os.environ, "PYTHONPATH": str(repo)}, timeout=60)
    assert crashed.returncode == -9
    assert kit.sql(store, "SELECT count(*) FROM integrity_reports") == [0]  # it never got to report
    resumed = scan_blobs(store, full=True, workers=0)
    assert resumed.counts["resumed"] == 1 and resumed.counts["blobs_hashed"] == len(ids)
    assert [f.data["blob_id"] for f in resumed.findings] == [ids[0]]  # found before the crash, kept
