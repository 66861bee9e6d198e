"""Error texts quote the query's own EDN (strings in double quotes, keywords with their colon,
vectors in brackets), never a Python repr such as ``BindColl(item=BindScalar(...))``,
``Keyword(s/id)`` or ``'x'``; and they quote the offending part of the query."""

from __future__ import annotations

import re

import pytest

from sessiondb.store.datalog import DatalogError, Keyword

SCHEMA = {"a/id": {"db/unique": "db.unique/identity"}, "a/r": {"db/valueType": "db.type/ref"}}

# a Python repr leaking into a message: a record or edn_format type, or a single-quoted string
_PYTHON_REPR = re.compile(r"\w+\((item|var|items|name|value)=|Keyword\(|Symbol\(|ImmutableList|frozenset\(|'[^']*'")

CASES = [
    # (query, inputs, expected fragment of the message: EDN, as written)
    ("[:find ?x :in $ [?x ...] :where [?x :a/id]]", ["abc"], 'cannot bind "abc" to collection binding in [?x ...]'),
    ("[:find ?x :in $ [[?x ?y]] :where [?x :a/id ?y]]", [5], "cannot bind 5 to collection binding in [[?x ?y]]"),
    ("[:find ?a :in $ [?a ?b] :where [?a :a/id ?b]]", [[1]], "not enough elements in [1] for tuple binding in [?a ?b]"),
    ('[:find ?x :where [?e :a/id ?x] [(subs ?x 10)]]', [], 'subs: index out of range for "x0"'),
    ("[:find ?w :where [?e :a/id ?v] [(+ ?v 1) ?w]]", [], '(+ "x0" 1) failed'),
    ("[:find (sum ?v) :where [?e :a/id ?v]]", [], "aggregate (sum ?v) failed"),
    ("[:find (max ?v 2) :where [?e :a/id ?v]]", [], "expected a variable, got 2: (max ?v 2)"),
    ('[:find ?x :where [[:a/k "odd"] :a/id ?x]]', [], 'lookup ref attribute must be :db/unique: [:a/k "odd"]'),
    ('[:find ?x :where (not [?e :a/k "odd"]) [?e :a/id ?x]]', [], 'none of #{?e} is bound in (not [?e :a/k "odd"])'),
    ("[:find ?x :with ?x :where [?e :a/id ?x]]", [], "should not use same variables: [?x]: [:with ?x]"),
    ("[:find ?x :with 3 :where [?e :a/id ?x]]", [], "expected a variable, got 3: [:with 3]"),
    ("[:find ?z :where [?e :a/id ?x]]", [], "query for unknown variables [?z]: [:find ?z]"),
    ("[:find ?x :where [?e :a/id ?x] (frob ?x)]", [], "no rules given: (frob ?x) calls rule frob"),
    ('[:find ?x :where [?e :a/id ?x] [(> ?y "b")]]', [], 'insufficient bindings: #{?y} not bound in [(> ?y "b")]'),
    ("[:find ?x :where [?e :a/id ?x] [(frob ?x)]]", [], "unknown function frob: [(frob ?x)]"),
    ("[:find ?x :where [?e :a/id ?x] [(get-else ?e :a/n nil) ?x]]", [], "database source ($)"),
    ("[:find (pull ?e [(:a/id :limit -1)]) :where [?e :a/id]]", [], "pull pattern: (:a/id :limit -1)"),
    ("[:find (pull ?e [1]) :where [?e :a/id]]", [], "bad pull pattern element 1"),
    # inside a rule body (a Python KeyError leaked here)
    ("[:find ?e :in $ % :where [?e :a/id _] (r ?e)]", ["[[(r ?e) [?e :a/k _] (zz ?e)]]"], "unknown rule zz in (zz ?e)"),
]


@pytest.fixture
def db(open_db):
    db = open_db(SCHEMA)
    db.transact([{"a/id": "x0", "a/k": "odd"}, {"a/id": "x1", "a/k": "even", "a/r": ["a/id", "x0"]}])
    return db


def _clean(message: str) -> str:
    """The engine's own part of a message (a Python exception's text may follow "failed:")."""
    return message.split(" failed: ", 1)[0]


@pytest.mark.parametrize(("query", "inputs", "fragment"), CASES, ids=[c[2][:40] for c in CASES])
def test_error_quotes_the_query_in_edn(db, query, inputs, fragment):
    with pytest.raises(DatalogError) as info:
        db.q(query, *inputs)
    message = str(info.value)
    assert fragment in message
    assert not _PYTHON_REPR.search(_clean(message)), message


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda db: db.pull("[{:a/id [:a/k]}]", 1), "attribute :a/id is not a ref"),
        (lambda db: db.pull("[(:a/k :frob 1)]", 1), "unknown attribute option :frob in pull pattern"),
        (lambda db: db.transact([["db/frob", 1, "a/k", "x"]]), 'unknown operation "db/frob"'),
        (lambda db: db.transact([{"a/id": "x2", "a/k": {1, 2}}]), "unsupported value type"),
        (lambda db: db.transact([{"a/id": "x0", "a/r": ["a/k", "odd"]}]), "lookup ref attribute :a/k"),
        (lambda db: db.q("[:find ?v :in $ ?a :where [?e ?a ?v]]", Keyword("a/k")) and db.datoms("xyz"), '"xyz"'),
    ],
)
def test_api_errors_quote_edn(db, call, fragment):
    with pytest.raises(DatalogError) as info:
        call(db)
    message = str(info.value)
    assert fragment in message
    assert not _PYTHON_REPR.search(_clean(message)), message
