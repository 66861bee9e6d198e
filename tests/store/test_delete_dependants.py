"""Deleting a session others depend on: refused with the list, cascade, or detach (views unchanged)."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec
import pytest
from helpers import head, message, write
from sqlalchemy import text

from sessiondb.store import DependantsError, SessionDeletedError, Store
from sessiondb.store.integrity.consistency import check_consistency

sys.path.insert(0, str(Path(__file__).parent))
from test_delete import index_dump  # noqa: E402


def rows(store: Store, sql: str) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def snapshot(store: Store, names: list[str]) -> bytes:
    """Every view a dependant offers, as bytes: current branch, each head's view, contents."""
    out = {}
    for name in names:
        out[name] = store.view(name)
        out[name + "/contents"] = store.message_records(name, include_content=True)
        for h in store.view(name)["heads"]:
            if h["session_id"] == name:
                out[f"{name}#{h['head_id']}"] = store.view(name, h["head_id"])
    return msgspec.json.encode(out, order="sorted")


@pytest.fixture
def family(store):
    """s: m1 h1 m2 h2 m3 h3; f1 forks s#h1 (own message, head f1h); f2 forks f1#f1h; c is an attached child
    of s; k invokes s."""
    store.commit(write("s", {"type": "session/started"}, message("s m1"), head("h1", None)))
    store.commit(write("s", message("s m2"), head("h2", "h1")))
    store.commit(write("s", message("s m3 only in s"), head("h3", "h2")))
    store.commit(write("f1", {"type": "session/started"}, {"type": "session/restored", "kind": "fork",
                                                            "source_head": "h1"},
                       message("f1 own"), head("f1h", None)))
    store.commit(write("f2", {"type": "session/started"}, {"type": "session/restored", "kind": "fork",
                                                            "source_head": "f1h"}, message("f2 own")))
    return store


def test_a_source_with_forks_is_refused_with_its_dependants(family):
    store = family
    before = snapshot(store, ["s", "f1", "f2"])
    with pytest.raises(DependantsError) as caught:
        store.delete_session("s")
    assert caught.value.kind == "session/has-dependants"
    assert {d["session"] for d in caught.value.dependants} == {"f1", "f2"}
    assert snapshot(store, ["s", "f1", "f2"]) == before and store.tombstone("s") is None
    plan = store.delete_session("s", dry_run=True)
    assert plan["refused"]["type"] == "session/has-dependants" and len(plan["dependants"]) == 2


def test_every_kind_of_dependant_is_found(family):
    store = family
    store.commit(write("c", {"type": "session/started", "kind": "child", "parent": "s"},
                       {"type": "session/restored", "kind": "attached-child", "source": "s", "source_head": "h2"}))
    store.commit(write("k", {"type": "session/started"},
                       {"type": "invocation/started", "invocation_id": "i1", "callee": "s"}))
    store.commit(write("p", {"type": "session/started"}, {"type": "call/started", "child_session": "s"}))
    with pytest.raises(DependantsError) as caught:
        store.delete_session("s")
    assert {d["session"]: d["why"] for d in caught.value.dependants} == {
        "c": "derived from it (attached-child)", "f1": "inherits its rows (fork)", "f2": "inherits its rows (fork)",
        "k": "invocation", "p": "calls it as a child session"}


def test_cascade_deletes_the_dependants_transitively(family):
    store = family
    receipt = store.delete_session("s", cascade=True, reason="gdpr")
    assert receipt["deleted"] == ["s", "f1", "f2"] and receipt["mode"] == "cascade"
    for name in ("s", "f1", "f2"):
        with pytest.raises(SessionDeletedError):
            store.view(name)
    assert store.tombstone("f2")["reason"] == "cascade from 's': gdpr"
    assert rows(store, "SELECT count(*) FROM messages") == [(0,)]
    assert rows(store, "SELECT count(*) FROM derivations") == [(0,)]
    assert check_consistency(store).ok


