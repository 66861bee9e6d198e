"""Malformed queries fail with the engine's errors, naming the problem (never a raw traceback)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessiondb.store.datalog import DatalogError, EdnError, QueryError, QueryParseError


@pytest.fixture
def db(open_db):
    db = open_db({"p/id": {"db/unique": "db.unique/identity"}})
    db.transact([{"p/id": "a", "p/n": 1}, {"p/id": "b", "p/n": "x"}])
    return db


@pytest.mark.parametrize(
    "query, error, message",
    [
        ("[:find ?x :where [?x :p/id", EdnError, "cannot read EDN"),
        (
            "[:find ?x :where [?x :p/n ?n] [(> ?y 1)]]",
            QueryParseError,
            r"insufficient bindings: #\{\?y\} not bound in \[\(> \?y 1\)\]",
        ),
        ("[:find ?x :where (not [?x :p/n 1])]", QueryParseError, "none of .* is bound"),
        ("[:find ?x :where [?x :p/n ?n] [(frobnicate ?n)]]", QueryParseError, "unknown function frobnicate"),
        ("[:find :where [?x :p/n ?n]]", QueryParseError, "no :find"),
        ("[:find ?x . ?y :where [?x :p/n ?y]]", QueryParseError, "bad find spec|bad find element"),
        ("[:find ?z :where [?x :p/n ?n]]", QueryParseError, r"unknown variables \[\?z\]"),
        (
            "[:find ?x :where [?x :p/n ?n] (anc ?x ?y)]",
            QueryError,
            r"no rules given: \(anc \?x \?y\) calls rule anc, but :in has no %",
        ),
        ("[:find ?x :where [?x :p/n ?n] (or [?x :p/n 1] [?y :p/n 2])]", QueryParseError, "same variables"),
        ("[:find ?x :where [?x :p/n ?n] (and [?x :p/n 1])]", QueryParseError, "only allowed inside"),
        ("[:find ?x :where [?x :p/n ?n] [(get-else ?x :p/n 1) ?v]]", QueryParseError, "database source"),
        ("[:find (frob ?x) :where [?x :p/n]]", QueryParseError, "unknown aggregate"),
        ("[:find ?x :where [?x :p/n ?n ?t ?extra]]", QueryParseError, "1 to 4 elements"),
        ("[:find ?x :where 42]", QueryParseError, "cannot parse clause"),
        ("[:find ?x :in $ [?x ...] :where [?x :p/n]]", QueryError, "expects 1 inputs"),
        ("{:find [?x] :bogus 1}", QueryParseError, "unknown query section"),
        ("[:find ?x :where [?x :p/n ?n] [(subs ?n 0 1) ?s]]", QueryError, r"\(subs"),
    ],
)
def test_malformed_query_raises_named_error(db, query, error, message):
    with pytest.raises(error, match=message):
        db.q(query)


def test_builtin_type_error_becomes_query_error(db):
    with pytest.raises(QueryError, match=r"\(\+ "):
        db.q("[:find ?v :where [?x :p/n ?n] [(+ ?n 1) ?v]]")


def test_unknown_rule_with_rules_given(db):
    with pytest.raises(QueryError, match=r"unknown rule nope in \(nope \?x\)"):
        db.q("[:find ?x :in $ % :where [?x :p/n] (nope ?x)]", "[[(r ?x) [?x :p/n]]]")


def test_malformed_rules_raise_parse_error(db):
    with pytest.raises(QueryParseError, match="rule must be"):
        db.q("[:find ?x :in $ % :where [?x :p/n] (r ?x)]", "[[r ?x]]")


def test_malformed_pull_pattern_raises_parse_error(db):
    with pytest.raises(QueryParseError, match="pull pattern"):
        db.pull("[(:p/id :limit -1)]", ["p/id", "a"])


_atoms = st.sampled_from(
    [
        "?x",
        "?y",
        "_",
        ":p/n",
        ":p/id",
        "1",
        '"a"',
        "$",
        "%",
        "not",
        "or",
        "and",
        "not-join",
        "or-join",
        "count",
        "pull",
        ">",
        "str",
        "...",
        ".",
        ":find",
        ":where",
        ":in",
        ":with",
        "get-else",
        "missing?",
        "ground",
        "[*]",
        "nil",
    ]
)


def _form(depth: int):
    if depth == 0:
        return _atoms
    sub = _form(depth - 1)
    return st.one_of(
        _atoms,
        st.lists(sub, max_size=4).map(lambda xs: "[" + " ".join(xs) + "]"),
        st.lists(sub, max_size=4).map(lambda xs: "(" + " ".join(xs) + ")"),
    )


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(head=st.lists(_form(1), max_size=2), where=st.lists(_form(3), max_size=4))
def test_random_queries_raise_only_engine_errors(db, head, where):
    query = "[:find " + " ".join(head) + " :where " + " ".join(where) + "]"
    try:
        db.q(query)
    except DatalogError:
        pass


def test_deeply_nested_query_raises_parse_error(db):
    deep = "[:find ?x :where " + "(not " * 2000 + "[?x :p/n 1]" + ")" * 2000 + "]"
    with pytest.raises(DatalogError):
        db.q(deep)


@pytest.mark.parametrize("query", [42, None, {":find": 3}, [":find"], {"find": ["?x"], "where": "nope"}])
def test_query_of_wrong_type_raises_parse_error(db, query):
    with pytest.raises(QueryParseError):
        db.q(query)
