"""Transactions: tempids, upserts, uniqueness, cardinality, retractions, lookup refs, atomicity."""

from __future__ import annotations

import pytest

from sessiondb.store.datalog import Database, Keyword, TransactError

SCHEMA = {
    "session/id": {"db/unique": "db.unique/identity"},
    "session/alias": {"db/unique": "db.unique/value"},
    "session/tags": {"db/cardinality": "db.cardinality/many"},
    "message/session": {"db/valueType": "db.type/ref"},
    "session/parent": {"db/valueType": "db.type/ref"},
}


@pytest.fixture
def db(open_db):
    return open_db(SCHEMA)


def test_tempids_are_resolved_in_the_report(db):
    report = db.transact([{"db/id": "a", "session/id": "s1"}, [":db/add", -1, "session/id", "s2"]])
    assert set(report.tempids) == {"a", -1, "db/current-tx"}
    assert report.tempids["a"] != report.tempids[-1]


def test_report_lists_added_datoms(db):
    report = db.transact([{"db/id": "a", "session/id": "s1", "session/title": "t"}])
    e = report.tempids["a"]
    assert sorted((d.e, d.a, d.v, d.added) for d in report.tx_data) == [
        (e, "session/id", "s1", True),
        (e, "session/title", "t", True),
    ]


def test_identity_attribute_upserts_existing_entity(db):
    first = db.transact([{"session/id": "s1", "session/title": "old"}])
    second = db.transact([{"db/id": "x", "session/id": "s1", "session/title": "new"}])
    assert second.tempids["x"] == first.tx_data[0].e
    assert db.q('[:find [?t ...] :where [?s :session/id "s1"] [?s :session/title ?t]]') == ["new"]


def test_cardinality_one_replacement_retracts_old_value(db):
    db.transact([{"session/id": "s1", "session/title": "old"}])
    report = db.transact([{"session/id": "s1", "session/title": "new"}])
    assert [(d.v, d.added) for d in report.tx_data if d.a == "session/title"] == [("old", False), ("new", True)]


def test_cardinality_many_accumulates_values(db):
    db.transact([{"session/id": "s1", "session/tags": ["a", "b"]}])
    db.transact([{"session/id": "s1", "session/tags": ["c"]}])
    assert sorted(db.q("[:find [?t ...] :where [_ :session/tags ?t]]")) == ["a", "b", "c"]


def test_asserting_an_existing_datom_adds_nothing(db):
    db.transact([{"session/id": "s1", "session/title": "t"}])
    report = db.transact([{"session/id": "s1", "session/title": "t"}])
    assert report.tx_data == []


def test_unique_value_conflict_is_rejected(db):
    db.transact([{"session/id": "s1", "session/alias": "main"}])
    with pytest.raises(TransactError, match="unique"):
        db.transact([{"session/id": "s2", "session/alias": "main"}])


def test_failed_transaction_applies_nothing(db):
    db.transact([{"session/id": "s1", "session/alias": "main"}])
    with pytest.raises(TransactError):
        db.transact([{"session/id": "s3"}, {"session/id": "s2", "session/alias": "main"}])
    assert db.q('[:find ?s . :where [?s :session/id "s3"]]') is None


def test_retract_removes_one_value(db):
    db.transact([{"session/id": "s1", "session/tags": ["a", "b"]}])
    db.transact([[":db/retract", ["session/id", "s1"], "session/tags", "a"]])
    assert db.q("[:find [?t ...] :where [_ :session/tags ?t]]") == ["b"]


def test_retract_without_value_removes_attribute(db):
    db.transact([{"session/id": "s1", "session/tags": ["a", "b"]}])
    db.transact([[":db/retract", ["session/id", "s1"], "session/tags"]])
    assert db.q("[:find [?t ...] :where [_ :session/tags ?t]]") == []


def test_retract_entity_removes_its_datoms_and_references(db):
    r = db.transact([{"db/id": "s", "session/id": "s1"}, {"db/id": "m", "message/session": "s", "message/text": "x"}])
    db.transact([[":db/retractEntity", ["session/id", "s1"]]])
    assert db.q("[:find ?s :where [?s :session/id]]") == []
    assert db.q("[:find ?v :where [?m :message/session ?v]]") == []
    assert db.pull("[:message/text]", r.tempids["m"]) == {"message/text": "x"}


