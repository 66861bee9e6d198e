"""Session writes: every event type, ids, conflicts, idempotency, group commit, bad input."""

from __future__ import annotations

import pytest
from helpers import head, message, started, write
from sqlalchemy import text

from sessiondb.store import (
    AliasConflictError,
    ConflictError,
    HeadConflictError,
    NotFoundError,
    Store,
    ValidationError,
    receipt_counts,
)


def rows(store: Store, sql: str) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_every_event_type_is_applied_and_audited(store):
    store.commit(started("child"))
    receipt = store.commit(write(
        "s1",
        {"type": "session/started", "title": "agent"},
        {"type": "turn/started"},
        message("question", turn=1),
        {"type": "call/started", "turn": 1, "model": "m1", "provider": "p", "request": {"q": 1}},
        {"type": "call/put", "call_id": 1, "status": "completed", "input_tokens": 10, "output_tokens": 5,
         "cost": 0.01, "response": {"a": 2}},
        {"type": "eval/added", "turn": 1, "code": "1+1", "result": 2},
        message("answer", role="assistant", turn=1, call=1),
        {"type": "snapshot/added", "turn": 1, "vars": {"x": 1, "y": 2}},
        head("h1", None, turn=1, snapshot=1, final="done"),
        {"type": "turn/put", "turn_id": 1, "status": "final", "final": "done", "head_after": "h1"},
        {"type": "invocation/started", "invocation_id": "inv1", "callee": "child", "input": [1, 2]},
        {"type": "invocation/completed", "invocation_id": "inv1", "final": 3},
        {"type": "invocation/started", "invocation_id": "inv2", "callee": "child"},
        {"type": "invocation/failed", "invocation_id": "inv2", "error": "boom"},
        {"type": "alias/set", "alias": "my-agent"},
        {"type": "session/status", "status": "stopped"},
        {"type": "session/error", "error": {"trace": "x"}},
        {"type": "agent/thought", "note": "thinking", "payload": "long text"},
    ))
    assert receipt["status"] == "committed"
    assert receipt["event_ids"] == list(range(1, 19))  # one event id per event, stamped in order
    assert receipt["ids"] == {"turn": [1], "message": [1, 2], "call": [1], "eval": [1], "snapshot": [1],
                              "head": ["h1"]}
    assert receipt["heads"] == [{"session": "s1", "from": None, "to": "h1"}]
    v = store.view("my-agent")
    assert v["session"]["status"] == "error" and v["session"]["error_blob"]
    assert [m["role"] for m in v["messages"]] == ["user", "assistant"]
    assert v["turns"][0]["status"] == "final" and v["turns"][0]["head_after"] == "h1"
    assert v["calls"][0]["output_tokens"] == 5 and v["calls"][0]["status"] == "completed"
    assert v["evals"][0]["result_blob"] and v["snapshots"][0]["var_count"] == 2
    assert [(i["invocation_id"], i["status"]) for i in v["invocations"]] == [("inv1", "completed"),
                                                                            ("inv2", "failed")]
    types = [e["type"] for e in store.event_view("s1")]
    assert types[-1] == "agent/thought" and types.count("invocation/started") == 2
    meta = [e for e in store.history_view("s1")["events"] if e["type"] == "agent/thought"][0]["meta_blob"]
    assert b"thinking" in store.blob(meta)


def test_payloads_are_content_addressed_and_deduplicated(store):
    same_value_twice = [message({"b": 1, "a": [1, 2]}), message({"a": [1, 2], "b": 1})]
    store.commit(write("s", {"type": "session/started"}, *same_value_twice))
    blobs = {m["content_blob"] for m in store.message_records("s")}
    assert len(blobs) == 1  # same value, same canonical bytes, same id
    assert store.blob(blobs.pop()) == b'{"a":[1,2],"b":1}'
    assert rows(store, "SELECT count(*) FROM blobs WHERE kind='message'") == [(1,)]


def test_message_records_return_content_when_asked(store):
    store.commit(write("s", {"type": "session/started"}, message("héllo"), message({"k": [1]}, role="assistant")))
    records = store.message_records("s", include_content=True)
    assert [r["content"] for r in records] == ["héllo", {"k": [1]}]
    assert "content" not in store.message_records("s")[0]


def test_given_ids_are_kept_and_missing_ones_continue_above_the_high_water_mark(store):
    store.commit(write("s", {"type": "session/started"}, message(message_id=10), message()))
    assert [m["message_id"] for m in store.message_records("s")] == [10, 11]
    assert store.high_water_counters("s")["message"] == 11


