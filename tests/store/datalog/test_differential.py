"""Differential tests: the same tx data and queries through this engine and DataScript."""

from __future__ import annotations

import json
import math
from collections.abc import Set as AbstractSet
from typing import Any

import pytest

from sessiondb.ops.datascript.dataset import IDENTITIES, SCHEMA, session_txs
from sessiondb.ops.datascript.reference import fix_pulled
from sessiondb.store.datalog import Database, Keyword

from .suite import CASES

SEEDS = [1, 2, 3]


def _canon(x: Any, ids: dict[int, str], eid_cols: list[int], top: bool = False) -> Any:
    if isinstance(x, dict):
        return {k: (ids.get(v, v) if k == "db/id" else _canon(v, ids, [])) for k, v in x.items()}
    if isinstance(x, AbstractSet):
        return sorted((_canon(i, ids, []) for i in x), key=json.dumps)
    if isinstance(x, (list, tuple)):
        return [ids.get(v, v) if i in eid_cols else _canon(v, ids, []) for i, v in enumerate(x)]
    if isinstance(x, float):
        return round(x, 6) if not math.isnan(x) else "nan"
    if isinstance(x, Keyword):
        return x.name
    return x


def normalize(value: Any, kind: str, ids: dict[int, str], eid_cols: list[int]) -> Any:
    if kind in ("rel", "coll") and isinstance(value, (list, tuple)):
        if kind == "rel":
            rows = [_canon(r, ids, eid_cols) for r in value]
        else:
            rows = [_canon(v, ids, []) for v in value]
        return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))
    if kind == "scalar" and isinstance(value, (list, tuple, AbstractSet)) and not isinstance(value, str):
        return sorted((_canon(v, ids, []) for v in value), key=json.dumps)
    return _canon(value, ids, eid_cols)


def _kind(query: str) -> str:
    find = query.split(":find", 1)[1].split(":", 1)[0].strip()
    if find.endswith("."):
        return "scalar"
    if find.startswith("[") and "..." in find.split("]")[0]:
        return "coll"
    if find.startswith("["):
        return "tuple"
    return "rel"


def _identity_queries() -> list[dict[str, Any]]:
    return [{"query": f"[:find ?e ?v :where [?e :{a} ?v]]", "inputs": []} for a in IDENTITIES]


@pytest.fixture(scope="module", params=SEEDS)
def both(request, tmp_path_factory, datascript):
    """Load one seeded dataset into both engines and run the whole suite once per engine."""
    txs = session_txs(request.param, sessions=40)
    path = tmp_path_factory.mktemp(f"diff{request.param}") / "db.sqlite"
    db = Database.open(path, SCHEMA)
    for tx in txs:
        db.transact(tx)
    queries = [{"query": q, "inputs": inputs} for _n, q, inputs, _e in CASES] + _identity_queries()
    ref = datascript(SCHEMA, txs, queries)
    ref_ids: dict[int, str] = {}
    for r in ref["results"][len(CASES) :]:
        ref_ids.update({e: v for e, v in r["value"]})
    our_ids: dict[int, str] = {}
    for q in _identity_queries():
        our_ids.update(dict(db.q(q["query"])))
    yield db, ref["results"][: len(CASES)], our_ids, ref_ids
    db.close()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_datascript(both, case):
    db, ref_results, our_ids, ref_ids = both
    name, query, inputs, eid_cols = case
    ref = ref_results[CASES.index(case)]
    assert "error" not in ref, f"DataScript rejected {name}: {ref.get('error')}"
    kind = _kind(query)
    ours = normalize(db.q(query, *inputs), kind, our_ids, eid_cols)
    value = fix_pulled(ref["value"]) if "pull" in query else ref["value"]
    theirs = normalize(value, kind, ref_ids, eid_cols)
    assert ours == theirs
