"""Validation holes (issue 12): every write gets a receipt, whatever it contains, and none fails its group.

Real store roots (SQLite files and blob files); writes as plain data, as decoded from JSON.
"""

from __future__ import annotations

import json

import pytest
from helpers import message, started, write
from sqlalchemy import text

from sessiondb.store import Settings, Store

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

