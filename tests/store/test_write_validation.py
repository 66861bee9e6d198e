"""Validation holes (issue 12): every write gets a receipt, whatever it contains, and none fails its group.

Real store roots (SQLite files and blob files); writes as plain data, as decoded from JSON.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from helpers import message, started, write
from sqlalchemy import text

from sessiondb.store import Settings, Store
from sessiondb.store.rows.schema import SCHEMA_VERSION

SURROGATE = json.loads('"\\ud800"')  # legal as a JSON escape, not encodable as UTF-8


def rows(store: Store, sql: str) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


@pytest.mark.parametrize(("bad", "field", "event_index"), [
    ({"write_id": "w" + SURROGATE}, "write_id", None),
    ({"session": "s" + SURROGATE}, "session", None),
    ({"events": [{"type": "session/started", "title": "t" + SURROGATE}]}, "title", 0),
    ({"events": [message("x"), {"type": "call/started", "model": SURROGATE}]}, "model", 1),
    ({"events": [message("x" + SURROGATE)]}, "content", 0),
    ({"events": [message({"deep": [1, {"k": SURROGATE}]})]}, "content", 0),
    ({"events": [message({"k" + SURROGATE: 1})]}, "content", 0),
    ({"events": [{"type": "agent/thought", "note": SURROGATE}]}, "note", 0),
])
def test_a_lone_surrogate_anywhere_is_rejected_naming_the_field_and_the_group_commits(store, bad, field,
                                                                                      event_index):
    store.commit(started("s"))
    good1 = write("s", message("good 1"))
    good2 = write("s", message("good 2"))
    poison = {**write("s", message("poison")), **bad}
    receipts = store.commit_many([good1, poison, good2])
    assert [r["status"] for r in receipts] == ["committed", "rejected", "committed"]
    error = receipts[1]["error"]
    assert error["type"] == "write/invalid" and error["field"] == field
    assert error.get("event_index") == event_index
    assert "surrogate" in error["message"]
    json.dumps(receipts, ensure_ascii=False).encode("utf-8")  # the receipt itself is encodable
    assert [m["content"] for m in store.message_records("s", include_content=True)] == ["good 1", "good 2"]
    assert rows(store, "SELECT error_type, field FROM rejected_writes") == [("write/invalid", field)]


def test_an_unexpected_failure_planning_one_write_rejects_that_write_alone(store):
    store.commit(started("s"))
    good = write("s", message("good"))
    # not JSON at all (a set): parse or plan raises something that is not a StoreError
    odd = write("s", {"type": "agent/thought", "note": {1, 2}})
    receipts = store.commit_many([odd, good])
    assert [r["status"] for r in receipts] == ["rejected", "committed"]


def test_max_write_bytes_is_enforced_per_write(tmp_path):
    settings = Settings.from_env({"SESSIONDB_MAX_WRITE_BYTES": "10000"})
    with Store.open(tmp_path / "store", settings) as store:
        store.commit(started("s"))
        big = write("s", message("x" * 6000), message("y" * 6000))
        receipts = store.commit_many([big, write("s", message("small"))])
        assert [r["status"] for r in receipts] == ["rejected", "committed"]
        assert "at most 10000" in receipts[0]["error"]["message"]
        assert int(receipts[0]["error"]["message"].split("write of ")[1].split(" bytes")[0]) > 12000


@pytest.mark.parametrize("at", ["yesterday", "x" * 1_000_000, "2026-01-01T00:00:00"])
def test_an_annotation_at_is_validated_like_any_event_at(store, at):
    receipt = store.commit_many([write("s", {"type": "session/started"}, {"type": "agent/thought", "at": at})])[0]
    assert receipt["status"] == "rejected"
    assert receipt["error"]["field"] == "at" and receipt["error"]["event_index"] == 1
    assert len(json.dumps(receipt)) < 2000


def test_an_annotation_with_a_good_at_is_kept(store):
    at = "2026-01-01T00:00:00.5+02:00"
    assert store.commit(write("s", {"type": "session/started"}, {"type": "agent/thought", "at": at}))["status"] \
        == "committed"


@pytest.mark.parametrize("number", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize(("event", "field"), [
    ({"type": "call/put", "call_id": 1, "status": "completed"}, "cost"),
    ({"type": "agent/metric"}, "value"),
    ({"type": "call/put", "call_id": 1, "status": "completed", "response": None}, "response"),
])
def test_non_finite_numbers_are_rejected_wherever_a_number_is_stored(store, number, event, field):
    store.commit(write("s", {"type": "session/started"}, {"type": "call/started"}))
    receipt = store.commit_many([write("s", {**event, field: number})])[0]
    assert receipt["status"] == "rejected" and receipt["error"]["field"] == field
    assert "no JSON form" in receipt["error"]["message"]
    assert store.view("s")["calls"][0]["cost"] is None


@pytest.mark.parametrize(("raw", "field", "event_index"), [
    ({"session": "s", "events": [{"type": "session/started"}]}, "write_id", None),
    ({"write_id": "w", "events": [{"type": "session/started"}]}, "session", None),
    ({"write_id": "w", "session": "s"}, "events", None),
    ({"write_id": "w", "session": "s", "events": [{"type": "session/started"}], "extra": 1}, "extra", None),
    ({"write_id": "w", "session": "s", "events": [{"type": "message/added", "content": "x"}]}, "role", 0),
    ({"write_id": "w", "session": "s", "events": [{"type": "session/started", "titel": "x"}]}, "titel", 0),
])
def test_missing_and_unknown_field_rejections_name_the_field(store, raw, field, event_index):
    receipt = store.commit_many([raw])[0]
    assert receipt["status"] == "rejected"
    assert receipt["error"]["field"] == field and receipt["error"].get("event_index") == event_index
    assert rows(store, "SELECT field FROM rejected_writes") == [(field,)]


def test_what_a_rejection_echoes_back_is_bounded(store):
    huge = "w" * 10_000_000
    raw = {"write_id": huge, "session": huge, "events": [{"type": "message/added", "role": huge, "content": 1}]}
    receipt = store.commit_many([raw])[0]
    assert receipt["status"] == "rejected"
    assert len(json.dumps(receipt)) < 3000
    assert receipt["write_id"].startswith("w" * 200) and receipt["write_id"].endswith("…(10000000 bytes)")
    ((size,),) = rows(store, "SELECT length(write_id) + length(message) + length(error) + length(session_id)"
                             " FROM rejected_writes")
    assert size < 5000


def test_a_write_id_resent_with_the_same_content_is_a_duplicate_with_other_content_a_conflict(store):
    first = store.commit(write("s", {"type": "session/started"}, message("one"), write_id="w1"))
    again = store.commit_many([write("s", {"type": "session/started"}, message("one"), write_id="w1")])[0]
    assert again == {**first, "duplicate": True}
    other = store.commit_many([write("s", message("two"), write_id="w1"), write("s", message("three"))])
    assert [r["status"] for r in other] == ["rejected", "committed"]
    assert other[0]["error"]["type"] == "write/id-conflict" and other[0]["write_id"] == "w1"
    assert other[0]["error"]["committed_tx"] == first["tx_id"]
    assert [m["content"] for m in store.message_records("s", include_content=True)] == ["one", "three"]
    assert rows(store, "SELECT write_id, error_type FROM rejected_writes") == [("w1", "write/id-conflict")]


def test_within_one_group_a_second_write_under_the_same_id_is_a_duplicate_or_a_conflict(store):
    start = write("s", {"type": "session/started"}, write_id="a")
    receipts = store.commit_many([start, dict(start), write("s", message("other"), write_id="a")])
    assert [r["status"] for r in receipts] == ["committed", "committed", "rejected"]
    assert receipts[1]["duplicate"] and receipts[2]["error"]["type"] == "write/id-conflict"


def test_a_write_committed_before_digests_is_taken_as_the_same_content(tmp_path):
    with Store.open(tmp_path / "s") as store:
        first = store.commit(write("s", {"type": "session/started"}, write_id="old"))
    with sqlite3.connect(tmp_path / "s" / "store.sqlite") as db:  # a v2 store: no digest column
        db.executescript("ALTER TABLE writes DROP COLUMN digest;"
                         " UPDATE meta SET value = '2' WHERE key = 'schema_version';")
    with Store.open(tmp_path / "s") as store:
        assert store.schema_version == SCHEMA_VERSION
        assert rows(store, "SELECT write_id, digest FROM writes") == [("old", None)]
        again = store.commit_many([write("s", message("anything"), write_id="old")])[0]
        assert again == {**first, "duplicate": True}
