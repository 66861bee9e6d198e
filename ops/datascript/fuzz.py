"""Generative differential testing of store.datalog against DataScript 1.8.1.

Owns: running generated cases (``grammar``) through both engines, the canonical comparison,
shrinking a divergence to a small reproduction, and the regression-case file format that
tests/store/datalog/test_fuzz.py replays without node.

* ``DataScript``: one long-lived node process (js/session.js) per fuzz run; a dataset is loaded
  once and then queried many times, one JSON line each, so a single slow query can be timed out
  (the process is restarted and the dataset reloaded).
* ``Ours``: the engine on an in-memory SQLite database; a query over its time budget is stopped by
  SIGALRM (main thread only) and counted as a timeout, not a divergence.
* Comparison: entity ids differ between engines, so every entity id in a result is translated to
  the entity's unique identity (every generated entity has one); relations are compared as sorted
  lists (duplicates are a divergence); ``?x .`` / ``[?x ?y]`` without aggregates pick an arbitrary
  row in DataScript, so ours must be one of the rows of the same query with a relation find.
  Both erroring is agreement; one erroring is a divergence.
* Differences kept on purpose (docs/datalog.md, compatibility table) are skipped by name in
  ``KEPT``; each skip is counted with its reason.
Must never: be imported by the product.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import select
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edn_format import Keyword

from store.datalog import Database

from . import grammar as G
from .reference import JS_DIR, ensure_node_modules, js_edn, js_schema, js_tx

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
    for f in _split_forms(text):
        if f.startswith("[") and not f.startswith("[("):
            out.append(_split_forms(f[1:-1]))
        if f[:1] in "([":
            out += _patterns(f[1:-1])
    return out


def _where(q: dict) -> str:
    return q["query"].split(" :where ", 1)[1][:-1]


def _repeated_var(q: dict, model: G.Model) -> bool:
    for toks in _patterns(_where(q)):
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
    "ds-lazy-validation": ("DataScript validates or / not / insufficient bindings only when the clause runs on a "
                           "non-empty relation; ours rejects the query up front", lambda q, m: False),
    "ds-rule-required-vars": ("DataScript 1.8.1 returns a cross product for a rule with required vars "
                              "[(r [?e] ?v) ...] (the bound ?e is not joined)", _rule_required),
}


# -- divergences already reported (FUZZ_FINDINGS.md), still counted as divergences -----------
# (verdict, ours, DataScript) -> True when the divergence is that finding; used to label counts only


def _clause_order(ours: Any, theirs: Any) -> bool:
    return isinstance(theirs, dict) and "Insufficient bindings" in str(theirs.get("error", "")) and not (
        isinstance(ours, dict) and "error" in ours)


def _debool(x: Any) -> Any:
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, list):
        return sorted((_debool(i) for i in x), key=_key)
    if isinstance(x, dict):
        return {k: _debool(v) for k, v in x.items()}
    return x


def _bool_is_int(ours: Any, theirs: Any) -> bool:
    """Equal once true/false are read as 1/0 (and duplicates dropped): Python's 1 == True."""
    def norm(x: Any) -> Any:
        d = _debool(x)
        return sorted({_key(i) for i in d}) if isinstance(d, list) else _key(d)
    if isinstance(ours, dict) and "error" in ours:
        return False
    # merged rows also change counts and aggregates: any divergence where DataScript's answer holds a boolean
    return norm(ours) == norm(theirs) or (" true" in _key(theirs) or " false" in _key(theirs)
                                          or _key(theirs)[:5] in ("true", "false") or "[true" in _key(theirs)
                                          or "[false" in _key(theirs))


def _nothing_found(ours: Any, theirs: Any) -> bool:
    return isinstance(theirs, dict) and "Nothing found for entity id" in str(theirs.get("error", "")) and not (
        isinstance(ours, dict) and "error" in ours)


KNOWN: dict[str, tuple[str, Any]] = {
    "F3-true-is-1": ("true and 1 (false and 0) are merged by de-duplication (FUZZ_FINDINGS.md F3)", _bool_is_int),
    "F4-lookup-ref-nothing-found": ("a lookup ref that finds nothing: DataScript raises, ours returns no rows "
                                    "(FUZZ_FINDINGS.md F4)", _nothing_found),
    "F1-clause-order": ("DataScript rejects a clause whose inputs are unbound at its written position; ours "
                        "reorders and accepts (FUZZ_FINDINGS.md F1)", _clause_order),
}