def test_lookup_ref_resolves_entity_and_ref_value(db):
    db.transact([{"session/id": "s1"}])
    db.transact([{"message/session": ["session/id", "s1"], "message/text": "hi"}])
    assert db.q('[:find ?t . :where [?m :message/session [:session/id "s1"]] [?m :message/text ?t]]') == "hi"


def test_lookup_ref_to_entity_created_earlier_in_same_tx(db):
    db.transact([{"session/id": "s1"}, {"message/session": ["session/id", "s1"], "message/text": "hi"}])
    assert db.q('[:find ?t . :where [?m :message/session ?s] [?s :session/id "s1"] [?m :message/text ?t]]') == "hi"


def test_missing_lookup_ref_is_an_error(db):
    with pytest.raises(TransactError, match="lookup ref"):
        db.transact([[":db/add", ["session/id", "nope"], "session/title", "t"]])


def test_lookup_ref_needs_unique_attribute(db):
    with pytest.raises(TransactError, match="unique"):
        db.transact([[":db/add", ["session/title", "x"], "session/title", "t"]])


def test_nested_map_creates_referenced_entity(db):
    db.transact([{"message/text": "hi", "message/session": {"session/id": "s9"}}])
    assert db.q('[:find ?t . :where [?m :message/session ?s] [?s :session/id "s9"] [?m :message/text ?t]]') == "hi"


def test_reverse_attribute_in_entity_map(db):
    db.transact([{"session/id": "s1", "message/_session": [{"message/text": "a"}, {"message/text": "b"}]}])
    found = db.q('[:find [?t ...] :where [?s :session/id "s1"] [?m :message/session ?s] [?m :message/text ?t]]')
    assert sorted(found) == ["a", "b"]


def test_tempid_used_only_as_value_is_an_error(db):
    with pytest.raises(TransactError, match="only as a value"):
        db.transact([{"message/session": "ghost", "message/text": "x"}])


def test_unknown_operation_is_an_error(db):
    with pytest.raises(TransactError, match="unknown operation"):
        db.transact([[":db/frobnicate", 1, "a/b", 2]])


def test_nil_value_is_an_error(db):
    with pytest.raises(TransactError, match="nil"):
        db.transact([{"session/id": "s1", "session/title": None}])


def test_unsupported_value_type_is_an_error(db):
    with pytest.raises(TransactError, match="unsupported value"):
        db.transact([{"session/id": "s1", "session/title": object()}])


def test_value_types_round_trip(db):
    values = {
        "session/n": 3,
        "session/f": 1.5,
        "session/b": True,
        "session/k": Keyword("status/ok"),
        "session/y": b"\x00",
    }
    r = db.transact([{"db/id": "x", "session/id": "s1", **values}])
    pulled = db.pull(list(values), r.tempids["x"])
    assert pulled == values and type(pulled["session/b"]) is bool


def test_edn_tx_data_is_accepted(db):
    db.transact('[{:session/id "s1" :session/title "t"} [:db/add -1 :session/id "s2"]]')
    assert sorted(db.q("[:find [?id ...] :where [_ :session/id ?id]]")) == ["s1", "s2"]


def test_transact_many_applies_all_in_order(db):
    rep = db.transact_many([[{"session/id": "s1", "session/title": "a"}], [{"session/id": "s1", "session/title": "b"}]])
    assert (rep.txs, rep.added, rep.retracted) == (2, 3, 1)
    assert db.q("[:find ?t . :where [_ :session/title ?t]]") == "b"


def test_transact_many_is_all_or_nothing(db):
    db.transact([{"session/id": "s0", "session/alias": "x"}])
    with pytest.raises(TransactError):
        db.transact_many([[{"session/id": "s1"}], [{"session/id": "s2", "session/alias": "x"}]])
    assert db.q('[:find ?s . :where [?s :session/id "s1"]]') is None


def test_data_and_schema_persist_across_reopen(tmp_path):
    path = tmp_path / "p.sqlite"
    with Database.open(path, SCHEMA) as db:
        db.transact([{"session/id": "s1", "session/title": "t"}])
    with Database.open(path) as db:
        assert db.schema.unique("session/id") == "identity"
        report = db.transact([{"db/id": "x", "session/id": "s1"}])
        assert report.tempids["x"] == db.q('[:find ?s . :where [?s :session/title "t"]]')


