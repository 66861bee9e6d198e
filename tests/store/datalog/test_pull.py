"""Pull patterns: nested maps, wildcard, reverse attributes, :limit, :default, :as, recursion."""

from __future__ import annotations

import pytest

SCHEMA = {
    "session/id": {"db/unique": "db.unique/identity"},
    "session/tags": {"db/cardinality": "db.cardinality/many"},
    "message/id": {"db/unique": "db.unique/identity"},
    "message/session": {"db/valueType": "db.type/ref"},
    "head/id": {"db/unique": "db.unique/identity"},
    "head/basis": {"db/valueType": "db.type/ref"},
}


@pytest.fixture
def db(open_db):
    db = open_db(SCHEMA)
    db.transact(
        [
            {"db/id": "s", "session/id": "s1", "session/title": "t", "session/tags": ["a", "b", "c"]},
            {"message/id": "m1", "message/session": "s", "message/text": "hello"},
            {"message/id": "m2", "message/session": "s", "message/text": "world"},
            {"db/id": "h0", "head/id": "h0"},
            {"db/id": "h1", "head/id": "h1", "head/basis": "h0"},
            {"db/id": "h2", "head/id": "h2", "head/basis": "h1"},
        ]
    )
    return db


def test_pull_attributes_by_lookup_ref(db):
    assert db.pull("[:session/title]", ["session/id", "s1"]) == {"session/title": "t"}


def test_pull_wildcard_includes_db_id(db):
    e = db.entid(["session/id", "s1"])
    assert db.pull("[*]", e) == {"db/id": e, "session/id": "s1", "session/title": "t", "session/tags": ["a", "b", "c"]}


def test_pull_reverse_attribute_gives_list(db):
    got = db.pull("[{:message/_session [:message/id]}]", ["session/id", "s1"])
    assert got == {"message/_session": [{"message/id": "m1"}, {"message/id": "m2"}]}


def test_pull_nested_ref(db):
    assert db.pull("[{:message/session [:session/id]}]", ["message/id", "m1"]) == {
        "message/session": {"session/id": "s1"}
    }


def test_pull_ref_without_subpattern_gives_db_id(db):
    s = db.entid(["session/id", "s1"])
    assert db.pull("[:message/session]", ["message/id", "m1"]) == {"message/session": {"db/id": s}}


def test_pull_limit_on_many_attribute(db):
    assert db.pull("[(:session/tags :limit 2)]", ["session/id", "s1"]) == {"session/tags": ["a", "b"]}


def test_pull_default_for_missing_attribute(db):
    assert db.pull('[(:session/owner :default "nobody")]', ["session/id", "s1"]) == {"session/owner": "nobody"}


def test_pull_as_renames_key(db):
    assert db.pull('[[:session/title :as "title"]]', ["session/id", "s1"]) == {"title": "t"}


def test_pull_unbounded_recursion(db):
    got = db.pull("[:head/id {:head/basis ...}]", ["head/id", "h2"])
    assert got == {"head/id": "h2", "head/basis": {"head/id": "h1", "head/basis": {"head/id": "h0"}}}


def test_pull_recursion_depth_limit(db):
    got = db.pull("[:head/id {:head/basis 1}]", ["head/id", "h2"])
    assert got == {"head/id": "h2", "head/basis": {"head/id": "h1"}}


def test_pull_missing_entity_is_none(db):
    assert db.pull("[:session/title]", ["session/id", "nope"]) is None


def test_pull_many_keeps_order(db):
    got = db.pull_many("[:message/text]", [["message/id", "m2"], ["message/id", "m1"]])
    assert got == [{"message/text": "world"}, {"message/text": "hello"}]


def test_pull_pattern_as_python_data(db):
    assert db.pull(["session/title", {"message/_session": ["message/id"]}], ["session/id", "s1"]) == {
        "session/title": "t",
        "message/_session": [{"message/id": "m1"}, {"message/id": "m2"}],
    }


def test_datoms_eavt_lists_entity_facts(db):
    e = db.entid(["message/id", "m1"])
    assert [(d.a, d.v) for d in db.datoms("eavt", e, "message/text")] == [("message/text", "hello")]


def test_datoms_avet_carry_their_transaction(db):
    tx = db.transact([{"session/id": "s2"}]).tx
    assert [(d.v, d.tx) for d in db.datoms("avet", "session/id", "s2")] == [("s2", tx)]


def test_the_default_limit_of_1000_cuts_reverse_refs_only_of_cardinality_many_attributes(open_db):
    # DataScript 1.8.1: the reverse of a cardinality-one ref lists every referrer; the reverse of
    # a cardinality-many ref (like a forward cardinality-many attribute) stops at 1000 by default.
    # Found by the generative tester (a pull of :a/_link on a 5,000-entity data set).
    db = open_db({"a/id": {"db/unique": "db.unique/identity"}, "a/link": {"db/valueType": "db.type/ref"},
                  "a/links": {"db/valueType": "db.type/ref", "db/cardinality": "db.cardinality/many"}})
    db.transact([{"a/id": "hub"}])
    db.transact([{"a/id": f"x{i}", "a/link": ["a/id", "hub"], "a/links": [["a/id", "hub"]]} for i in range(1500)])
    pulled = db.pull("[:a/_links]", ["a/id", "hub"])
    assert len(pulled["a/_links"]) == 1000
    assert len(db.pull("[:a/_link]", ["a/id", "hub"])["a/_link"]) == 1500
    assert len(db.pull("[(:a/_link :limit 10)]", ["a/id", "hub"])["a/_link"]) == 10  # an explicit limit holds