def test_resending_an_identical_entity_is_a_no_op(store):
    store.commit(write("s", {"type": "session/started"}, message("same", message_id=1)))
    receipt = store.commit(write("s", message("same", message_id=1)))
    assert receipt["event_ids"] == []
    assert len(store.message_records("s")) == 1


def test_reusing_an_id_with_different_content_is_a_conflict(store):
    store.commit(write("s", {"type": "session/started"}, message("one", message_id=1)))
    with pytest.raises(ConflictError, match="message s/1 already exists with a different content_blob"):
        store.commit(write("s", message("two", message_id=1)))


def test_a_write_id_is_applied_once_and_its_receipt_returned_again(store):
    store.commit(started("s"))
    first = store.commit(write("s", message("x"), write_id="dup"))
    again = store.commit(write("s", message("x"), write_id="dup"))
    assert "duplicate" not in first
    assert again == {**first, "duplicate": True}  # the original tx id, ids and time; status stays committed
    assert len(store.message_records("s")) == 1


def test_duplicate_write_ids_inside_one_group_apply_once(store):
    store.commit(started("s"))
    receipts = store.commit_many([write("s", message("x"), write_id="d")] * 3)
    assert [r["tx_id"] for r in receipts] == [receipts[0]["tx_id"]] * 3
    assert [r.get("duplicate", False) for r in receipts] == [False, True, True]
    assert receipt_counts(receipts) == {"committed": 1, "duplicate": 2, "rejected": 0}
    assert len(store.message_records("s")) == 1


def test_group_commit_rejects_a_bad_write_alone(store):
    store.commit(started("s"))
    receipts = store.commit_many([
        write("s", message("a"), write_id="good1"),
        write("s", message("b"), {"type": "turn/put", "turn_id": 99, "status": "final"}, write_id="bad"),
        write("s", message("c"), write_id="good2"),
    ])
    assert [r["status"] for r in receipts] == ["committed", "rejected", "committed"]
    assert receipts[1]["error"] == {"type": "not-found", "message": "turn 's/99' not found", "what": "turn",
                                    "name": "s/99", "event_index": 1}
    # the bad write's first event (message "b") left no trace; ids stay dense
    contents = [r["content"] for r in store.message_records("s", include_content=True)]
    assert contents == ["a", "c"]
    assert [m["message_id"] for m in store.message_records("s")] == [1, 2]
    assert rows(store, "SELECT write_id, error_type, event_index FROM rejected_writes") == [("bad", "not-found", 1)]


@pytest.mark.parametrize(("typo", "meant"), [("message/addd", "message/added"), ("head/create", "head/created"),
                                             ("session/strated", "session/started"),
                                             ("ref/updated", "session/ref-updated"), ("call/puts", "call/put")])
def test_an_unknown_type_in_a_namespace_the_store_owns_is_rejected_naming_the_closest(tmp_path, typo, meant):
    # The user's message was committed as an annotation nobody reads; now the write is refused.
    with Store.open(tmp_path / "st") as store:
        store.commit(started("s"))
        bad = {"write_id": "w-typo", "session": "s",
               "events": [message("kept?"), {"type": typo, "role": "user", "content": "hello"}]}
        [receipt] = store.commit_many([bad])
        assert receipt["status"] == "rejected"
        error = receipt["error"]
        assert (error["type"], error["write_id"], error["event_index"], error["field"]) == (
            "write/invalid", "w-typo", 1, "type")
        assert f"did you mean {meant}?" in error["message"] and error["suggestion"] == meant
        with pytest.raises(ValidationError, match=f"write 'w-typo', event 1, field 'type'.*did you mean {meant}"):
            store.commit(bad)
        assert store.message_records("s") == [] and len(store.event_view("s")) == 1  # all or nothing
        assert rows(store, "SELECT write_id, error_type, field FROM rejected_writes")[0] == (
            "w-typo", "write/invalid", "type")


def test_annotations_use_any_namespace_the_store_does_not_own(store):
    receipt = store.commit(write("s", {"type": "session/started"}, {"type": "agent/thought", "note": "hmm"},
                                 {"type": "messages/added", "role": "user", "content": "not ours"}))
    assert receipt["status"] == "committed"
    assert [e["type"] for e in store.event_view("s")] == ["session/started", "agent/thought", "messages/added"]


