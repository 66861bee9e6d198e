"""Query features that the differential suite cannot cover (or covers only in DataScript's dialect)."""

from __future__ import annotations

import pytest

from sessiondb.store.datalog import Keyword

SCHEMA = {
    "person/name": {"db/unique": "db.unique/identity"},
    "person/friend": {"db/valueType": "db.type/ref", "db/cardinality": "db.cardinality/many"},
    "head/id": {"db/unique": "db.unique/identity"},
    "head/basis": {"db/valueType": "db.type/ref"},
}

ANCESTRY = "[[(anc ?h ?a) [?h :head/basis ?a]] [(anc ?h ?a) [?h :head/basis ?x] (anc ?x ?a)]]"


@pytest.fixture
def db(open_db):
    db = open_db(SCHEMA)
    db.transact(
        [
            {"person/name": "ann", "person/age": 31, "person/friend": [{"person/name": "bob", "person/age": 25}]},
            {"person/name": "cid", "person/age": 40, "person/friend": [["person/name", "ann"]]},
            {"person/name": "dee", "person/age": 25, "person/status": Keyword("status/away")},
        ]
    )
    return db


@pytest.fixture
def chain(open_db):
    """h0 <- h1 <- ... <- h9, and a branch b0 whose basis is h4."""
    db = open_db(SCHEMA)
    tx = [{"head/id": "h0"}] + [{"head/id": f"h{i}", "head/basis": ["head/id", f"h{i - 1}"]} for i in range(1, 10)]
    tx.append({"head/id": "b0", "head/basis": ["head/id", "h4"]})
    db.transact(tx)
    return db


def test_query_as_python_data(db):
    q = {":find": ["?n"], ":where": [["?p", "person/age", "?a"], [(">", "?a", 30)], ["?p", "person/name", "?n"]]}
    assert sorted(db.q(q)) == [("ann",), ("cid",)]


def test_python_data_query_in_list_form(db):
    q = [":find", "?n", ".", ":in", "$", "?age", ":where", ["?p", ":person/age", "?age"], ["?p", ":person/name", "?n"]]
    assert db.q(q, 40) == "cid"


def test_relation_find_returns_distinct_tuples(db):
    assert sorted(db.q("[:find ?a :where [_ :person/age ?a]]")) == [(25,), (31,), (40,)]


def test_tuple_find_returns_first_match(db):
    assert db.q('[:find [?n ?a] :where [?p :person/name ?n] [?p :person/age ?a] [(= ?n "ann")]]') == ("ann", 31)


def test_scalar_find_with_no_match_is_none(db):
    assert db.q("[:find ?n . :where [?p :person/name ?n] [?p :person/age 99]]") is None


def test_keyword_values_are_keywords(db):
    assert db.q("[:find ?s . :where [_ :person/status ?s]]") == Keyword("status/away")
    assert db.q("[:find ?n . :where [?p :person/status :status/away] [?p :person/name ?n]]") == "dee"


def test_second_source_can_be_a_collection(db):
    q = "[:find ?n ?city :in $ $cities :where [?p :person/name ?n] [$cities ?n ?city]]"
    assert db.q(q, [("ann", "Oslo"), ("zed", "Rome")]) == [("ann", "Oslo")]


def test_function_passed_as_input(db):
    q = "[:find [?n ...] :in $ ?young? :where [?p :person/name ?n] [?p :person/age ?a] [(?young? ?a)]]"
    assert sorted(db.q(q, lambda a: a < 30)) == ["bob", "dee"]


def test_reverse_ref_join(db):
    q = '[:find [?n ...] :where [?ann :person/name "ann"] [?p :person/friend ?ann] [?p :person/name ?n]]'
    assert db.q(q) == ["cid"]


def test_recursive_rule_returns_all_ancestors(chain):
    q = "[:find [?id ...] :in $ % ?h :where [?e :head/id ?h] (anc ?e ?a) [?a :head/id ?id]]"
    assert sorted(chain.q(q, ANCESTRY, "b0")) == ["h0", "h1", "h2", "h3", "h4"]


def test_recursive_rule_with_both_ends_bound(chain):
    q = '[:find ?x . :in $ % :where [?a :head/id "h9"] [?b :head/id "h2"] (anc ?a ?b) [(ground true) ?x]]'
    assert chain.q(q, ANCESTRY) is True


def test_recursive_rule_with_constant_argument(chain):
    rules = ANCESTRY + ""
    q = '[:find [?id ...] :in $ % :where [?h0 :head/id "h0"] (anc ?d ?h0) [?d :head/id ?id]]'
    assert len(chain.q(q, rules)) == 10


def test_left_recursive_rule_terminates(chain):
    rules = "[[(up ?h ?a) [?h :head/basis ?a]] [(up ?h ?a) (up ?h ?x) [?x :head/basis ?a]]]"
    q = '[:find [?id ...] :in $ % :where [?e :head/id "h3"] (up ?e ?a) [?a :head/id ?id]]'
    assert sorted(chain.q(q, rules)) == ["h0", "h1", "h2"]


def test_non_linear_recursive_rule(chain):
    rules = "[[(anc ?h ?a) [?h :head/basis ?a]] [(anc ?h ?a) (anc ?h ?x) (anc ?x ?a)]]"
    q = '[:find (count ?a) . :in $ % :where [?e :head/id "h9"] (anc ?e ?a)]'
    assert chain.q(q, rules) == 9


