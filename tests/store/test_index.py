"""The derived Datalog index: catch-up from the tx log, watermark, quarantine, atomic rebuild."""

from __future__ import annotations

import msgspec
import pytest
from helpers import write
from sqlalchemy import text

from sessiondb.ops.demo import agent_session, fork_and_invoke
from sessiondb.store.index import Index


@pytest.fixture
def demo_store(store):
    for i in range(2):
        for w in agent_session(f"a{i}", turns=3, seed=i):
            store.commit(w)
    for w in fork_and_invoke("a0", "a0-fork", "a0-child"):
        store.commit(w)
    return store


def user_messages(index: Index, session: str) -> int:
    return index.q('[:find (count ?m) . :in $ ?sid :where [?s :session/id ?sid] [?m :message/session ?s] '
                   '[?m :message/role "user"]]', session)


def test_catch_up_applies_every_batch_and_moves_the_watermark(demo_store):
    with Index.open(demo_store.root, database_url=demo_store.settings.database_url) as index:
        assert index.status()["lag"] > 0
        result = index.catch_up()
        assert result["quarantined"] == []
        status = index.status()
        assert status["lag"] == 0 and status["watermark"] == status["store_tx"] == result["watermark"]
        users = [m for m in demo_store.message_records("a0", all_branches=True) if m["role"] == "user"]
        assert user_messages(index, "a0") == len(users)
        models = index.q('[:find [?model ...] :where [?c :call/model ?model]]')
        assert set(models) == {c["model"] for s in ("a0", "a1") for c in demo_store.call_records(s)}


def test_head_ancestry_by_a_recursive_rule(demo_store):
    rules = '[[(ancestor ?h ?a) [?h :head/basis ?a]] [(ancestor ?h ?a) [?h :head/basis ?x] (ancestor ?x ?a)]]'
    with Index.open(demo_store.root, database_url=demo_store.settings.database_url) as index:
        index.catch_up()
        found = index.q('[:find [?aid ...] :in $ % ?hid :where [?h :head/id ?hid] (ancestor ?h ?a) [?a :head/id ?aid]]',
                        rules, "a0-h3")
    assert sorted(found) == ["a0-h1", "a0-h2"]


def test_catch_up_is_incremental(demo_store):
    with Index.open(demo_store.root, database_url=demo_store.settings.database_url) as index:
        index.catch_up()
        before = index.watermark()
        receipt = demo_store.commit(write("a1", {"type": "message/added", "role": "user", "content": "one more"}))
        result = index.catch_up()
        assert result["applied"] == 1 and index.watermark() == receipt["tx_id"] > before
        assert index.wait_for(receipt["tx_id"], timeout=1)


def test_a_batch_that_cannot_be_applied_is_quarantined_and_indexing_goes_on(demo_store):
    head = demo_store.commit(write("a1", {"type": "message/added", "role": "user", "content": "x"}))["tx_id"]
    bad = msgspec.json.encode([{"message/key": "zz/1", "message/session": ["session/id", "no-such-session"]}])
    with demo_store.engine.begin() as db:  # a corrupt batch, for real
        db.execute(text("INSERT INTO tx (tx_id, write_id, session_id, at, facts) VALUES (:t, 'bad', 'a1', 'now', :f)"),
                   {"t": head + 1, "f": bad})
    later = demo_store.commit(write("a1", {"type": "message/added", "role": "user", "content": "after"}))
    with Index.open(demo_store.root, database_url=demo_store.settings.database_url) as index:
        result = index.catch_up()
        assert [q["tx_id"] for q in result["quarantined"]] == [head + 1]
        assert index.status()["quarantined"][0]["tx_id"] == head + 1
        assert index.watermark() == later["tx_id"]
        assert user_messages(index, "a1") == len([m for m in demo_store.message_records("a1", all_branches=True)
                                                  if m["role"] == "user"])


def test_rebuild_swaps_in_an_equivalent_generation(demo_store):
    query = '[:find ?sid ?n :where [?s :session/id ?sid] [?s :session/status ?n]]'
    with Index.open(demo_store.root, database_url=demo_store.settings.database_url) as index:
        index.catch_up()
        before_file, before = index.status()["file"], set(index.q(query))
        result = index.rebuild()
        assert result["file"] != before_file and index.status()["file"] == result["file"]
        assert set(index.q(query)) == before and index.status()["lag"] == 0


def test_a_deleted_index_is_rebuilt_from_the_log(demo_store):
    query = '[:find ?hid ?k :where [?h :head/id ?hid] [?h :head/kind ?k]]'
    with Index.open(demo_store.root, database_url=demo_store.settings.database_url) as index:
        index.catch_up()
        before = set(index.q(query))
    for path in demo_store.root.glob("index*"):
        path.unlink()
    with Index.open(demo_store.root, database_url=demo_store.settings.database_url) as index:
        assert index.status()["watermark"] == 0
        index.catch_up()
        assert set(index.q(query)) == before


def test_the_consistency_check_compares_the_index_with_the_store(demo_store):
    from sessiondb.store.integrity import check_consistency

    with Index.open(demo_store.root, database_url=demo_store.settings.database_url) as index:
        index.catch_up()
        clean = check_consistency(demo_store, index=index, index_sample=None)
        assert clean.ok and clean.counts["index_batches_compared"] == index.watermark()
        # an index that lost a fact, for real: retract it in the index file
        index.database().transact([[":db/retract", ["head/id", "a0-h2"], "head/kind", "turn-final"]])
        found = check_consistency(demo_store, index=index, index_sample=None).of_type("index/mismatch")
        assert [(f.data["entity"], f.data["attr"], f.data["expected"]) for f in found] == [
            ("head/id a0-h2", "head/kind", "turn-final")]


def test_queries_keep_answering_while_a_rebuild_swaps_generations(demo_store):
    import threading
    import time

    query = '[:find (count ?m) . :where [?m :message/role _]]'
    with Index.open(demo_store.root, database_url=demo_store.settings.database_url) as index:
        index.catch_up()
        expected = index.q(query)
        answers, stop = [], threading.Event()

        def ask() -> None:
            with Index(demo_store.root, database_url=demo_store.settings.database_url) as reader:
                while not stop.is_set():
                    answers.append(reader.q(query))

        def wait_for_answers(count: int) -> None:
            deadline = time.monotonic() + 60
            while len(answers) < count:
                assert thread.is_alive(), "the reader thread died"
                assert time.monotonic() < deadline, "the reader thread answered nothing for 60 s"
                time.sleep(0.01)

        thread = threading.Thread(target=ask, daemon=True)
        thread.start()
        wait_for_answers(1)  # the reader is answering before the first swap, however slowly it started
        for _ in range(3):
            index.rebuild()
        wait_for_answers(len(answers) + 1)  # ... and still answers after the last one
        stop.set()
        thread.join(30)
    assert not thread.is_alive() and answers and set(answers) == {expected}


def test_the_consistency_check_reports_a_lagging_index(demo_store):
    from sessiondb.store.integrity import check_consistency

    with Index.open(demo_store.root, database_url=demo_store.settings.database_url) as index:
        index.catch_up()
        demo_store.commit(write("a1", {"type": "message/added", "role": "user", "content": "not indexed yet"}))
        [lag] = check_consistency(demo_store, index=index).of_type("index/lag")
        assert lag.data["lag"] == 1 and lag.data["watermark"] == index.watermark()
