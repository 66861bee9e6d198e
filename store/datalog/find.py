"""The find phase: from the bound relations to the query result.

Owns: projection onto :find and :with variables, grouping and aggregates, pull
expressions in :find, and the shape of results (relation, collection, tuple,
scalar, :keys maps).
Must never: evaluate where clauses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import builtins as bi
from . import edn
from .errors import QueryError
from .parser import FindAgg, FindPull, Query, Var
from .pull import parse_pattern, pull_many
from .relation import getter, group_rows
from .values import unwrap, unwrap_rows

if TYPE_CHECKING:
    from .context import Context
    from .db import DatomDb


def find(db: DatomDb, q: Query, ctx: Context, sources: dict) -> Any:
    elems = q.find
    vars_: list[Var] = []
    for el in elems:
        if el.var not in vars_:
            vars_.append(el.var)
        if isinstance(el, FindPull) and isinstance(el.pattern, Var) and el.pattern not in vars_:
            vars_.append(el.pattern)
    for w in q.with_vars:
        if w not in vars_:
            vars_.append(w)
    if ctx.empty:
        rows: list[tuple] = []
    else:
        for v in vars_:
            if not ctx.has(v):
                raise QueryError(f"find variable {v.name} is not bound by the query")
        rows = ctx.project(tuple(vars_)).rows
    pos = {v: i for i, v in enumerate(vars_)}
    aggs = [i for i, el in enumerate(elems) if isinstance(el, FindAgg)]
    if aggs:
        results = _aggregate(elems, rows, pos)
    else:
        g = getter([pos[el.var] for el in elems])
        results = list(dict.fromkeys(g(r) for r in rows)) if len(vars_) > len(elems) else [g(r) for r in rows]
    pulls = [i for i, el in enumerate(elems) if isinstance(el, FindPull)]
    if pulls:
        for i in pulls:
            el = elems[i]
            src = sources.get(el.source)
            if src is None or not hasattr(src, "entity_attrs"):
                raise QueryError(f"pull needs a database source {el.source}")
            if isinstance(el.pattern, Var):
                pat_by_row = {}
                for r in rows:
                    pat_by_row.setdefault(r[pos[el.var]], r[pos[el.pattern]])
                for j, res in enumerate(results):
                    pat = parse_pattern(pat_by_row[res[i]])
                    results[j] = res[:i] + (pull_many(src, pat, [res[i]])[0],) + res[i + 1 :]
            else:
                eids = list({res[i] for res in results})
                pulled = dict(zip(eids, pull_many(src, el.pattern, eids), strict=False))
                results = [res[:i] + (pulled[res[i]],) + res[i + 1 :] for res in results]
    results = unwrap_rows(results)  # booleans leave relations as Python's (values.py)
    if q.kind == "scalar":
        return results[0][0] if results else None
    if q.kind == "coll":
        return [r[0] for r in results]
    if q.kind == "tuple":
        return results[0] if results else None
    if q.keys is not None:
        return [dict(zip(q.keys, r, strict=False)) for r in results]
    return results


# aggregates that only count values: they see booleans wrapped, so that true and 1 stay two values
_ON_WRAPPED = {"count", "count-distinct", "distinct"}


def _aggregate(elems: tuple, rows: list[tuple], pos: dict) -> list[tuple]:
    group_idx = [pos[el.var] for el in elems if not isinstance(el, FindAgg)]
    groups = group_rows(rows, getter(group_idx))
    # per find element: ("agg", column index, fn, args, element) or ("key", position in group key)
    plan = []
    ki = 0
    for el in elems:
        if isinstance(el, FindAgg):
            plan.append(("agg", pos[el.var], bi.AGGREGATES[el.fn], el.args, el))
        else:
            plan.append(("key", ki, None, None, el))
            ki += 1
    out = []
    for key, members in groups.items():
        res = []
        for kind, i, fn, args, el in plan:
            if kind == "key":
                res.append(key[i])
                continue
            col = [m[i] for m in members]
            if el.fn not in _ON_WRAPPED:
                col = [unwrap(x) for x in col]
            try:
                res.append(fn(*args, col))
            except Exception as exc:
                raise QueryError(f"aggregate {edn.fmt(el)} failed: {type(exc).__name__}: {exc}") from None
        out.append(tuple(res))
    return out
