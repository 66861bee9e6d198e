"""Canonical results: what "the same answer" means between our engine and DataScript.

Owns: translating a result into a JSON-comparable form (entity ids as the entities' identities,
DataScript's lookup refs given as input as the identity they name, pulled maps with ``db/id``,
relations as sorted row lists so that duplicates still count, sets sorted, floats rounded) and the
verdict on one query: both erroring agrees, one erroring diverges; ``?x .`` / ``[?x ?y]`` without
aggregates pick an arbitrary row in DataScript, so ours must be one of the rows of the same query
with a relation find.
Must never: run an engine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Set as AbstractSet
from typing import Any

from edn_format import Keyword


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
    if isinstance(x, AbstractSet):  # a set, or the engine's ValueSet (true and 1 apart)
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
        return sorted((_eid(i, ids) for i in x), key=_key) if isinstance(x, (list, tuple, AbstractSet)) else x
    if col == "set":
        return sorted((_scalar(i) for i in x), key=_key) if isinstance(x, (list, tuple, AbstractSet)) else x
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
    tags = q.get("tags", ())
    if ours[0] == "error" and ds[0] == "value":
        # rule calls DataScript 1.8.1 does not check (generated on purpose, grammar.p_invalid): ours
        # must raise exactly this
        if "invalid_rule_arity" in tags and " arguments, called with " in ours[1]:
            return "kept:ds-rule-arity", _show(ours, our_ids, q), ds[1]
        if "fn_bad_attr" in tags and ": bad attribute " in ours[1]:
            return "kept:ds-fn-bad-attribute", _show(ours, our_ids, q), ds[1]
        if "invalid_rule_required" in tags and "insufficient bindings" in ours[1] and " requires [" in ours[1]:
            return "kept:ds-rule-required-vars", _show(ours, our_ids, q), ds[1]
    if ours[0] == "error" and ds[0] == "value" and _validation(ours[1]) and (
            not ds[1] or "nothing found for" in ours[1].lower() or _nested_offender(q["query"], ours[1])):
        # a lookup ref that names no entity is an error for us wherever it is written; DataScript
        # raises only if it evaluates that clause (not in a branch whose relation is already empty)
        return "kept:ds-lazy-validation", _show(ours, our_ids, q), ds[1]
    if _order_dependent(ds, ours) or _order_dependent(ours, ds) or _fn_value_error(q, ds, ours) \
            or _fn_value_error(q, ours, ds):
        # raised on a value reached in one engine's order (DataScript's written order, our plan)
        # where the other emptied the relation first, or on a variable holding one value that
        # DataScript substitutes into the pattern
        return "kept:ds-order-dependent-error", _show(ours, our_ids, q), _show(ds, ds_ids_, q)
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
        # a scalar nil is also the value of a row [nil] (a source's short tuple binds nil)
        ok = (mine is None and not rows) or ((mine is not None or q["kind"] == "scalar") and mrow in rows)
        return ("agree" if ok else "diverge"), mine, {"one of": rows[:20], "returned": theirs}
    theirs = canon(ds[1], q["kind"], q["cols"], ds_ids_, keys)
    if _key(mine) == _key(theirs):
        return "agree", mine, theirs
    if (isinstance(mine, list) and isinstance(theirs, list) and len(theirs) > len(mine)
            and (sorted({_key(r) for r in theirs}) == [_key(r) for r in mine] or _repeated_lookup_refs(q["inputs"]))
            and '/id", ' in json.dumps(q["inputs"])):
        # DataScript keeps lookup refs given as input as they are, so two lookup-ref arrays naming one
        # entity make two rows; ours resolves them (one row)
        return "kept:ds-input-lookup-ref-dups", mine, theirs
    return "diverge", mine, theirs


def _repeated_lookup_refs(inputs: Any) -> bool:
    """Two input rows naming one entity by the same lookup ref (DataScript keeps them apart, so a
    grouped aggregate counts them in two groups)."""
    refs: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, list) and len(x) == 2 and isinstance(x[0], str) and x[0].endswith("/id"):
            refs.append(_key(x))
        elif isinstance(x, list):
            for i in x:
                walk(i)

    walk(inputs)
    return len(refs) != len(set(refs))


def _nested_offender(query: str, msg: str) -> bool:
    """The clause our error quotes sits inside a not / or, where DataScript may never evaluate it."""
    clause = msg.rsplit(" in ", 1)[-1].split(" (rule ", 1)[0].strip()
    i = query.find(clause)
    if i <= 0:
        return False
    for form in ("(not ", "(not-join ", "(or ", "(or-join "):
        j = query.find(form)
        while 0 <= j < i:
            depth, k = 0, j
            for k in range(j, len(query)):  # the form's closing paren (strings hold no parens here)
                depth += {"(": 1, ")": -1}.get(query[k], 0)
                if depth == 0:
                    break
            if k > i:
                return True
            j = query.find(form, j + 1)
    return False


_VALUE_ERRORS = ("lookup ref attribute should be marked", "lookup ref attribute must be :db/unique",
                 "nothing found for entity id", "expected number or lookup ref for entity id")


def _order_dependent(err: tuple[str, Any], other: tuple[str, Any]) -> bool:
    """``err`` raised on a bound value that is no usable entity, ``other`` answered nothing."""
    return (err[0] == "error" and other[0] == "value" and not other[1]
            and any(m in str(err[1]).lower() for m in _VALUE_ERRORS))


def _fn_value_error(q: dict, err: tuple[str, Any], other: tuple[str, Any]) -> bool:
    """DataScript raised on a value given to get-else / get-some / missing? where an entity is
    expected (0, a string), in its written order, on a row that our plan filtered out first (or
    the reverse): e.g. ``[(missing? $ ?v :a/n)]`` before ``[?e :a/mix true]`` over values 0 and true."""
    return (err[0] == "error" and other[0] == "value"
            and "expected number or lookup ref for entity id" in str(err[1]).lower()
            and any(f"({fn} $ ?v" in q["query"] for fn in ("missing?", "get-else", "get-some")))


def _validation(msg: str) -> bool:
    """Our rejections of an invalid query (DataScript checks these lazily, not on an empty relation)."""
    m = msg.lower()
    # "nothing found": a lookup ref in the query names no entity; ours raises before evaluating
    # (whatever the plan), DataScript when it reaches the clause with a non-empty relation
    return ("insufficient bindings" in m or "must use the same variables" in m or "nothing found for" in m
            or "unknown rule" in m  # ours checks the bodies of the rules a query calls up front
            or "expected number or lookup ref for entity id" in m)  # a string written as an entity


def _show(r: tuple[str, Any], ids: dict, q: dict) -> Any:
    if r[0] == "error":
        return {"error": str(r[1])[:300]}
    return canon(r[1], q["kind"], q["cols"], ids, _keys_of(q["query"]))
