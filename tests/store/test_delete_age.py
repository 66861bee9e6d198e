"""Age retention: sessions stopped for more than N days, with no live dependants, are deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from helpers import message, write

from sessiondb.store import Settings
from sessiondb.store.forget.age import delete_stopped_sessions


def old(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def session(store, sid: str, status: str | None, ended_days_ago: int, **started) -> None:
    events = [{"type": "session/started", "at": old(ended_days_ago + 1), **started}, message(f"{sid} text")]
    if status is not None:
        events.append({"type": "session/status", "status": status, "at": old(ended_days_ago)})
    store.commit(write(sid, *events))


def test_only_old_stopped_sessions_without_dependants_go(store):
    session(store, "old-stopped", "stopped", 40)
    session(store, "old-error", "error", 31)
    session(store, "young-stopped", "stopped", 5)
    session(store, "old-running", None, 60)
    session(store, "old-parent", "stopped", 50)
    session(store, "child", None, 1, kind="child", parent="old-parent")

    plan = delete_stopped_sessions(store, 30, dry_run=True)
    assert sorted(plan["deleted"]) == ["old-error", "old-stopped"]
    assert [s["session"] for s in plan["skipped"]] == ["old-parent"] and plan["bytes_freed"] > 0
    assert store.tombstone("old-stopped") is None  # a dry run changes nothing

    report = delete_stopped_sessions(store, 30)
    assert sorted(report["deleted"]) == ["old-error", "old-stopped"] and report["failed"] == []
    assert store.tombstone("old-stopped")["reason"] == "retention: stopped > 30 days"
    for kept in ("young-stopped", "old-running", "old-parent", "child"):
        assert store.view(kept)["session"]["session_id"] == kept
    again = delete_stopped_sessions(store, 30)  # nothing left to do; no error either
    assert again["deleted"] == [] and [s["session"] for s in again["skipped"]] == ["old-parent"]


def test_the_setting_is_off_by_default_and_read_from_the_environment():
    assert Settings.from_env({}).retain_stopped_days == 0
    assert Settings.from_env({"SESSIONDB_RETAIN_STOPPED_DAYS": "90"}).retain_stopped_days == 90
    with pytest.raises(ValueError, match="SESSIONDB_RETAIN_STOPPED_DAYS"):
        Settings.from_env({"SESSIONDB_RETAIN_STOPPED_DAYS": "soon"})


def test_zero_days_is_refused(store):
    with pytest.raises(ValueError, match="turns retention off"):
        delete_stopped_sessions(store, 0)


def test_the_retention_run_applies_the_age_policy_and_counts_it(store):
    from sessiondb.store.forget.retention import apply_retention

    for name in ("old", "live"):
        store.commit({"write_id": f"{name}-1", "session": name, "events": [
            {"type": "session/started"}, {"type": "message/added", "role": "user", "content": f"{name} text"}]})
    store.commit({"write_id": "old-2", "session": "old", "events": [{"type": "session/status", "status": "stopped"}]})
    later = datetime.now(UTC) + timedelta(days=40)
    dry = apply_retention(store, stopped_days=30, dry_run=True, now=later)
    assert dry.counts["sessions_deleted"] == 1 and store.view("old")["messages"]
    report = apply_retention(store, stopped_days=30, now=later)
    assert report.counts["sessions_deleted"] == 1 and report.counts["sessions_delete_failed"] == 0
    assert [t["session_id"] for t in store.tombstones()] == ["old"]
    assert store.view("live")["messages"]
