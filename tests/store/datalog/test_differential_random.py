"""Randomized differential test: hypothesis generates small histories (upserts, overwrites,
retractions, retractEntity, nested maps); both engines must agree on a fixed query set."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessiondb.store.datalog import Database

from .test_differential import normalize

SCHEMA = {
    "person/name": {"db/unique": "db.unique/identity"},
    "person/friend": {"db/valueType": "db.type/ref", "db/cardinality": "db.cardinality/many"},
    "person/tags": {"db/cardinality": "db.cardinality/many"},
}
NAMES = [f"p{i}" for i in range(6)]
TAGS = ["red", "green", "blue"]
REACH = "[[(reach ?a ?b) [?a :person/friend ?b]] [(reach ?a ?b) [?a :person/friend ?x] (reach ?x ?b)]]"

QUERIES = [
    ("rel", "[:find ?n ?a :where [?p :person/name ?n] [?p :person/age ?a]]", []),
    ("rel", "[:find ?n ?t :where [?p :person/name ?n] [?p :person/tags ?t]]", []),
    ("rel", "[:find ?n ?f :where [?p :person/friend ?q] [?p :person/name ?n] [?q :person/name ?f]]", []),
    ("rel", "[:find ?t (count ?p) :where [?p :person/tags ?t]]", []),
    ("rel", "[:find ?n :where [?p :person/name ?n] (not [?p :person/tags _])]", []),
    ("rel", '[:find ?n :where [?p :person/name ?n] (or [?p :person/tags "red"] [?p :person/age 7])]', []),
    ("rel", "[:find ?n ?m :in $ % :where (reach ?p ?q) [?p :person/name ?n] [?q :person/name ?m]]", [REACH]),
    ("scalar", "[:find (sum ?a) . :with ?p :where [?p :person/age ?a]]", []),
    ("rel", "[:find ?n ?a :where [?p :person/name ?n] [(get-else $ ?p :person/age 0) ?a] [(< ?a 25)]]", []),
]


@st.composite
def histories(draw):
    txs = []
    known: list[str] = []
    for _ in range(draw(st.integers(1, 5))):
        tx = []
        for _ in range(draw(st.integers(1, 5))):
            kind = draw(st.sampled_from(["age", "tags", "friend", "retract", "retract-entity"]))
            name = draw(st.sampled_from(NAMES))
            if kind == "age":
                tx.append({"person/name": name, "person/age": draw(st.integers(0, 50))})
            elif kind == "tags":
                tx.append({"person/name": name, "person/tags": draw(st.lists(st.sampled_from(TAGS), max_size=2))})
            elif kind == "friend":
                tx.append({"person/name": name, "person/friend": [{"person/name": draw(st.sampled_from(NAMES))}]})
            elif known and kind == "retract":
                who = draw(st.sampled_from(known))
                tx.append([":db/retract", ["person/name", who], "person/tags", draw(st.sampled_from(TAGS))])
            elif known:
                tx.append([":db/retractEntity", ["person/name", draw(st.sampled_from(known))]])
                break  # later items could name the retracted entity through a lookup ref
        txs.append(tx)
        known = sorted({i["person/name"] for t in txs for i in t if isinstance(i, dict)})
        known = [
            k
            for k in known
            if not any(isinstance(i, list) and i[0] == ":db/retractEntity" and i[1][1] == k for t in txs for i in t)
        ]
    return txs


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(txs=histories())
def test_random_histories_match_datascript(tmp_path_factory, datascript, txs):
    path = tmp_path_factory.mktemp("rnd") / "db.sqlite"
    with Database.open(path, SCHEMA) as db:
        ours_tx_error = None
        try:
            for tx in txs:
                db.transact(tx)
        except Exception as exc:  # compared with DataScript's verdict below
            ours_tx_error = exc
        ref = datascript(SCHEMA, txs, [{"query": q, "inputs": i} for _k, q, i in QUERIES])
        assert ours_tx_error is None, f"we rejected a history DataScript accepted: {ours_tx_error}"
        for (kind, q, inputs), r in zip(QUERIES, ref["results"], strict=True):
            assert "error" not in r, r
            assert normalize(db.q(q, *inputs), kind, {}, []) == normalize(r["value"], kind, {}, []), q