def test_new_entity_ids_continue_after_reopen(tmp_path):
    path = tmp_path / "p.sqlite"
    with Database.open(path, SCHEMA) as db:
        first = db.transact([{"db/id": "a", "session/id": "s1"}]).tempids["a"]
    with Database.open(path) as db:
        second = db.transact([{"db/id": "b", "session/id": "s2"}]).tempids["b"]
    assert second > first


def test_second_connection_sees_writes_of_the_first(tmp_path):
    path = tmp_path / "p.sqlite"
    with Database.open(path, SCHEMA) as writer, Database.open(path) as reader:
        assert reader.q("[:find ?s . :where [?s :session/id]]") is None
        writer.transact([{"session/id": "s1"}])
        assert reader.q("[:find ?id . :where [_ :session/id ?id]]") == "s1"


def test_file_uses_wal_mode(tmp_path):
    import sqlite3

    with Database.open(tmp_path / "w.sqlite", SCHEMA):
        mode = sqlite3.connect(tmp_path / "w.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_component_entities_are_retracted_with_their_owner(open_db):
    db = open_db(
        {
            "doc/id": {"db/unique": "db.unique/identity"},
            "doc/part": {"db/valueType": "db.type/ref", "db/isComponent": True},
        }
    )
    db.transact([{"doc/id": "d", "doc/part": {"part/text": "p"}}])
    db.transact([[":db/retractEntity", ["doc/id", "d"]]])
    assert db.q("[:find ?t :where [_ :part/text ?t]]") == []


def test_keyword_attributes_and_db_id_in_python_data(db):
    r = db.transact([{Keyword("db/id"): "x", Keyword("session/id"): "s1", ":session/title": "t"}])
    assert db.pull([Keyword("session/title")], r.tempids["x"]) == {"session/title": "t"}


def test_planner_attribute_counts_track_datoms(db, tmp_path):
    db.transact([{"session/id": f"s{i}", "session/tags": ["a", "b"]} for i in range(5)])
    db.transact(
        [[":db/retract", ["session/id", "s0"], "session/tags", "a"], [":db/retractEntity", ["session/id", "s1"]]]
    )
    db.transact([{"db/id": "t", "session/id": "s9", "session/tags": ["x"]}, [":db/retract", "t", "session/tags", "x"]])
    for attr in ("session/id", "session/tags"):
        assert db.count_attr(attr) == len(db.datoms("avet", attr))


def test_attribute_first_used_in_a_failed_transaction_works_later(db):
    db.transact([{"session/id": "s1", "session/alias": "x"}])
    with pytest.raises(TransactError):
        db.transact([{"session/id": "s2", "brand/new": 1}, {"session/id": "s3", "session/alias": "x"}])
    db.transact([{"session/id": "s4", "brand/new": 2}])
    assert db.q("[:find ?v . :where [_ :brand/new ?v]]") == 2


def test_opening_a_path_in_a_missing_directory_is_a_datalog_error(tmp_path):
    from sessiondb.store.datalog import DatalogError

    with pytest.raises(DatalogError, match="cannot open"):
        Database.open(tmp_path / "no" / "such" / "dir.sqlite", SCHEMA)


def test_meta_commits_with_the_datoms(db):
    db.transact_many([[{"session/id": "s1"}]], meta={"watermark": "7"})
    assert db.get_meta("watermark") == "7"
    db.transact([{"session/id": "s2"}], meta={"watermark": "8"})
    assert db.get_meta("watermark") == "8"


def test_meta_is_rolled_back_with_a_failed_transaction(db):
    db.transact([{"session/id": "s1", "session/alias": "x"}], meta={"watermark": "1"})
    with pytest.raises(TransactError):
        db.transact_many([[{"session/id": "s2", "session/alias": "x"}]], meta={"watermark": "2"})
    assert db.get_meta("watermark") == "1"


def test_meta_cannot_clobber_engine_metadata(db):
    db.transact_many([], meta={"max_eid": "999999"})
    report = db.transact([{"db/id": "t", "session/id": "s1"}])
    assert report.tempids["t"] == 1
