"""Scan history and the v2 migration that adds the integrity tables to existing stores."""

from __future__ import annotations

import sqlite3

import pytest

from sessiondb.store import Store
from sessiondb.store.integrity import Finding, Report, last_reports, save_report
from sessiondb.store.integrity.reports import MAX_STORED_FINDINGS
from sessiondb.store.rows.schema import SCHEMA_VERSION


def test_a_v1_store_is_migrated_forward_to_the_integrity_tables(tmp_path):
    Store.open(tmp_path / "s").close()
    db = sqlite3.connect(tmp_path / "s" / "store.sqlite")
    db.executescript("""
        DROP TABLE integrity_reports; DROP TABLE integrity_progress; DROP INDEX ix_blobs_created;
        UPDATE meta SET value = '1' WHERE key = 'schema_version';
    """)
    db.close()
    with Store.open(tmp_path / "s") as store:
        assert store.schema_version == SCHEMA_VERSION
        save_report(store, Report("consistency", "2026-01-01T00:00:00Z"))
        assert [r.kind for r in last_reports(store)] == ["consistency"]
    db = sqlite3.connect(tmp_path / "s" / "store.sqlite")
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert {"integrity_reports", "integrity_progress", "ix_blobs_created"} <= names


def test_a_report_round_trips_through_the_history(store):
    report = Report("blob-scan/full", "2026-01-01T00:00:00Z", finished_at="2026-01-01T00:00:01Z",
                    partition="0/2", counts={"blobs_hashed": 3})
    report.add("blob/missing", "gone", blob_id="blake3:" + "0" * 64)
    report.add("blob/orphan", "stray", path="/x")
    save_report(store, report)
    [back] = last_reports(store)
    assert back.as_dict() == report.as_dict()
    assert back.by_type() == {"blob/missing": 1, "blob/orphan": 1} and not back.ok


def test_a_huge_report_keeps_its_errors_and_says_how_many_findings_it_left_out(store):
    report = Report("consistency", "2026-01-01T00:00:00Z")
    for i in range(MAX_STORED_FINDINGS):
        report.add("blob/orphan", f"orphan {i}")
    report.add("ref/dangling", "the one error")
    save_report(store, report)
    [back] = last_reports(store)
    assert back.findings[0] == Finding("ref/dangling", "the one error") and not back.ok
    assert back.counts["findings_not_stored"] == 1 and len(back.findings) == MAX_STORED_FINDINGS


def test_findings_have_a_known_type_and_a_severity():
    assert Finding("index/lag", "behind").severity == "warning"
    assert Finding("blob/missing", "gone").severity == "error"
    with pytest.raises(ValueError, match="unknown finding type"):
        Finding("blob/whatever", "?")
