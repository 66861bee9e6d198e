"""Bindings: turning input values (and function results) into relations.

Owns: scalar, tuple, collection and relation binding forms (``?x``, ``[?a ?b]``,
``[?x ...]``, ``[[?a ?b]]``, ``_``) applied to Python values.
Must never: evaluate clauses or touch a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edn_format import ImmutableDict

from . import edn
from .errors import QueryError
from .parser import BindColl, BindIgnore, BindScalar, BindTuple, Var, _fmt
from .relation import Rel, getter
from .values import wrap


def freeze(x: Any) -> Any:
    """Make an input value hashable (rows are hashed by joins): lists -> tuples, dicts -> ImmutableDict,
    booleans -> ``values.TRUE``/``FALSE``."""
    t = type(x)
    if t is str or t is int or t is float or x is None:
        return x
    if t is bool:
        return wrap(x)  # true must not merge with 1 in rows (values.py)
    if isinstance(x, list):
        return tuple(freeze(i) for i in x)
    if isinstance(x, tuple):
        return tuple(freeze(i) for i in x) if any(isinstance(i, (list, dict)) for i in x) else x
    if isinstance(x, set):
        return frozenset(freeze(i) for i in x)
    if type(x) is dict:
        return ImmutableDict({freeze(k): freeze(v) for k, v in x.items()})
    return x


def bind_value(binding: Any, value: Any, form: Any) -> Rel | None:
    """An :in binding (or a function result binding) applied to one value -> Rel."""
    if isinstance(binding, BindIgnore):
        return None
    vars = [v for v in flat_vars(binding)]
    rows = list(expand(binding, value, form))
    return Rel(vars, list(dict.fromkeys(rows)) if len(rows) > 1 else rows)


def flat_vars(b: Any) -> list[Var]:
    if isinstance(b, BindScalar):
        return [b.var]
    if isinstance(b, BindTuple):
        out = []
        for i in b.items:
            out += flat_vars(i)
        return out
    if isinstance(b, BindColl):
        return flat_vars(b.item)
    return []


def expand(b: Any, value: Any, form: Any):
    if isinstance(b, BindScalar):
        yield (freeze(value),)
    elif isinstance(b, BindIgnore):
        yield ()
    elif isinstance(b, BindColl):
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise QueryError(f"cannot bind {edn.fmt(value)} to collection binding in {_fmt(form)}")
        for item in value:
            yield from expand(b.item, item, form)
    elif isinstance(b, BindTuple):
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise QueryError(f"cannot bind {edn.fmt(value)} to tuple binding in {_fmt(form)}")
        items = list(value)
        if len(items) < len(b.items):
            raise QueryError(f"not enough elements in {edn.fmt(value)} for tuple binding in {_fmt(form)}")
        parts = [list(expand(sub, items[i], form)) for i, sub in enumerate(b.items)]
        acc = [()]
        for p in parts:
            acc = [x + y for x in acc for y in p]
        yield from acc


def bind_with_dups(binding: Any, value: Any, form: Any) -> Rel | None:
    """Like bind_value but tolerates a variable appearing twice (keeps equal rows)."""
    rel = bind_value(binding, value, form)
    if rel is None or len(set(rel.vars)) == len(rel.vars):
        return rel
    seen: dict = {}
    idx: list[int] = []
    checks: list[tuple[int, int]] = []
    for i, v in enumerate(rel.vars):
        if v in seen:
            checks.append((seen[v], i))
        else:
            seen[v] = i
            idx.append(i)
    g = getter(idx)
    rows = [g(r) for r in rel.rows if all(r[x] == r[y] for x, y in checks)]
    return Rel([rel.vars[i] for i in idx], rows)