def test_mutually_recursive_rules(chain):
    rules = """[[(odd ?h ?a) [?h :head/basis ?a]] [(odd ?h ?a) [?h :head/basis ?x] (even ?x ?a)]
                [(even ?h ?a) [?h :head/basis ?x] (odd ?x ?a)]]"""
    q = '[:find [?id ...] :in $ % :where [?e :head/id "h9"] (even ?e ?a) [?a :head/id ?id]]'
    assert sorted(chain.q(q, rules)) == ["h1", "h3", "h5", "h7"]


def test_rules_as_python_data(chain):
    rules = [[("parent", "?h", "?a"), ["?h", "head/basis", "?a"]]]
    q = [
        ":find",
        "?id",
        ".",
        ":in",
        "$",
        "%",
        ":where",
        ["?e", "head/id", "h1"],
        ("parent", "?e", "?a"),
        ["?a", "head/id", "?id"],
    ]
    assert chain.q(q, rules) == "h0"


def test_rule_with_required_variable(chain):
    rules = "[[(base [?h] ?a) [?h :head/basis ?a]]]"
    q = '[:find ?id . :in $ % :where [?e :head/id "h5"] (base ?e ?a) [?a :head/id ?id]]'
    assert chain.q(q, rules) == "h4"


def test_not_over_recursive_rule(chain):
    q = '[:find [?id ...] :in $ % :where [?h :head/id ?id] (not [?r :head/id "h2"] (anc ?h ?r))]'
    assert sorted(chain.q(q, ANCESTRY)) == ["h0", "h1", "h2"]


def test_aggregate_median_with_even_count(db):
    assert db.q("[:find (median ?a) . :with ?p :where [?p :person/age ?a]]") == 28.0


def test_with_keeps_duplicate_values_for_aggregates(db):
    assert db.q("[:find (sum ?a) . :with ?p :where [?p :person/age ?a]]") == 121
    assert db.q("[:find (sum ?a) . :where [?p :person/age ?a]]") == 96


def test_keys_return_maps(db):
    rows = db.q("[:find ?n ?a :keys name age :where [?p :person/name ?n] [?p :person/age ?a] [(> ?a 35)]]")
    assert rows == [{"name": "cid", "age": 40}]


def test_clojure_truthiness_zero_is_true(db):
    assert sorted(db.q("[:find [?n ...] :where [?p :person/name ?n] [(identity 0)]]")) == ["ann", "bob", "cid", "dee"]


def test_binding_to_bound_variable_filters(db):
    assert sorted(db.q("[:find [?n ...] :where [?p :person/age ?a] [(+ 15 10) ?a] [?p :person/name ?n]]")) == [
        "bob",
        "dee",
    ]


def test_pull_in_find_with_pattern_input(db):
    q = '[:find (pull ?p ?pat) . :in $ ?pat :where [?p :person/name "bob"]]'
    assert db.q(q, "[:person/age]") == {"person/age": 25}


def test_count_of_entities_having_an_attribute(db):
    assert db.q("[:find (count ?p) . :where [?p :person/name]]") == 4


def test_regex_literal_in_edn_query(db):
    assert sorted(db.q('[:find [?n ...] :where [_ :person/name ?n] [(re-find #"^[ab]" ?n)]]')) == ["ann", "bob"]


def test_regex_groups_bind_as_tuple(db):
    q = '[:find ?g . :where [_ :person/name "ann"] [(re-find #"(a)(n+)" "xann") [_ ?a ?g]]]'
    assert db.q(q) == "nn"


def test_disjoint_clauses_still_require_both_to_match(db):
    assert db.q("[:find ?n :where [_ :person/name ?n] [_ :no/such ?x]]") == []
    assert len(db.q("[:find ?n :where [_ :person/name ?n] [_ :person/age 25]]")) == 4


def test_or_join_with_required_variable(db):
    q = """[:find [?n ...] :where [?p :person/name ?n]
            (or-join [[?p]] [?p :person/age 25] [?p :person/status :status/away])]"""
    assert sorted(db.q(q)) == ["bob", "dee"]


def test_count_distinct_and_distinct_aggregates(db):
    assert db.q("[:find (count-distinct ?a) . :where [_ :person/age ?a]]") == 3
    assert db.q("[:find (distinct ?a) . :where [_ :person/age ?a]]") == {25, 31, 40}


def test_datascript_style_call_with_database_argument(db):
    assert db.q("[:find ?a . :in $ ?n :where [?p :person/name ?n] [?p :person/age ?a]]", db, "ann") == 31


def test_lookup_ref_input_for_entity_variable(db):
    assert db.q("[:find ?a . :in $ ?p :where [?p :person/age ?a]]", ["person/name", "cid"]) == 40


def test_lookup_ref_collection_input_for_ref_value(db):
    q = "[:find [?n ...] :in $ [?f ...] :where [?p :person/friend ?f] [?p :person/name ?n]]"
    assert db.q(q, [["person/name", "ann"], ["person/name", "nobody"]]) == ["cid"]


def test_tx_position_binds_the_transaction(db):
    tx = db.transact([{"person/name": "eve", "person/age": 50}]).tx
    assert db.q("[:find ?n . :in $ ?tx :where [?p :person/age _ ?tx] [?p :person/name ?n]]", tx) == "eve"
    assert db.q('[:find ?t . :where [?p :person/name "eve" ?t]]') == tx