# -- the two engines ----------------------------------------------------------------------


class FuzzTimeout(BaseException):
    """Raised by SIGALRM inside our engine (a BaseException so the engine cannot wrap it)."""


class DataScript:
    """A node process running js/session.js."""

    def __init__(self, timeout: float = 20.0) -> None:
        if not ensure_node_modules():
            raise RuntimeError("node/npm are not installed")
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.loaded: tuple[dict, list] | None = None
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen(["node", "session.js"], cwd=JS_DIR, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1 << 20)

    def _call(self, cmd: dict, timeout: float) -> dict | None:
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("DataScript session exited")
        return json.loads(line)

    def restart(self) -> None:
        self.close()
        self._start()
        if self.loaded:
            self.load(*self.loaded)

    def load(self, schema: dict, txs: list) -> None:
        self.loaded = (schema, txs)
        r = self._call({"op": "load", "schema": js_schema(schema), "txs": [js_tx(t) for t in txs]}, 600)
        if r is None or "error" in r:
            raise RuntimeError(f"DataScript rejected the data: {r}")

    def q(self, query: str, inputs: list) -> tuple[str, Any]:
        ins = [js_edn(i) if isinstance(i, str) and i.lstrip().startswith("[[") else i for i in inputs]
        r = self._call({"op": "q", "query": js_edn(query), "inputs": ins}, self.timeout)
        if r is None:
            self.restart()
            return ("timeout", None)
        return ("error", r["error"]) if "error" in r else ("value", r["value"])

    def close(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _on_alarm(signum: int, frame: Any) -> None:
    raise FuzzTimeout()


def ours_inputs(inputs: list, overrides: dict) -> list:
    """Our spelling of the inputs: ``{"kw": name}`` stands for an EDN keyword."""
    out = list(inputs)
    for k, v in (overrides or {}).items():
        out[int(k)] = Keyword(v["kw"]) if isinstance(v, dict) else v
    return out


def run_ours(db: Database, query: str, inputs: list, timeout: float = 20.0) -> tuple[str, Any]:
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return ("value", db.q(query, *inputs))
    except FuzzTimeout:
        return ("timeout", None)
    except Exception as exc:  # compared with DataScript's verdict
        return ("error", f"{type(exc).__name__}: {exc}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def load_ours(schema: dict, txs: list) -> Database:
    db = Database.open(":memory:", schema)
    db.transact_many(txs)
    return db


def identity_queries(schema: dict) -> list[str]:
    return [f"[:find ?e ?v :where [?e :{a} ?v]]" for a, p in schema.items()
            if p.get("db/unique") == "db.unique/identity" and a.endswith("/id")]


def ours_ids(db: Database, schema: dict) -> dict[int, str]:
    ids: dict[int, str] = {}
    for q in identity_queries(schema):
        ids.update(dict(db.q(q)))
    return ids


def ds_ids(ds: DataScript, schema: dict) -> dict[int, str]:
    ids: dict[int, str] = {}
    for q in identity_queries(schema):
        kind, value = ds.q(q, [])
        if kind != "value":
            raise RuntimeError(f"DataScript identity query failed: {value}")
        ids.update({e: v for e, v in value})
    return ids


# -- canonical results --------------------------------------------------------------------


def _scalar(x: Any) -> Any:
    if isinstance(x, Keyword):
        return x.name
    if isinstance(x, bool) or x is None or isinstance(x, (int, str)):
        return x
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if x.is_integer() and abs(x) < 2**53:
            return int(x)
        return float(f"{x:.9g}")
    if isinstance(x, (set, frozenset)):
        return sorted((_scalar(i) for i in x), key=_key)
    if isinstance(x, (list, tuple)):
        return [_scalar(i) for i in x]
    if isinstance(x, dict):
        return {str(k): _scalar(v) for k, v in x.items()}
    return repr(x)


def _key(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=str)


def _eid(x: Any, ids: dict[int, str]) -> Any:
    if isinstance(x, (list, tuple)) and len(x) == 2 and str(x[0]).endswith("/id"):
        return x[1]  # DataScript returns a lookup ref given as input as it is: [":T/id" ident]
    return ids.get(x, f"#unknown-eid {x!r}") if isinstance(x, int) and not isinstance(x, bool) else _scalar(x)


def _pulled(x: Any, ids: dict[int, str]) -> Any:
    if isinstance(x, dict):
        ident = ("id", "db/id")
        return {("db/id" if k in ident else str(k)): (_eid(v, ids) if k in ident else _pulled(v, ids))
                for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return sorted((_pulled(i, ids) for i in x), key=_key)  # card-many order is not compared
    return _scalar(x)


def _cell(x: Any, col: str, ids: dict[int, str]) -> Any:
    if col == "e":
        return _eid(x, ids)
    if col == "set-e":
        return sorted((_eid(i, ids) for i in x), key=_key) if isinstance(x, (list, tuple, set, frozenset)) else x
    if col == "set":
        return sorted((_scalar(i) for i in x), key=_key) if isinstance(x, (list, tuple, set, frozenset)) else x
    if col == "pull":
        return _pulled(x, ids)
    if col == "attr" and isinstance(x, str):
        # an attribute variable bound by an input keeps the input's spelling (":a/n" here, as
        # DataScript returns inputs as given); the attribute is what is compared
        return x.lstrip(":")
    return _scalar(x)


def canon(value: Any, kind: str, cols: list[str], ids: dict[int, str], keys: list | None = None) -> Any:
    """A JSON-comparable form of a result: entity ids as identities, relations as sorted row lists."""
    def row(r: Any) -> list:
        if isinstance(r, dict):
            r = [r.get(k, r.get(Keyword(k))) for k in keys or sorted(r)]
        if not isinstance(r, (list, tuple)):
            return [f"#not-a-row {r!r}"]
        return [_cell(x, c, ids) for x, c in zip(r, cols, strict=False)] + (["#width"] if len(r) != len(cols) else [])

    if value is None:
        return None
    if kind == "rel":
        if not isinstance(value, (list, tuple, set, frozenset)):
            return f"#not-a-relation {value!r}"
        return sorted((row(r) for r in value), key=_key)
    if kind == "coll":
        if not isinstance(value, (list, tuple, set, frozenset)):
            return f"#not-a-collection {value!r}"
        return sorted((_cell(x, cols[0], ids) for x in value), key=_key)
    if kind == "scalar":
        return _cell(value, cols[0], ids)
    return row(value)


def _keys_of(query: str) -> list | None:
    if ":keys " not in query:
        return None
    return query.split(":keys ", 1)[1].split(" :", 1)[0].split()


def _membership(q: dict) -> bool:
    """Scalar / tuple finds without aggregates: DataScript returns an arbitrary row."""
    return q["kind"] in ("scalar", "tuple") and "(" not in q["query"].split(":find", 1)[1].split(":", 1)[0]


def verdict(q: dict, ours: tuple[str, Any], ds: tuple[str, Any], ds_rel: tuple[str, Any] | None,
            our_ids: dict, ds_ids_: dict) -> tuple[str, Any, Any]:
    """("agree" | "diverge" | "timeout", canonical ours, canonical DataScript)."""
    if "timeout" in (ours[0], ds[0]) or (ds_rel is not None and ds_rel[0] == "timeout"):
        return "timeout", None, None
    if ours[0] == "error" and ds[0] == "value" and not ds[1] and _validation(ours[1]):
        return "kept:ds-lazy-validation", _show(ours, our_ids, q), ds[1]
    if ours[0] == "error" or ds[0] == "error":
        same = ours[0] == ds[0]
        return ("agree" if same else "diverge"), _show(ours, our_ids, q), _show(ds, ds_ids_, q)
    keys = _keys_of(q["query"])
    mine = canon(ours[1], q["kind"], q["cols"], our_ids, keys)
    if _membership(q) and ds_rel is not None:
        rows = canon(ds_rel[1], "rel", q["cols"], ds_ids_) if ds_rel[0] == "value" else None
        theirs = canon(ds[1], q["kind"], q["cols"], ds_ids_)
        if rows is None:
            return ("agree" if (mine is None) == (theirs is None) else "diverge"), mine, theirs
        mrow = [mine] if q["kind"] == "scalar" else mine
        ok = (mine is None and not rows) or (mine is not None and mrow in rows)
        return ("agree" if ok else "diverge"), mine, {"one of": rows[:20], "returned": theirs}
    theirs = canon(ds[1], q["kind"], q["cols"], ds_ids_, keys)
    return ("agree" if _key(mine) == _key(theirs) else "diverge"), mine, theirs


def _validation(msg: str) -> bool:
    """Our rejections of an invalid query (DataScript checks these lazily, not on an empty relation)."""
    m = msg.lower()
    return "insufficient bindings" in m or "must use the same variables" in m


def _show(r: tuple[str, Any], ids: dict, q: dict) -> Any:
    if r[0] == "error":
        return {"error": str(r[1])[:300]}
    return canon(r[1], q["kind"], q["cols"], ids, _keys_of(q["query"]))


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


def make_case(seed: int, size: int | None = None, queries: int | None = None) -> Case:
    rnd = random.Random(seed)
    if size is None:
        size = rnd.choices(SIZES, SIZE_WEIGHTS)[0]
    model = G.make_model(rnd)
    ents = G.make_entities(rnd, model, size)
    gen = G.QueryGen(rnd, model, ents, size)
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

    def forms(text: str, in_or: bool) -> list[str] | None:
        out = []
        for f in _split_forms(text):
            if f.startswith("[") and not f.startswith("[("):
                toks = _split_forms(f[1:-1])
                seen, preds = set(), []
                for i, t in enumerate(toks):
                    if t.startswith("?") and t in seen:
                        counter[0] += 1
                        toks[i] = f"{t}_r{counter[0]}"
                        preds.append(f"[(= {t} {toks[i]})]")
                    seen.add(t)
                if preds and in_or:
                    return None
                out += ["[" + " ".join(toks) + "]", *preds]
            elif f.startswith("("):
                items = _split_forms(f[1:-1])
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
                else:
                    body = items[n:]
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


# -- shrinking -----------------------------------------------------------------------------


class Shrinker:
    """Greedy shrinking of (entities, query) while the divergence persists (same kind of verdict)."""

    def __init__(self, case: Case, q: dict, ds: DataScript, budget_s: float = 90.0, max_checks: int = 150) -> None:
        self.case, self.q, self.ds = case, q, ds
        self.deadline = time.monotonic() + budget_s
        self.checks_left = max_checks
        self.errorish = None

    def _diverges(self, ents: dict, q: dict) -> tuple[bool, Any, Any]:
        if self.checks_left <= 0 or time.monotonic() > self.deadline:
            return False, None, None
        self.checks_left -= 1
        schema, txs = self.case.schema, self.case.txs(ents)
        try:
            self.ds.load(schema, txs)
        except RuntimeError:
            return False, None, None
        db = load_ours(schema, txs)
        try:
            v, mine, theirs = compare_one(db, self.ds, q, ours_ids(db, schema), ds_ids(self.ds, schema))
        finally:
            db.close()
        shape = (isinstance(mine, dict) and "error" in mine, isinstance(theirs, dict) and "error" in theirs)
        if self.errorish is None:
            self.errorish = shape
        return (v == "diverge" and shape == self.errorish), mine, theirs

    def run(self) -> dict:
        ents, q = dict(self.case.entities), dict(self.q)
        ok, mine, theirs = self._diverges(ents, q)
        if not ok:
            return {}
        q = self._shrink_query(ents, q)
        ents = self._shrink_entities(ents, q)
        q = self._shrink_query(ents, q)
        ents = self._shrink_attrs(ents, q)
        return {"entities": ents, "query": q}

    def _shrink_query(self, ents: dict, q: dict) -> dict:
        changed = True
        while changed:
            changed = False
            for cand in query_variants(q):
                if self._diverges(ents, cand)[0]:
                    q, changed = cand, True
                    break
        return q

    def _shrink_entities(self, ents: dict, q: dict) -> dict:
        # ddmin-style: drop chunks of entities (refs into dropped ones go with them)
        keys = list(ents)
        n = 2
        while len(keys) > 1:
            chunk = max(1, len(keys) // n)
            removed = False
            for i in range(0, len(keys), chunk):
                rest = keys[:i] + keys[i + chunk :]
                if rest and self._diverges({k: ents[k] for k in rest}, q)[0]:
                    keys, removed = rest, True
                    n = max(n - 1, 2)
                    break
            if not removed:
                if chunk == 1 or self.checks_left <= 0:
                    break
                n = min(n * 2, len(keys))
        return {k: ents[k] for k in keys}

    def _shrink_attrs(self, ents: dict, q: dict) -> dict:
        for ident in list(ents):
            for a in list(ents[ident]):
                if a.endswith("/id"):
                    continue
                trial = {**ents, ident: {k: v for k, v in ents[ident].items() if k != a}}
                if self._diverges(trial, q)[0]:
                    ents = trial
        return ents


def query_variants(q: dict) -> list[dict]:
    """Smaller queries: one clause (or one nested clause) removed, :with dropped, relation find."""
    text = q["query"]
    out = []
    head, where = text.split(" :where ", 1)
    clauses = _split_forms(where[:-1])
    for i in range(len(clauses)):
        if len(clauses) > 1:
            out.append(clauses[:i] + clauses[i + 1 :])
        inner = _inner_variants(clauses[i])
        out += [clauses[:i] + [c] + clauses[i + 1 :] for c in inner]
    variants = [{**q, "query": f"{head} :where {' '.join(c)}]", "rel_query": _rel_where(q, c)} for c in out]
    for i, value in enumerate(q["inputs"]):
        # collection / relation inputs: drop half, then single items (a tuple input then fails to
        # bind in both engines, which the shrinker rejects as a different verdict)
        lookup_ref = len(value) == 2 and str(value[0]).endswith("/id") if isinstance(value, list) else False
        if isinstance(value, list) and len(value) > 1 and not lookup_ref:
            half = len(value) // 2
            for kept in [value[:half], value[half:]] + [value[:j] + value[j + 1 :] for j in range(min(len(value), 8))]:
                variants.append({**q, "inputs": q["inputs"][:i] + [kept] + q["inputs"][i + 1 :]})
    if " :with " in head:
        h2 = head.split(" :with ", 1)[0] + (" :in " + head.split(" :in ", 1)[1] if " :in " in head else "")
        variants.append({**q, "query": f"{h2} :where {where}", "rel_query": q["rel_query"]})
    return variants


def _rel_where(q: dict, clauses: list[str]) -> str:
    head = q["rel_query"].split(" :where ", 1)[0]
    return f"{head} :where {' '.join(clauses)}]"


def _inner_variants(form: str) -> list[str]:
    """``(not a b)`` -> ``(not b)``..., ``(or a b c)`` -> ``(or a c)``...; keeps at least one."""
    if not form.startswith("("):
        return []
    items = _split_forms(form[1:-1])
    if items[0] not in ("not", "not-join", "or", "or-join", "and"):
        return []  # a rule call: its arguments are not clauses
    head_n = 2 if items[0] in ("not-join", "or-join") else 1
    body = items[head_n:]
    out = []
    min_body = 2 if items[0] in ("or",) else 1
    if len(body) > min_body:
        for i in range(len(body)):
            out.append("(" + " ".join(items[:head_n] + body[:i] + body[i + 1 :]) + ")")
    for i, b in enumerate(body):
        for sub in _inner_variants(b):
            out.append("(" + " ".join(items[:head_n] + body[:i] + [sub] + body[i + 1 :]) + ")")
    return out


def _split_forms(text: str) -> list[str]:
    """Top-level EDN forms of a sequence body (strings respected)."""
    out, depth, start, i, n = [], 0, None, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if depth == 0 and start is None:
                out.append(text[i : j + 1])
            i = j + 1
            continue
        if ch in "([{":
            if depth == 0:
                start = i
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                out.append(text[start : i + 1])
                start = None
        elif depth == 0 and not ch.isspace():
            j = i
            while j < n and not text[j].isspace() and text[j] not in "([{)]}":
                j += 1
            out.append(text[i:j])
            i = j
            continue
        i += 1
    return out


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
            return (mine is None and not rows) or (mine is not None and mrow in rows), mine, exp
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
         shrink_known: bool = False) -> Stats:
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
            case = make_case(cs, size, queries)
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
                    small = Shrinker(c, q, ds).run()
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
