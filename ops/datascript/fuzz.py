"""Generative differential testing of store.datalog against DataScript 1.8.1: the driver.

Owns: which generated queries are compared (``KEPT``: differences kept on purpose and DataScript
bugs, skipped by name with the reason, or compared through a DataScript-side rewrite), labels for
divergences already reported and not fixed yet (``KNOWN``, none today), running cases through both engines
(``run_case``), the regression-case file format that tests/store/datalog/test_fuzz.py replays
without node, and ``fuzz`` (what ops/bench/datalog_fuzz.py runs).  The parts live beside it:
``grammar`` (schemas, data, queries), ``engines`` (DataScript session, our engine with a time
budget), ``canon`` (what the same answer means), ``shrink`` (smaller reproductions).
Must never: be imported by the product.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessiondb.store.datalog import Database

from . import grammar as G
from .canon import _key, _keys_of, _membership, canon, verdict
from .engines import DataScript, FuzzTimeout, ds_ids, load_ours, ours_ids, ours_inputs, run_ours
from .shrink import Shrinker, query_variants, split_forms

__all__ = ["DataScript", "FuzzTimeout", "Shrinker", "canon", "query_variants", "run_ours", "load_ours",
           "ours_inputs", "verdict", "fuzz", "run_case", "make_case", "replay", "load_regressions", "KEPT", "KNOWN"]

REGRESSIONS = Path(__file__).resolve().parents[2] / "tests" / "store" / "datalog" / "regressions"
# entity counts that put bound sets on both sides of the planner's thresholds in db.scan_pattern:
# ``len(bound) * 4 < count(attr)`` / ``< estimate(attr, v)`` (estimate saturates at 1000) and the
# 900-item IN-list chunks of storage.scan
SIZES = [10, 300, 5000, 50000]
SIZE_WEIGHTS = [30, 45, 20, 5]


# -- differences kept on purpose: skipped by the generator, by name -------------------------


def _get_else_many(q: dict, model: G.Model) -> bool:
    return any(f"(get-else $ ?{rest}" in q["query"] and f":{a.name} " in q["query"]
               for a in model.attrs.values() if a.many for rest in ("e",))


def _mixed_compare(q: dict, model: G.Model) -> bool:
    # a comparison of an attribute variable's value (any type) against a constant
    return "?a" in q["query"] and any(f"({op} ?v" in q["query"] for op in G._CMP)


def _patterns(text: str) -> list[list[str]]:
    """Token lists of every data pattern (a vector not starting with a call), at any depth."""
    out = []
    for f in split_forms(text):
        if f.startswith("[") and not f.startswith("[("):
            out.append(split_forms(f[1:-1]))
        if f[:1] in "([":
            out += _patterns(f[1:-1])
    return out


def _where(q: dict) -> str:
    return q["query"].split(" :where ", 1)[1][:-1]


_FORMS = {"not", "not-join", "or", "or-join", "and"}


def _rule_calls(text: str) -> list[list[str]]:
    """Token lists of every rule call (a list form that is no not / or / and), at any depth."""
    out = []
    for f in split_forms(text):
        if f.startswith("("):
            items = split_forms(f[1:-1])
            if items and items[0] not in _FORMS:
                out.append(items)
            else:
                out += _rule_calls(" ".join(items[1:]))
    return out


def _repeated_var(q: dict, model: G.Model) -> bool:
    for toks in _patterns(_where(q)) + _rule_calls(_where(q)):
        vs = [t for t in toks if t.startswith("?")]
        if len(vs) != len(set(vs)):
            return True
    return False


def _input_entity_in_fn(q: dict, model: G.Model) -> bool:
    head = q["query"].split(" :where ", 1)[0]
    if " :in " not in head:
        return False
    evars = {t.strip("[]") for t in head.split(" :in ", 1)[1].split() if t.strip("[]").startswith("?e")}
    where = _where(q)
    rules = " ".join(i for i in q["inputs"] if isinstance(i, str) and i.startswith("[["))
    # directly, or through a rule whose body calls one of those functions
    return any(f"$ {v} " in where for v in evars) or bool(evars and "$ ?" in rules)


def _rule_required(q: dict, model: G.Model) -> bool:
    return any(isinstance(i, str) and "[(req [" in i for i in q["inputs"])


KEPT: dict[str, tuple[str, Any]] = {
    "get-else-card-many": ("get-else on a cardinality-many attribute returns the first value here; "
                           "DataScript raises (docs/datalog.md)", _get_else_many),
    "mixed-type-compare": ("comparisons across types use a total order here; DataScript may throw "
                           "(docs/datalog.md)", _mixed_compare),
    "ds-repeated-var": ("DataScript 1.8.1 does not unify a variable repeated inside one data pattern: "
                        "[?e :a/p ?e] matches every datom (ours unifies)", _repeated_var),
    "ds-lookup-ref-input-in-fn": ("DataScript 1.8.1 passes an entity given as a lookup-ref input to missing? / "
                                  "get-else / get-some unresolved (missing? is always true)", _input_entity_in_fn),
    # applied to results, not to queries (see verdict): ours rejects an invalid query up front,
    # DataScript only when it evaluates the clause on a non-empty relation
    "ds-lazy-validation": ("DataScript validates or / not / insufficient bindings / lookup refs that find nothing "
                           "only when the clause runs on a non-empty relation; ours rejects the query up front",
                           lambda q, m: False),
    "ds-input-lookup-ref-dups": ("DataScript keeps lookup refs given as input unresolved, so two input rows naming "
                                 "one entity give duplicate result rows; ours resolves them (applied to results)",
                                 lambda q, m: False),
    "ds-order-dependent-error": ("a bound value that is no lookup ref (or names nobody) where an entity is expected "
                                 "raises when a clause reaches it on a non-empty relation: in DataScript's written "
                                 "order, in ours in the planner's (ours answers [] when another clause emptied the "
                                 "relation first; applied to results).  Also a string or boolean bound where an "
                                 "entity is expected: DataScript raises when the variable holds one value (it "
                                 "substitutes it into the pattern) and matches nothing otherwise; ours matches "
                                 "nothing", lambda q, m: False),
    "ds-rule-required-vars": ("DataScript 1.8.1 returns a cross product for a rule with required vars "
                              "[(r [?e] ?v) ...] (the bound ?e is not joined), and ignores them where the call is "
                              "written unbound; ours raises \"insufficient bindings\" there (applied to results)",
                              _rule_required),
    "ds-fn-bad-attribute": ("get-else / get-some / missing? given an attribute that is no keyword raise here; "
                            "DataScript 1.8.1 answers the default unless the entity has datoms to compare it with "
                            "(applied to results)", lambda q, m: False),
    "ds-rule-arity": ("DataScript 1.8.1 does not check a rule call's number of arguments; ours raises "
                      "(applied to results)", lambda q, m: False),
}


# -- divergences already reported, still counted as divergences ------------------------------
# name -> (reason, hit(ours, DataScript) -> True when a divergence is that finding); labels counts
# only (and the CI slice forgives them).  Empty: every finding reported so far is fixed (the
# earlier F1 clause order, F3 true merged with 1 and F4 lookup refs that find nothing).
KNOWN: dict[str, tuple[str, Any]] = {}


# -- cases ---------------------------------------------------------------------------------


@dataclass
class Case:
    seed: int
    size: int
    model: G.Model
    entities: dict[str, dict[str, Any]]
    queries: list[dict]

    @property
    def schema(self) -> dict:
        return self.model.schema()

    def txs(self, entities: dict | None = None) -> list:
        return G.to_txs(self.model, self.entities if entities is None else entities)


def make_case(seed: int, size: int | None = None, queries: int | None = None, rare: bool = False) -> Case:
    """A generated case; ``rare``: top-level clauses from ``grammar.RARE`` (the rare branches)."""
    rnd = random.Random(seed)
    if size is None:
        size = rnd.choices(SIZES, SIZE_WEIGHTS)[0]
    model = G.make_model(rnd)
    ents = G.make_entities(rnd, model, size)
    gen = G.QueryGen(rnd, model, ents, size)
    if rare:
        gen.clauses = G.RARE
    n = queries or {10: 40, 300: 60, 5000: 40, 50000: 25}.get(size, 40)
    return Case(seed, size, model, ents, [gen.query().to_json() for _ in range(n)])


@dataclass
class Stats:
    cases: int = 0
    queries: int = 0
    agree: int = 0
    diverge: int = 0
    timeouts: int = 0
    both_errors: int = 0
    ours_errors: int = 0
    ds_errors: int = 0
    skipped: Counter = field(default_factory=Counter)
    known: Counter = field(default_factory=Counter)  # divergences matching a reported finding
    rewritten: int = 0  # compared with a DataScript-side rewrite (repeated pattern variables)
    divergences: list = field(default_factory=list)  # (case, query, ours, theirs)
    seconds: float = 0.0

    def add(self, other: Stats) -> None:
        for f in ("cases", "queries", "agree", "diverge", "timeouts", "both_errors", "ours_errors", "ds_errors",
                  "rewritten"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.skipped.update(other.skipped)
        self.known.update(other.known)
        self.divergences += other.divergences


def run_case(case: Case, ds: DataScript, timeout: float = 20.0) -> Stats:
    st = Stats(cases=1)
    schema, txs = case.schema, case.txs()
    ds.timeout = timeout
    ds.load(schema, txs)
    db = load_ours(schema, txs)
    try:
        oid, did = ours_ids(db, schema), ds_ids(ds, schema)
        for q in case.queries:
            kept = [name for name, (_why, hit) in KEPT.items() if hit(q, case.model)]
            if kept == ["ds-repeated-var"] and unify_for_datascript(q) is not None:
                st.rewritten += 1  # compared after all: DataScript gets the repeated variable spelled out
            elif kept:
                st.skipped[kept[0]] += 1
                continue
            st.queries += 1
            v, mine, theirs = compare_one(db, ds, q, oid, did, timeout)
            if v.startswith("kept:"):
                st.skipped[v[5:]] += 1
                st.queries -= 1
                continue
            if v == "timeout":
                st.timeouts += 1
                continue
            if isinstance(mine, dict) and "error" in mine:
                st.ours_errors += 1
            if isinstance(theirs, dict) and "error" in theirs:
                st.ds_errors += 1
            if v == "agree":
                st.agree += 1
                if isinstance(mine, dict) and "error" in mine and isinstance(theirs, dict) and "error" in theirs:
                    st.both_errors += 1
            else:
                st.diverge += 1
                st.divergences.append((case, q, mine, theirs))
                st.known.update(name for name, (_why, hit) in KNOWN.items() if hit(mine, theirs))
    finally:
        db.close()
    return st


def compare_one(db: Database, ds: DataScript, q: dict, oid: dict, did: dict, timeout: float = 20.0) -> tuple:
    ours = run_ours(db, q["query"], ours_inputs(q["inputs"], q.get("ours")), timeout)
    ds_query, ds_rel = ds_texts(q)
    theirs = ds.q(ds_query, q["inputs"])
    rel = ds.q(ds_rel, q["inputs"]) if _membership(q) else None
    return verdict(q, ours, theirs, rel, oid, did)


def ds_texts(q: dict) -> tuple[str, str]:
    """The query (and its relation-find twin) as DataScript is given it."""
    if _repeated_var(q, None):
        rw = unify_for_datascript(q)
        if rw is not None:
            return rw["ds_query"], rw["ds_rel_query"]
    return q["query"], q["rel_query"]


def unify_for_datascript(q: dict) -> dict | None:
    """The query with each variable repeated inside one pattern renamed and unified by a predicate
    (``[?e :a/p ?e]`` -> ``[?e :a/p ?e_r1] [(= ?e ?e_r1)]``), which DataScript 1.8.1 evaluates
    correctly; None when a pattern sits directly in a plain ``or`` branch (a new variable there
    would make the branches' variables differ)."""
    counter = [0]
    head = q["query"].split(" :where ", 1)[0]
    inputs = set(head.split(" :in ", 1)[1].replace("[", " ").replace("]", " ").split()) if " :in " in head else set()

    def spell_out(toks: list[str], in_or: bool) -> list[str] | None:
        """Rename each repeat of a variable in `toks` (in place); the unifying predicates, or None
        when that cannot be done (an input repeated: DataScript keeps a lookup ref given as input,
        so (= ?e ?e_r1) fails; or a plain `or` branch, whose variables must not differ)."""
        seen, preds = set(), []
        for i, t in enumerate(toks):
            if t.startswith("?") and t in seen:
                if t in inputs:
                    return None
                counter[0] += 1
                toks[i] = f"{t}_r{counter[0]}"
                preds.append(f"[(= {t} {toks[i]})]")
            seen.add(t)
        return None if preds and in_or else preds

    def forms(text: str, in_or: bool) -> list[str] | None:
        out = []
        for f in split_forms(text):
            if f.startswith("[") and not f.startswith("[("):
                toks = split_forms(f[1:-1])
                preds = spell_out(toks, in_or)
                if preds is None:
                    return None
                out += ["[" + " ".join(toks) + "]", *preds]
            elif f.startswith("("):
                items = split_forms(f[1:-1])
                n = 2 if items[0] in ("not-join", "or-join") else 1
                if items[0] in ("or", "or-join"):
                    body = []
                    for b in items[n:]:
                        sub = forms(b, items[0] == "or")
                        if sub is None:
                            return None
                        body.append(sub[0] if len(sub) == 1 else "(and " + " ".join(sub) + ")")
                elif items[0] in ("not", "not-join", "and"):
                    body = forms(" ".join(items[n:]), False)
                    if body is None:
                        return None
                else:  # a rule call: DataScript 1.8.1 does not unify a variable repeated in it either
                    preds = spell_out(items, in_or)
                    if preds is None:
                        return None
                    out += ["(" + " ".join(items) + ")", *preds]
                    continue
                out.append("(" + " ".join(items[:n] + body) + ")")
            else:
                out.append(f)
        return out

    def rewrite(text: str) -> str | None:
        head, where = text.split(" :where ", 1)
        body = forms(where[:-1], False)
        return None if body is None else f"{head} :where {' '.join(body)}]"

    ds_q, ds_rel = rewrite(q["query"]), rewrite(q["rel_query"])
    if ds_q is None or ds_rel is None:
        return None
    return {**q, "ds_query": ds_q, "ds_rel_query": ds_rel}


def _checker(case: Case, ds: DataScript) -> Any:
    """The shrinker's check: load (entities of ``case``) into both engines, compare one query."""

    def check(ents: dict, q: dict) -> tuple[str, Any, Any]:
        schema, txs = case.schema, case.txs(ents)
        try:
            ds.load(schema, txs)
        except RuntimeError:
            return "error", None, None
        db = load_ours(schema, txs)
        try:
            return compare_one(db, ds, q, ours_ids(db, schema), ds_ids(ds, schema))
        finally:
            db.close()

    return check


# -- regression cases ------------------------------------------------------------------------


def regression_doc(case: Case, shrunk: dict, ds: DataScript, finding: str = "") -> dict:
    """A self-contained case: data, query, inputs and DataScript's canonical answer."""
    ents, q = shrunk["entities"], shrunk["query"]
    schema, txs = case.schema, case.txs(ents)
    ds.load(schema, txs)
    did = ds_ids(ds, schema)
    ds_query, ds_rel = ds_texts(q)
    theirs = ds.q(ds_query, q["inputs"])
    expected: dict[str, Any]
    if theirs[0] == "error":
        expected = {"error": theirs[1]}
    elif _membership(q):
        rel = ds.q(ds_rel, q["inputs"])
        expected = {"one_of": canon(rel[1], "rel", q["cols"], did)}
    else:
        expected = {"value": canon(theirs[1], q["kind"], q["cols"], did, _keys_of(q["query"]))}
    return {"finding": finding, "seed": case.seed, "size": case.size, "schema": schema, "txs": txs,
            "query": q["query"], "kind": q["kind"], "cols": q["cols"], "inputs": q["inputs"],
            "ours": q.get("ours") or {}, "expected": expected}


def save_regression(doc: dict, directory: Path = REGRESSIONS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(json.dumps([doc["query"], doc["txs"], doc["inputs"]]).encode()).hexdigest()[:10]
    path = directory / f"case-{digest}.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


def replay(doc: dict) -> tuple[bool, Any, Any]:
    """Run a saved case through our engine only: (matches DataScript's saved answer, ours, expected)."""
    schema = doc["schema"]
    db = load_ours(schema, doc["txs"])
    try:
        oid = ours_ids(db, schema)
        kind, value = run_ours(db, doc["query"], ours_inputs(doc["inputs"], doc.get("ours")), 60)
        exp = doc["expected"]
        if kind == "error":
            return "error" in exp, {"error": value}, exp
        if "error" in exp:
            return False, canon(value, doc["kind"], doc["cols"], oid, _keys_of(doc["query"])), exp
        mine = canon(value, doc["kind"], doc["cols"], oid, _keys_of(doc["query"]))
        if "one_of" in exp:
            rows = exp["one_of"]
            mrow = [mine] if doc["kind"] == "scalar" else mine
            return (mine is None and not rows) or ((mine is not None or doc["kind"] == "scalar") and mrow in rows), \
                mine, exp
        return _key(mine) == _key(exp["value"]), mine, exp
    finally:
        db.close()


def load_regressions(directory: Path = REGRESSIONS) -> list[tuple[str, dict]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted(directory.glob("*.json"))]


def describe(case: Case, q: dict, mine: Any, theirs: Any) -> str:
    return (f"seed={case.seed} size={case.size}\n  query: {q['query']}\n  inputs: {json.dumps(q['inputs'])[:300]}"
            f"\n  ours: {json.dumps(mine, default=str)[:400]}\n  datascript: {json.dumps(theirs, default=str)[:400]}")


def fuzz(cases: int, seed: int, timeout: float = 20.0, sizes: list[int] | None = None,
         shrink: int = 0, save: bool = False, log: Any = None, queries: int | None = None,
         shrink_known: bool = False, rare: bool = False) -> Stats:
    """Run ``cases`` generated cases from ``seed``; shrink (and optionally save) up to ``shrink`` divergences
    (those matching a reported finding in ``KNOWN`` only with ``shrink_known``)."""
    total = Stats()
    t0 = time.monotonic()
    ds = DataScript(timeout)
    shrunk = 0
    try:
        for i in range(cases):
            cs = seed * 100_003 + i
            size = random.Random(cs).choice(sizes) if sizes else None
            case = make_case(cs, size, queries, rare)
            st = run_case(case, ds, timeout)
            total.add(st)
            if log:
                log(f"case {i} seed={cs} size={case.size}: {st.queries} queries, {st.diverge} divergences, "
                    f"{st.timeouts} timeouts")
                if (i + 1) % 10 == 0:
                    log(f"progress {i + 1}/{cases} cases: {total.queries} queries, {total.agree} agree, "
                        f"{total.diverge} diverge ({sum(total.known.values())} of reported findings), "
                        f"{total.timeouts} timeouts, {time.monotonic() - t0:.0f} s")
            for c, q, mine, theirs in st.divergences:
                known = [name for name, (_why, hit) in KNOWN.items() if hit(mine, theirs)]
                if log:
                    log(f"DIVERGENCE{' (' + known[0] + ')' if known else ''} " + describe(c, q, mine, theirs))
                if shrunk < shrink and (not known or shrink_known):
                    shrunk += 1
                    small = Shrinker(c.entities, q, _checker(c, ds)).run()
                    if small:
                        doc = regression_doc(c, small, ds, known[0] if known else "")
                        if log:
                            log(f"  shrunk to {len(small['entities'])} entities: {small['query']['query']}")
                        if save:
                            path = save_regression(doc)
                            if log:
                                log(f"  saved {os.path.relpath(path)}")
    finally:
        ds.close()
    total.seconds = time.monotonic() - t0
    return total
