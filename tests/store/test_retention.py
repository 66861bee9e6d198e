"""Retention on real stores: what goes (abandoned heads and rows, old heads nothing needs), what never
does (current head and branch, fork sources, invocation and turn heads, young heads, bases of kept
heads), the race with a resume, reports, dry runs, the beat entry and the scanner task."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fleet_fixtures import fleet, redis_server  # noqa: F401
from helpers import message, started, write
from sqlalchemy import text

from sessiondb.store import NotFoundError, ReadOnlyStoreError, Store
from sessiondb.store.blobs.gc import collect_garbage
from sessiondb.store.forget.retention import apply_retention
from sessiondb.store.integrity import check_consistency, last_reports, scan_blobs
from sessiondb.store.settings import Settings
from sessiondb.tasks.schedule import beat_schedule

LATER = datetime.now(UTC) + timedelta(days=3)  # retention's clock in these tests: everything is old


def open_store(root: Path, **settings: object) -> Store:
    return Store.open(root, Settings.from_env(root=str(root), inline_max_bytes=64, **settings))


def head(hid: str, expected: str | None) -> dict:
    return {"type": "head/created", "head_id": hid, "expected_head": expected, "final": f"final {hid} " * 20}


def resume(hid: str, expected: str | None) -> dict:
    return {"type": "session/restored", "kind": "resume", "source_head": hid, "expected_head": expected}


def heads(store: Store) -> set[str]:
    with store.engine.connect() as conn, conn.begin():
        return set(conn.execute(text("SELECT head_id FROM heads")).scalars())


def branched(store: Store, sid: str = "s") -> None:
    """h1 -> h2 -> h3, then a resume to h1 and more: h2 and h3 (and their messages) are abandoned."""
    store.commit(started(sid))
    store.commit(write(sid, message(f"{sid} one " * 20), head(f"{sid}-h1", None)))
    store.commit(write(sid, message(f"{sid} two " * 20), head(f"{sid}-h2", f"{sid}-h1")))
    store.commit(write(sid, message(f"{sid} three " * 20), head(f"{sid}-h3", f"{sid}-h2")))
    store.commit(write(sid, resume(f"{sid}-h1", f"{sid}-h3"), message(f"{sid} four " * 20)))


def clean(store: Store) -> None:
    report = check_consistency(store, save=False)
    assert report.ok, report.findings
    scan = scan_blobs(store, full=True, grace_seconds=0)
    assert scan.ok, scan.findings


def test_abandoned_branch_goes_current_branch_and_its_heads_stay_gc_frees_the_payloads(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    branched(store)
    view, h1 = store.view("s"), store.view("s#s-h1")
    report = apply_retention(store, abandoned_days=1, now=LATER)
    assert heads(store) == {"s-h1"}
    assert report.counts["heads_removed"] == 2 and report.counts["messages_removed"] == 2
    assert report.counts["payloads_released"] >= 4 and report.counts["payload_bytes_released"] > 0
    after = store.view("s")
    assert after["messages"] == view["messages"] and store.view("s#s-h1")["messages"] == h1["messages"]
    [stored] = last_reports(store, kind="retention", limit=1)
    assert stored.counts["heads_removed"] == 2
    with pytest.raises(NotFoundError):
        store.view("s#s-h3")
    gc = collect_garbage(store, grace_hours=0)
    assert gc.counts["bytes_freed"] > 0
    assert [m["content"] for m in store.message_records("s", include_content=True)] == [
        "s one " * 20, "s four " * 20]
    clean(store)
    # nothing left to do: a second run removes nothing
    assert apply_retention(store, abandoned_days=1, now=LATER).counts["sessions_changed"] == 0
    store.close()


def test_what_is_never_removed(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    branched(store, "a")
    # a fork of the abandoned a-h3, an invocation naming a-h2
    store.commit(write("f", {"type": "session/started"}, {"type": "session/restored", "kind": "fork",
                                                          "source_head": "a-h3"}))
    branched(store, "b")
    store.commit(write("b", {"type": "invocation/started", "invocation_id": "i1", "callee": "a",
                             "caller_head_before": "b-h1"}))
    fork_view = store.view("f")
    young = apply_retention(store, abandoned_days=1)  # everything is younger than a day
    assert young.counts["sessions_changed"] == 0 and heads(store) == {f"{s}-h{i}" for s in "ab" for i in (1, 2, 3)}
    apply_retention(store, abandoned_days=1, now=LATER)
    # a-h3 is a fork's source, a-h2 its basis; b-h2 and b-h3 are abandoned and named by nothing
    assert heads(store) == {"a-h1", "a-h2", "a-h3", "b-h1"}
    assert store.view("f")["messages"] == fork_view["messages"]
    assert len(store.view("a#a-h3")["messages"]) == 3
    # keep-last-K on a straight line removes nothing: every older head is a kept head's basis
    store.commit(started("line"))
    for i in range(1, 5):
        store.commit(write("line", message(f"line {i}"), head(f"line-h{i}", f"line-h{i - 1}" if i > 1 else None)))
    apply_retention(store, keep_heads=1, now=LATER)
    assert {h for h in heads(store) if h.startswith("line")} == {f"line-h{i}" for i in range(1, 5)}
    clean(store)
    store.close()


def test_keep_last_k_removes_old_leaf_heads_only(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    branched(store)
    store.commit(write("s", message("five"), head("s-h5", "s-h1")))
    apply_retention(store, keep_heads=2, now=LATER)  # h2 is h3's basis, h1 h5's: nothing goes
    assert heads(store) == {"s-h1", "s-h2", "s-h3", "s-h5"}
    apply_retention(store, keep_heads=1, now=LATER)  # h3 is a leaf, then h2 is; h1 is h5's basis
    assert heads(store) == {"s-h1", "s-h5"}
    # K alone removes heads, not rows
    assert len(store.message_records("s", all_branches=True)) == 5
    clean(store)
    store.close()


def test_dry_run_policy_off_and_read_only(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    branched(store)
    dry = apply_retention(store, abandoned_days=1, now=LATER, dry_run=True)
    assert dry.counts["heads_removed"] == 2 and dry.counts["dry_run"] == 1 and len(heads(store)) == 3
    assert not last_reports(store, kind="retention")
    off = apply_retention(store, now=LATER)
    assert off.counts["policy_off"] == 1 and len(heads(store)) == 3
    with pytest.raises(ValueError, match="retention"):
        apply_retention(store, keep_heads=-1)
    store.close()
    ro = Store.open(tmp_path / "s", readonly=True)
    with pytest.raises(ReadOnlyStoreError):
        apply_retention(ro, abandoned_days=1, now=LATER)
    assert apply_retention(ro, abandoned_days=1, now=LATER, dry_run=True).counts["heads_removed"] == 2
    ro.close()


def test_a_resume_to_a_head_retention_removes_fails_cleanly(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")
    branched(store)
    apply_retention(store, abandoned_days=1, now=LATER)
    receipt = store.commit_many([write("s", resume("s-h3", "s-h1"))])[0]
    assert receipt["status"] == "rejected" and receipt["error"]["type"] == "not-found", receipt
    assert store.view("s")["head"] == "s-h1"
    # the other order: the resume commits first, the head is current, retention keeps it
    branched(store, "t")
    store.commit(write("t", resume("t-h3", "t-h1")))
    apply_retention(store, abandoned_days=1, now=LATER)
    assert {"t-h3", "t-h2", "t-h1"} <= heads(store)
    clean(store)
    store.close()


def test_resumes_racing_retention_either_commit_or_fail_cleanly(tmp_path: Path) -> None:
    """A real writer thread resumes to random heads while retention runs in a loop."""
    store = open_store(tmp_path / "s")
    branched(store)
    for i in range(4, 12):
        store.commit(write("s", message(f"m{i}"), head(f"s-h{i}", store.view("s")["head"])))
    stop, outcomes, failures = threading.Event(), {"committed": 0, "rejected": 0}, []

    def resumer() -> None:
        try:
            k = 0
            while not stop.is_set():
                k += 1
                target = f"s-h{1 + k % 11}"
                receipt = store.commit_many([write("s", resume(target, store.view("s")["head"]))])[0]
                if receipt["status"] == "committed":
                    outcomes["committed"] += 1
                else:
                    assert receipt["error"]["type"] in ("not-found", "head/conflict"), receipt
                    outcomes["rejected"] += 1
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    thread = threading.Thread(target=resumer)
    thread.start()
    try:
        deadline = time.monotonic() + 6
        runs = 0
        while time.monotonic() < deadline and runs < 30:
            apply_retention(store, abandoned_days=1, keep_heads=2, now=LATER, save=False)
            runs += 1
    finally:
        stop.set()
        thread.join()
    assert not failures, failures
    assert outcomes["committed"] > 0 and runs > 0, (outcomes, runs)
    current = store.view("s")["head"]
    assert current in heads(store)
    for hid in heads(store):
        store.view(f"s#{hid}")
    clean(store)
    store.close()


def test_beat_runs_retention_then_gc_only_when_a_policy_is_set() -> None:
    assert "retention-then-gc" not in beat_schedule(Settings())
    assert "blob-gc" not in beat_schedule(Settings())
    entry = beat_schedule(Settings(retain_abandoned_days=30, beat_retention_s=600))["retention-then-gc"]
    assert entry["task"] == "integrity.retention" and entry["kwargs"] == {"then_gc": True}
    assert entry["schedule"] == 600.0
    assert beat_schedule(Settings(beat_gc_s=60))["blob-gc"]["task"] == "integrity.gc"


def test_the_scanner_runs_retention_then_gc(fleet) -> None:  # noqa: F811
    fleet.extra_env.update(SESSIONDB_RETAIN_ABANDONED_DAYS="0.00001", SESSIONDB_RETAIN_GRACE_HOURS="0",
                     SESSIONDB_GC_GRACE_HOURS="0", SESSIONDB_INLINE_MAX_BYTES="64")
    with fleet.store() as store:
        branched(store)
    time.sleep(1.5)  # older than the abandoned-branch age (0.86 s)
    fleet.worker("scanner")
    result = fleet.app.send_task("integrity.retention", kwargs={"then_gc": True}).get(timeout=120)
    assert result["kind"] == "retention" and result["counts"]["heads_removed"] == 2, result["counts"]
    assert result["gc"]["kind"] == "blob-gc" and result["gc"]["counts"]["bytes_freed"] > 0
    with fleet.store() as store:
        assert heads(store) == {"s-h1"}
        assert {r.kind for r in last_reports(store)} >= {"retention", "blob-gc"}
        clean(store)


def test_heads_younger_than_the_grace_period_stay_whatever_the_policy(tmp_path: Path) -> None:
    store = open_store(tmp_path / "s")  # SESSIONDB_RETAIN_GRACE_HOURS: 24 by default
    branched(store)
    report = apply_retention(store, keep_heads=1, abandoned_days=0.00001)  # the real clock: all minutes old
    assert report.counts["sessions_changed"] == 0 and heads(store) == {"s-h1", "s-h2", "s-h3"}
    assert apply_retention(store, abandoned_days=1, now=datetime.now(UTC) + timedelta(hours=25)).counts[
        "heads_removed"] == 2
    store.close()