@pytest.mark.parametrize(
    ("bad", "field", "why"),
    [
        ({"write_id": "x", "session": "../etc", "events": [{"type": "session/started"}]}, "session", "letters, digits"),
        ({"write_id": "x", "session": "s", "events": []}, "events", "at least one"),
        ({"write_id": "x", "session": "s", "events": [{"type": "message/added", "role": 1, "content": "c"}]},
         "role", "Expected `str`"),
        ({"write_id": "x", "session": "s", "events": [{"type": "message/added", "role": "user"}]},
         None, "missing required field `content`"),
        ({"write_id": "x", "session": "s", "events": [{"type": "message/added", "role": "user", "content": "c",
                                                        "colour": "red"}]}, None, "unknown field `colour`"),
        ({"write_id": "x", "session": "s", "events": [{"type": "message/added", "role": "user", "content": "c",
                                                        "message_id": -3}]}, "message_id", ">= 1"),
        ({"write_id": "x", "session": "s", "events": [{"role": "user"}]}, "type", "needs a 'type'"),
        ({"write_id": "x", "session": "s", "events": [{"type": "message/added", "role": "user",
                                                        "content": "bad \udc80 text"}]}, "content", "UTF-8"),
        ({"write_id": "x", "session": "s", "events": [{"type": "message/added", "role": "user",
                                                        "content": float("nan")}]}, "content", "no JSON form"),
        ({"write_id": "x", "session": "s", "events": [{"type": "head/created", "head_id": "a/b"}]},
         "head_id", "letters, digits"),
        ({"write_id": "x", "session": "s", "events": [{"type": "head/created", "head_id": "h"}]},
         "expected_head", "expected_head"),
        ({"session": "s", "events": [{"type": "session/started"}]}, None, "write_id"),
        ("not a write", None, "Expected `object`"),
    ],
)
def test_malformed_writes_are_rejected_with_a_specific_error(store, bad, field, why):
    store.commit(started("s"))
    [receipt] = store.commit_many([bad])
    assert receipt["status"] == "rejected"
    assert receipt["error"]["type"] == "write/invalid"
    assert why in receipt["error"]["message"]
    if field:
        assert receipt["error"]["field"] == field
    assert len(store.event_view("s")) == 1  # nothing else was written


def test_deeply_nested_and_oversized_payloads_are_rejected(tmp_path):
    from sessiondb.store import Settings

    with Store.open(tmp_path / "st", Settings(root=str(tmp_path / "st"), max_payload_bytes=1000)) as store:
        store.commit(started("s"))
        deep: object = 1
        for _ in range(200):
            deep = [deep]
        big, nested = store.commit_many([write("s", message("x" * 1001)), write("s", message(deep))])
        assert "at most 1000" in big["error"]["message"] and big["error"]["field"] == "content"
        assert "nested deeper than 64" in nested["error"]["message"]


def test_events_before_the_session_exists_are_rejected(store):
    with pytest.raises(NotFoundError, match="session 'ghost' not found"):
        store.commit(write("ghost", message()))


def test_head_compare_and_set_reports_the_actual_head(store):
    store.commit(write("s", {"type": "session/started"}, head("h1", None), head("h2", "h1")))
    with pytest.raises(HeadConflictError) as info:
        store.commit(write("s", message("late"), head("h3", "h1")))
    assert info.value.data["actual_head"] == "h2" and info.value.data["expected_head"] == "h1"
    assert store.current_head_id("s") == "h2"
    assert len(store.message_records("s")) == 0  # the whole write was rejected


def test_a_head_of_another_session_cannot_become_current(store):
    store.commit(write("a", {"type": "session/started"}, head("ha", None)))
    store.commit(write("b", {"type": "session/started"}, head("hb", None)))
    with pytest.raises(ConflictError, match="belongs to session 'a'"):
        store.commit(write("b", {"type": "session/ref-updated", "head": "ha", "expected_head": "hb"}))


def test_aliases_are_unique_and_never_shadow_session_ids(store):
    store.commit(started("s1"))
    store.commit(started("s2"))
    store.write_alias("main", "s1")
    assert store.write_alias("main", "s1")["status"] == "committed"  # idempotent
    with pytest.raises(AliasConflictError, match="already names session 's1'"):
        store.write_alias("main", "s2")
    with pytest.raises(AliasConflictError, match="is a session id"):
        store.write_alias("s2", "s1")
    with pytest.raises(AliasConflictError, match="is already an alias"):
        store.commit(started("main"))
    with pytest.raises(NotFoundError):
        store.write_alias("other", "nobody")
    assert store.view("main")["session"]["session_id"] == "s1"


