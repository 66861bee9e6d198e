"""Heads and branches: immutable heads, resume to an older head, forks, attach, views by head."""

from __future__ import annotations

import pytest
from helpers import head, message, write
from sqlalchemy import text

from sessiondb.store import CorruptBlobError, NotFoundError, Store
from sessiondb.store.settings import Settings


def contents(store: Store, session: str) -> list[str]:
    return [m["content"] for m in store.message_records(session, include_content=True)]


@pytest.fixture
def three_heads(store):
    """s: m1 h1 m2 h2 m3 h3, current head h3."""
    store.commit(write("s", {"type": "session/started"}, message("m1"), head("h1", None)))
    store.commit(write("s", message("m2"), head("h2", "h1")))
    store.commit(write("s", message("m3"), head("h3", "h2")))
    return store


def test_view_of_a_head_shows_exactly_its_state(three_heads):
    store = three_heads
    assert [m["message_id"] for m in store.view("s", head="h2")["messages"]] == [1, 2]
    assert [h["head_id"] for h in store.view("s#h1")["heads"]] == ["h1"]
    assert store.view("s")["head"] == "h3"


def test_resume_abandons_the_newer_branch_but_history_keeps_it(three_heads):
    store = three_heads
    receipt = store.commit(write("s", {"type": "session/restored", "kind": "resume", "source_head": "h1",
                                       "expected_head": "h3"}, message("m4 on the new branch")))
    assert receipt["heads"] == [{"session": "s", "from": "h3", "to": "h1"}]
    assert contents(store, "s") == ["m1", "m4 on the new branch"]
    new = store.message_records("s")[-1]
    assert new["message_id"] == 4  # above the high-water mark, never reusing abandoned ids
    assert [h["head_id"] for h in store.view("s")["heads"]] == ["h1"]
    history = store.history_view("s")
    assert [h["head_id"] for h in history["heads"]] == ["h1", "h2", "h3"]
    assert len(store.message_records("s", all_branches=True)) == 4
    assert [d["kind"] for d in history["derivations"]] == ["resume"]
    # a head on the new branch records both ranges: the old prefix and the new tail
    store.commit(write("s", head("h4", "h1")))
    assert [m["message_id"] for m in store.view("s#h4")["messages"]] == [1, 4]
    assert [h["head_id"] for h in store.view("s#h4")["heads"]] == ["h1", "h4"]
    # the abandoned head is still readable as it was
    assert [m["message_id"] for m in store.view("s#h3")["messages"]] == [1, 2, 3]


def test_resume_is_compare_and_set(three_heads):
    from sessiondb.store import HeadConflictError

    with pytest.raises(HeadConflictError):
        three_heads.commit(write("s", {"type": "session/restored", "kind": "resume", "source_head": "h1",
                                       "expected_head": "h2"}))
    assert three_heads.current_head_id("s") == "h3"


def test_ref_update_moves_the_branch_without_a_derivation(three_heads):
    store = three_heads
    store.commit(write("s", {"type": "session/ref-updated", "head": "h2", "expected_head": "h3"}))
    assert contents(store, "s") == ["m1", "m2"]
    assert store.history_view("s")["derivations"] == []


def test_fork_shows_inherited_rows_without_copying_them(three_heads):
    store = three_heads
    store.commit(write("f", {"type": "session/started"},
                       {"type": "session/restored", "kind": "fork", "source_head": "h2"},
                       message("fork's own")))
    v = store.view("f")
    assert [(m["session_id"], m["message_id"]) for m in v["messages"]] == [("s", 1), ("s", 2), ("f", 1)]
    assert v["inherited"] == ["s"]
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM messages WHERE session_id='f'")).scalar() == 1
    # the source goes on without the fork seeing it
    store.commit(write("s", message("s after fork")))
    assert contents(store, "f") == ["m1", "m2", "fork's own"]
    # a head of the fork pins the inherited rows too
    store.commit(write("f", head("fh1", None)))
    assert [m["message_id"] for m in store.view("f#fh1")["messages"]] == [1, 2, 1]
    assert store.attached_from("f")["source_head"] == "h2"
    assert [d["target_session"] for d in store.history_view("s")["derivations"]] == ["f"]


def test_fork_of_a_fork_inherits_transitively(three_heads):
    store = three_heads
    store.commit(write("f1", {"type": "session/started"},
                       {"type": "session/restored", "kind": "fork", "source_head": "h1"},
                       message("f1 own"), head("f1h", None)))
    store.commit(write("f2", {"type": "session/started"},
                       {"type": "session/restored", "kind": "fork", "source_head": "f1h"}, message("f2 own")))
    assert contents(store, "f2") == ["m1", "f1 own", "f2 own"]


def test_attached_child_and_continue(three_heads):
    store = three_heads
    store.commit(write("c", {"type": "session/started", "kind": "child", "parent": "s"},
                       {"type": "session/restored", "kind": "attached-child", "source": "s", "source_head": "h2"}))
    assert store.attached_from("c")["kind"] == "attached-child"
    assert store.view("c")["messages"] == []  # an attached child starts empty
    store.commit(write("k", {"type": "session/started"}, {"type": "session/restored", "kind": "continue",
                                                          "source": "s"}))
    assert contents(store, "k") == ["m1", "m2", "m3"]  # continues from the source's current head
    assert store.attached_from("s") is None


def test_unknown_session_and_head_are_clear_errors(three_heads):
    with pytest.raises(NotFoundError, match="session 'nope' not found"):
        three_heads.view("nope")
    with pytest.raises(NotFoundError, match="head 's#zz' not found"):
        three_heads.view("s#zz")
    with pytest.raises(NotFoundError):
        three_heads.history_view("nope")


def test_a_corrupt_head_state_is_reported_not_misread(three_heads):
    store = three_heads
    state_blob = store.history_view("s")["heads"][0]["state_blob"]
    with store.engine.connect() as conn, conn.begin():  # the state is inline: change its bytes in SQLite
        bytes_id = conn.execute(text("SELECT bytes_id FROM blobs WHERE blob_id = :b"), {"b": state_blob}).scalar()
        data = conn.execute(text("SELECT data FROM blob_bytes WHERE bytes_id = :i"), {"i": bytes_id}).scalar()
        conn.execute(text("UPDATE blob_bytes SET data = :d WHERE bytes_id = :i"),
                     {"d": data.replace(b'"h1"', b'"hX"'), "i": bytes_id})
    with pytest.raises(CorruptBlobError, match="hash mismatch"):
        store.view("s#h1")


def test_a_corrupt_blob_file_is_replaced_by_a_later_write_of_the_same_content(tmp_path):
    store = Store.open(tmp_path / "s", Settings.from_env(root=str(tmp_path / "s"), inline_max_bytes=0))
    store.commit(write("s", {"type": "session/started"}, message("precious")))
    blob_id = store.message_records("s")[0]["content_blob"]
    store.blobs.path(blob_id).write_bytes(b"garbage")
    store.commit(write("s", message("precious")))
    assert store.blob(blob_id) == b"precious"
    assert any(store.root.joinpath("quarantine").iterdir())  # the bad file was kept, not deleted


def test_high_water_counters_survive_restores(three_heads):
    store = three_heads
    store.commit(write("s", {"type": "session/restored", "kind": "resume", "source_head": "h1",
                             "expected_head": "h3"}))
    counters = store.high_water_counters("s")
    assert counters["message"] == 3 and counters["head"] == 3
