"""Deleting a session for real: what goes, what stays (tombstone), the log and the index, idempotency."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from helpers import head, message, started, write
from sqlalchemy import text

from sessiondb.store import NotFoundError, SessionDeletedError, Store, ValidationError
from sessiondb.store.index import Index
from sessiondb.store.rows.schema import SCHEMA_VERSION
from sessiondb.store.writes.facts import SCHEMA

FIXTURES = Path(__file__).parent.parent / "fixtures"
BIG = "MARKER-file-tier " * 3000  # ~51 KB: over inline_max_bytes, stored as a blob file
PER_SESSION = ["events", "messages", "turns", "evals", "calls", "snapshots", "heads", "counters"]


def count(store: Store, sql: str, **params) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def table_counts(store: Store, session: str) -> dict[str, int]:
    found = {t: count(store, f"SELECT count(*) FROM {t} WHERE session_id = :s", s=session) for t in PER_SESSION}
    found["sessions"] = count(store, "SELECT count(*) FROM sessions WHERE session_id = :s", s=session)
    found["aliases"] = count(store, "SELECT count(*) FROM aliases WHERE session_id = :s", s=session)
    found["invocations"] = count(store, "SELECT count(*) FROM invocations WHERE caller_session = :s", s=session)
    return found


def full_session(store: Store, sid: str, marker: str = "MARKER") -> None:
    """A session using every kind of row, with the marker in inline and file-tier payloads."""
    store.commit(started(sid, title=f"{marker} title"))
    store.commit(write(
        sid,
        {"type": "turn/started"},
        message(f"{marker} inline question", turn=1),
        message(BIG.replace("MARKER", marker), role="assistant", turn=1),
        message("shared between sessions", turn=1),
        {"type": "call/started", "turn": 1, "model": "m", "request": {"q": marker}},
        {"type": "call/put", "call_id": 1, "status": "completed", "response": {"a": marker}},
        {"type": "eval/added", "turn": 1, "code": f"print('{marker}')", "result": marker},
        {"type": "snapshot/added", "turn": 1, "vars": {"x": marker}},
        head("h-" + sid, None, turn=1, final=f"{marker} final", state={"s": marker}),
        {"type": "turn/put", "turn_id": 1, "status": "final", "final": f"{marker} final turn",
         "head_after": "h-" + sid},
        {"type": "alias/set", "alias": f"alias-{sid}"},
        {"type": "agent/thought", "note": marker, "payload": f"{marker} annotation payload"},
        {"type": "session/status", "status": "stopped"},
    ))


def index_dump(root: Path) -> set[tuple]:
    """The index's facts with entity ids replaced by each entity's identity (ids differ between builds)."""
    with Index.open(root) as index:
        index.catch_up()
        datoms = index.q("[:find ?e ?a ?v :where [?e ?a ?v]]")
    names: dict[int, tuple] = {}
    for e, a, v in datoms:
        if SCHEMA.get(a, {}).get(":db/unique") or a == "tombstone/session":
            names[e] = (a, v)
    refs = {a for a, spec in SCHEMA.items() if spec.get(":db/valueType") == ":db.type/ref"}
    return {(names.get(e, e), a, names.get(v, v) if a in refs else v) for e, a, v in datoms}


def test_a_delete_removes_every_row_and_leaves_a_tombstone(store):
    full_session(store, "a")
    full_session(store, "b", marker="OTHER")
    before_b = store.view("b")
    assert all(table_counts(store, "a")[t] > 0 for t in ("events", "messages", "heads", "aliases", "sessions"))
    receipt = store.delete_session("alias-a", reason="user asked")
    assert receipt["status"] == "committed" and receipt["deleted"] == ["a"]
    assert receipt["payloads"] > 0 and receipt["bytes_freed"] > len(BIG)
    assert receipt["counts"]["a"]["messages"] == 3
    assert set(table_counts(store, "a").values()) == {0}
    assert count(store, "SELECT count(*) FROM rejected_writes WHERE session_id = 'a'") == 0
    stone = store.tombstone("a")
    assert stone["reason"] == "user asked" and stone["counts"]["messages"] == 3 and stone["mode"] == "plain"
    assert stone["bytes_freed"] == receipt["bytes_freed"]
    # views say deleted, not unknown; the alias went with it
    with pytest.raises(SessionDeletedError) as caught:
        store.view("a")
    assert caught.value.kind == "session/deleted" and caught.value.data["reason"] == "user asked"
    with pytest.raises(SessionDeletedError):
        store.history_view("a")
    with pytest.raises(NotFoundError):
        store.view("alias-a")
    # the other session, which shares one payload, is untouched
    assert store.view("b") == before_b
    assert "shared between sessions" in [m["content"] for m in store.message_records("b", include_content=True)]


def test_a_deleted_id_is_never_reused(store):
    full_session(store, "a")
    store.delete_session("a")
    for again in (started("a"), write("a", message("late"))):
        [receipt] = store.commit_many([again])
        assert receipt["status"] == "rejected" and receipt["error"]["type"] == "session/deleted"
    with pytest.raises(SessionDeletedError):
        store.delete_session("a")
    assert count(store, "SELECT count(*) FROM sessions WHERE session_id = 'a'") == 0
    # the two writes and the second delete
    assert count(store, "SELECT count(*) FROM rejected_writes WHERE error_type = 'session/deleted'") == 3


def test_write_ids_of_a_deleted_session_still_answer_as_duplicates(store):
    first = started("a", title="t")
    store.commit(first)
    receipt = store.delete_session("a", write_id="del-1")
    again = store.commit_many([first, {"write_id": "del-1", "session": "a",
                                       "events": [{"type": "session/deleted", "cascade": False, "detach": False}]}])
    assert again[0]["duplicate"] and again[0]["session_deleted"] and "event_ids" not in again[0]
    assert again[1]["duplicate"] and again[1]["tx_id"] == receipt["tx_id"]
    other = dict(first, events=[{"type": "session/started", "title": "other"}])
    [conflict] = store.commit_many([other])
    assert conflict["error"]["type"] == "write/id-conflict"


@pytest.mark.sqlite_only("reads the derived index or store.sqlite directly: Index(root) on SQLite")
def test_dry_run_changes_nothing_and_counts_what_would_go(store):
    full_session(store, "a")
    with open(store.root / "store.sqlite", "rb") as f:
        before = f.read()
    counts = table_counts(store, "a")
    plan = store.delete_session("a", dry_run=True)
    assert plan["status"] == "dry-run" and plan["sessions"] == ["a"]
    assert plan["counts"]["messages"] == 3 and plan["payloads"] > 0 and plan["bytes_freed"] > len(BIG)
    assert table_counts(store, "a") == counts and store.tombstone("a") is None
    with open(store.root / "store.sqlite", "rb") as f:
        assert f.read() == before
    receipt = store.delete_session("a")
    assert (receipt["payloads"], receipt["bytes_freed"]) == (plan["payloads"], plan["bytes_freed"])
    assert receipt["counts"]["a"]["messages"] == plan["counts"]["messages"]


def test_a_delete_is_alone_in_its_write_and_validated(store):
    store.commit(started("a"))
    bad = [write("a", {"type": "session/deleted"}, message("x")),
           write("a", {"type": "session/deleted", "cascade": True, "detach": True}),
           write("a", {"type": "session/deleted", "force": True})]
    for receipt in store.commit_many(bad):
        assert receipt["status"] == "rejected" and receipt["error"]["type"] == "write/invalid"
    with pytest.raises(ValidationError):
        store.delete_session("a", cascade=True, detach=True)
    with pytest.raises(NotFoundError):
        store.delete_session("nobody")
    assert store.view("a")["session"]["status"] == "running"


def test_writes_before_and_after_a_delete_in_one_group(store):
    store.commit(started("a"))
    receipts = store.commit_many([
        write("a", message("MARKER before")),
        {"write_id": "d", "session": "a", "events": [{"type": "session/deleted"}]},
        write("a", message("after")),
        started("c"),
    ])
    assert [r["status"] for r in receipts] == ["committed", "committed", "rejected", "committed"]
    assert receipts[1]["counts"]["a"]["messages"] == 1
    assert receipts[2]["error"]["type"] == "session/deleted"
    assert store.view("c")["session"]["session_id"] == "c"


def test_tx_log_keeps_ids_and_order_but_loses_the_facts(store):
    full_session(store, "a")
    store.commit(started("b"))
    with store.engine.connect() as conn:
        txs = [tuple(r) for r in conn.execute(text("SELECT tx_id, write_id, session_id FROM tx ORDER BY tx_id"))]
    store.delete_session("a")
    with store.engine.connect() as conn:
        after = [tuple(r) for r in conn.execute(text("SELECT tx_id, write_id, session_id FROM tx ORDER BY tx_id"))]
        facts = b"".join(f for (f,) in conn.execute(text("SELECT facts FROM tx WHERE session_id = 'a' AND tx_id <= :t"),
                                                    {"t": txs[-1][0]}))
    assert after[: len(txs)] == txs and len(after) == len(txs) + 1
    assert b"MARKER" not in facts and b'"message/key"' not in facts and b'"a/1"' not in facts
    assert b'{"session/id":"a"}' in facts  # the bare identity facts that stay refer to


@pytest.mark.sqlite_only("reads the derived index or store.sqlite directly: Index(root) on SQLite")
def test_index_applies_the_excision_and_a_rebuild_gives_the_same_index(store):
    full_session(store, "a")
    full_session(store, "b", marker="OTHER")
    root = store.root
    with Index.open(root) as index:
        index.catch_up()
        assert index.q('[:find ?e . :where [?e :message/key "a/1"]]') is not None
    store.delete_session("a")
    incremental = index_dump(root)
    assert not [d for d in incremental if "a/" in str(d[0]) or "MARKER" in str(d)]
    assert (("session/id", "a"), "session/id", "a") in incremental
    with Index.open(root) as index:
        index.rebuild()
        assert index.quarantined() == []
    assert index_dump(root) == incremental


@pytest.mark.sqlite_only("reads the derived index or store.sqlite directly: Index(root) on SQLite")
def test_the_index_check_is_clean_after_a_delete(store):
    from sessiondb.store.integrity.consistency import check_consistency

    full_session(store, "a")
    full_session(store, "b", marker="OTHER")
    store.delete_session("a")
    with Index.open(store.root) as index:
        index.catch_up()
    report = check_consistency(store)
    assert report.ok, report.findings


def test_a_v4_store_migrates_to_v5(tmp_path):
    root = tmp_path / "store-v3"
    shutil.copytree(FIXTURES / "store-v3", root)
    with Store.open(root) as store:
        assert store.schema_version == SCHEMA_VERSION == 5
        store.delete_session("alpha")
        assert store.tombstone("alpha")["mode"] == "plain"
    # a v4 store (as the previous version left it: no tombstones, no tx index)
    with sqlite3.connect(root / "store.sqlite") as db:
        db.execute("DROP TABLE tombstones")
        db.execute("DROP INDEX ix_tx_session")
        db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    with Store.open(root) as store:
        assert store.schema_version == 5
        with store.engine.connect() as conn:
            names = {n for (n,) in conn.execute(text("SELECT name FROM sqlite_master"))}
        assert {"tombstones", "ix_tx_session"} <= names
        assert store.tombstone("alpha") is None  # the v4 store lost it: a tombstone lives in v5's table
        store.delete_session("beta")
        assert store.tombstone("beta") is not None