def test_invocation_outcomes_belong_to_the_caller(store):
    store.commit(started("caller"))
    store.commit(started("callee"))
    store.commit(write("caller", {"type": "invocation/started", "invocation_id": "i1", "callee": "callee"}))
    with pytest.raises(ConflictError, match="write its outcome there"):
        store.commit(write("callee", {"type": "invocation/completed", "invocation_id": "i1"}))
    with pytest.raises(NotFoundError, match="session 'nobody'"):
        store.commit(write("caller", {"type": "invocation/started", "invocation_id": "i2", "callee": "nobody"}))
    history = store.history_view("callee")
    assert [i["invocation_id"] for i in history["invocations"]] == ["i1"]


def test_each_write_appends_one_transaction_batch_of_facts(store):
    import msgspec

    store.commit(started("s"))
    receipt = store.commit(write("s", message("hello")))
    [(tx_id, facts)] = rows(store, f"SELECT tx_id, facts FROM tx WHERE tx_id = {receipt['tx_id']}")
    entities = msgspec.json.decode(facts)
    message_entity = next(e for e in entities if e.get("message/role") == "user")
    assert message_entity["message/session"] == ["session/id", "s"]
    assert message_entity["message/content"] == ["blob/id", receipt["blobs"][0]]
    assert any(e.get("blob/id") == receipt["blobs"][0] and e.get("blob/size") == 5 for e in entities)
    assert rows(store, "SELECT count(*) FROM tx") == [(2,)]


def test_a_store_written_by_a_newer_version_is_refused(tmp_path):
    from sessiondb.store import SchemaVersionError

    Store.open(tmp_path / "st").close()
    import sqlite3

    with sqlite3.connect(tmp_path / "st" / "store.sqlite") as db:
        db.execute("UPDATE meta SET value='999' WHERE key='schema_version'")
    with pytest.raises(SchemaVersionError, match="schema version 999"):
        Store.open(tmp_path / "st")


def test_a_write_that_fails_inside_the_database_is_isolated_by_its_own_savepoint(store, backend, request):
    # A real database failure the planner cannot foresee: a trigger that aborts one insert.
    store.commit(started("s"))
    with store.engine.begin() as conn:
        if backend == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON messages WHEN NEW.chars = 13 "
                "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END")
        else:  # the test database is shared by the tests (emptied, not dropped): drop it after
            conn.exec_driver_sql(
                "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.chars = 13 THEN"
                " RAISE EXCEPTION 'refused by trigger'; END IF; RETURN NEW; END $$")
            conn.exec_driver_sql("CREATE TRIGGER boom BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION boom()")

            def drop() -> None:
                with store.engine.begin() as c:
                    c.exec_driver_sql("DROP TRIGGER boom ON messages")
                    c.exec_driver_sql("DROP FUNCTION boom()")
            request.addfinalizer(drop)
    receipts = store.commit_many([
        write("s", message("fine"), write_id="a"),
        write("s", message("thirteen char"), write_id="b"),
        write("s", message("also fine"), write_id="c"),
    ])
    assert [r["status"] for r in receipts] == ["committed", "rejected", "committed"]
    assert receipts[1]["error"]["type"] == "write/failed"
    assert "refused by trigger" in receipts[1]["error"]["message"]
    assert [r["content"] for r in store.message_records("s", include_content=True)] == ["fine", "also fine"]
    assert rows(store, "SELECT write_id FROM rejected_writes") == [("b",)]


def test_a_leftover_file_at_a_new_blobs_name_is_replaced_by_the_real_bytes(tmp_path):
    # a crash after a blob was published but before its row committed leaves such a file
    from sessiondb.store.blobs.canonical import blob_id
    from sessiondb.store.settings import Settings

    store = Store.open(tmp_path / "s", Settings.from_env(root=str(tmp_path / "s"), inline_max_bytes=0))
    store.commit(started("s"))
    bid = blob_id(b"fresh content")
    path = store.blobs.path(bid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half-written")
    store.commit(write("s", message("fresh content")))
    assert store.blob(bid) == b"fresh content"
    assert [p.read_bytes() for p in (store.root / "quarantine").iterdir()] == [b"half-written"]