def test_detach_keeps_every_dependant_view_byte_identical(family):
    store = family
    before = snapshot(store, ["f1", "f2"])
    receipt = store.delete_session("s", detach=True)
    assert receipt["deleted"] == ["s"] and receipt["mode"] == "detach"
    assert snapshot(store, ["f1", "f2"]) == before
    # what no dependant reads is gone: s's m2, m3 and their heads; m1 and h1 stay for the forks
    assert rows(store, "SELECT message_id FROM messages WHERE session_id = 's'") == [(1,)]
    assert rows(store, "SELECT head_id FROM heads WHERE session_id = 's'") == [("h1",)]
    assert rows(store, "SELECT count(*) FROM events WHERE session_id = 's'") == [(0,)]
    with pytest.raises(SessionDeletedError):
        store.view("s")
    assert check_consistency(store).ok
    # a fork of a fork: detach the middle one, the last one still reads the same
    store.delete_session("f1", detach=True)
    assert msgspec.json.decode(snapshot(store, ["f2"]))["f2"] == msgspec.json.decode(before)["f2"]
    assert check_consistency(store).ok
    # the last reader goes: every kept row of the deleted sources goes with it
    receipt = store.delete_session("f2")
    assert sorted(receipt["pruned"]) == ["f1", "s"]
    assert rows(store, "SELECT count(*) FROM messages") == [(0,)]
    assert rows(store, "SELECT count(*) FROM heads") == [(0,)]
    assert rows(store, "SELECT count(*) FROM counters") == [(0,)]
    assert rows(store, "SELECT count(*) FROM blob_bytes") == [(0,)]
    assert check_consistency(store).ok


@pytest.mark.sqlite_only("reads the derived index or store.sqlite directly: Index(root) on SQLite")
def test_detach_keeps_the_index_equal_to_a_rebuild(family):
    store = family
    index_dump(store.root)  # indexed before the delete
    store.delete_session("s", detach=True)
    incremental = index_dump(store.root)
    assert (("message/key", "s/1"), "message/role", "user") in incremental  # kept for the forks
    assert not [d for d in incremental if d[0] == ("message/key", "s/3")]
    from sessiondb.store.index import Index

    with Index.open(store.root) as index:
        index.rebuild()
        assert index.quarantined() == []
    assert index_dump(store.root) == incremental


def test_detach_leaves_the_other_party_of_an_invocation_unchanged(family):
    store = family
    store.commit(write("k", {"type": "session/started"},
                       {"type": "invocation/started", "invocation_id": "i1", "callee": "f2", "input": "go"},
                       {"type": "invocation/completed", "invocation_id": "i1", "final": "done"}))
    store.commit(write("c", {"type": "session/started", "kind": "child", "parent": "k"},
                       {"type": "session/restored", "kind": "attached-child", "source": "k"}))
    before = snapshot(store, ["k", "c"])
    store.delete_session("f2", detach=True)
    assert snapshot(store, ["k", "c"]) == before
    store.delete_session("k", detach=True)
    assert snapshot(store, ["c"]) == msgspec.json.encode({key: value for key, value in
                                                          msgspec.json.decode(before).items() if key.startswith("c")},
                                                         order="sorted")
    assert check_consistency(store).ok


@pytest.mark.sqlite_only("reads the derived index or store.sqlite directly: Index(root) on SQLite")
def test_check_finds_what_a_deleted_session_left_behind(family):
    from sessiondb.store.index import Index

    store = family
    store.commit(write("x", {"type": "session/started", "title": "x"}, message("x own"), message("X ONLY " * 9000)))
    index_dump(store.root)
    big = [m for m in store.message_records("x") if m["chars"] > 40_000][0]["content_blob"]
    data = store.blob(big)
    store.delete_session("x")
    with Index.open(store.root) as index:
        index.catch_up()
    assert check_consistency(store).ok
    # put back what a buggy delete could have left: a row, a fact, the payload
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO aliases (name, session_id, at) VALUES ('ghost', 'x', '2026-01-01T00:00:00Z')"))
        tx_id = conn.execute(text("SELECT min(tx_id) FROM tx WHERE session_id = 'x'")).scalar()
        conn.execute(text("UPDATE tx SET facts = :f WHERE tx_id = :t"),
                     {"f": b'[{"session/id": "x", "session/title": "x"}]', "t": tx_id})
    store.blobs.put_many({big: data})
    found = {(f.type, f.data["what"]) for f in check_consistency(store).findings}
    assert found == {("forget/left-behind", "rows"), ("forget/left-behind", "facts"),
                     ("forget/left-behind", "payloads")}
