"""Relations and the relational operators the query engine is built from.

Owns: ``Rel`` (a set of variables and a list of row tuples) and hash join,
product and projection.  Every clause of a query becomes a ``Rel``; relations
that share no variable are kept apart until the find phase needs them together.
Must never: know about clauses, databases or SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any


def getter(idxs: Sequence[int]) -> Callable[[tuple], tuple]:
    """A fast row -> tuple-of-columns function (itemgetter returns a scalar for one index)."""
    if not idxs:
        return lambda r: ()
    if len(idxs) == 1:
        i = idxs[0]
        return lambda r: (r[i],)
    return itemgetter(*idxs)


def first_positions(items: Sequence[Any], keep: Callable[[Any], bool]) -> tuple[list, list[int], list[tuple[int, int]]]:
    """Of the items `keep` accepts: each distinct one, the position of its first occurrence,
    and a (first, later) position pair per repeat (a row must agree at both positions)."""
    distinct: list[Any] = []
    positions: list[int] = []
    repeats: list[tuple[int, int]] = []
    for i, item in enumerate(items):
        if keep(item):
            if item in distinct:
                repeats.append((positions[distinct.index(item)], i))
            else:
                distinct.append(item)
                positions.append(i)
    return distinct, positions, repeats


def group_rows(rows: Iterable[tuple], key: Callable[[tuple], Any],
               value: Callable[[tuple], Any] | None = None) -> dict[Any, list]:
    """key -> the rows (or `value(row)`s) with that key, in order."""
    groups: dict[Any, list] = {}
    for r in rows:
        k = key(r)
        item = r if value is None else value(r)
        bucket = groups.get(k)
        if bucket is None:
            groups[k] = [item]
        else:
            bucket.append(item)
    return groups


def key_getter(idxs: Sequence[int]) -> Callable[[tuple], Any]:
    """Row -> hashable join key; a bare value for one column (cheaper than a 1-tuple)."""
    if not idxs:
        return lambda r: ()
    return itemgetter(*idxs)


class Rel:
    __slots__ = ("vars", "rows", "pos")

    def __init__(self, vars: Sequence[Any], rows: list[tuple]) -> None:
        self.vars = tuple(vars)
        self.rows = rows
        self.pos = {v: i for i, v in enumerate(self.vars)}

    def __repr__(self) -> str:
        return f"Rel({self.vars}, {len(self.rows)} rows)"

    def column(self, var: Any) -> set:
        i = self.pos[var]
        return {r[i] for r in self.rows}

    def project(self, vars: Sequence[Any]) -> Rel:
        if tuple(vars) == self.vars:
            return Rel(vars, list(dict.fromkeys(self.rows)))
        if len(vars) == 1:  # avoid a lambda call per row for the common one-variable case
            i = self.pos[vars[0]]
            return Rel(vars, [(x,) for x in {r[i] for r in self.rows}])
        g = itemgetter(*[self.pos[v] for v in vars]) if vars else (lambda r: ())
        return Rel(vars, list({g(r) for r in self.rows}))


def product(a: Rel, b: Rel) -> Rel:
    if not a.vars:
        return b if a.rows else Rel(b.vars, [])
    if not b.vars:
        return a if b.rows else Rel(a.vars, [])
    return Rel(a.vars + b.vars, [x + y for x in a.rows for y in b.rows])


def hash_join(a: Rel, b: Rel) -> Rel:
    shared = [v for v in a.vars if v in b.pos]
    if not shared:
        return product(a, b)
    extra = [i for i, v in enumerate(b.vars) if v not in a.pos]
    ka = key_getter([a.pos[v] for v in shared])
    kb = key_getter([b.pos[v] for v in shared])
    if not extra or len(shared) == len(a.vars):
        # semi-join (one side's variables are all shared): filter the wider side by a key set
        if not extra:
            keys = {kb(r) for r in b.rows}
            return Rel(a.vars, [r for r in a.rows if ka(r) in keys])
        keys = {ka(r) for r in a.rows}
        return Rel(b.vars, [r for r in b.rows if kb(r) in keys])
    out_vars = a.vars + tuple(b.vars[i] for i in extra)
    ex = getter(extra)
    fast = _join_unique(a, b, ka, kb, ex)
    if fast is not None:
        return Rel(out_vars, fast)
    rows: list[tuple] = []
    append = rows.append
    if len(a.rows) <= len(b.rows):  # index the smaller side
        index = group_rows(a.rows, ka)
        for r in b.rows:
            bucket = index.get(kb(r))
            if bucket is not None:
                tail = ex(r)
                for x in bucket:
                    append(x + tail)
    else:
        tails = group_rows(b.rows, kb, ex)
        for r in a.rows:
            bucket = tails.get(ka(r))
            if bucket is not None:
                for tail in bucket:
                    append(r + tail)
    return Rel(out_vars, rows)


def _join_unique(a: Rel, b: Rel, ka: Callable, kb: Callable, ex: Callable) -> list[tuple] | None:
    """a ⋈ b when the smaller side's join keys are unique (the usual entity-to-attribute join):
    one dict built and probed with C-level ``map``/``zip``, no per-key lists; None otherwise."""
    if len(a.rows) <= len(b.rows):
        index = dict(zip(map(ka, a.rows), a.rows, strict=True))
        if len(index) != len(a.rows):
            return None
        get = index.get
        return [x + ex(r) for r, k in zip(b.rows, map(kb, b.rows), strict=True) if (x := get(k)) is not None]
    tails = dict(zip(map(kb, b.rows), map(ex, b.rows), strict=True))
    if len(tails) != len(b.rows):
        return None
    get = tails.get
    return [r + t for r, k in zip(a.rows, map(ka, a.rows), strict=True) if (t := get(k)) is not None]
