"""The table of query predicates, functions and aggregates (DataScript's built-ins).

Owns: pure functions callable from ``[(f ...)]`` clauses and ``(agg ?x)`` find
elements, Clojure truthiness and ordering across types.  Functions that need the
database (``get-else``, ``get-some``, ``missing?``) receive it as their first
argument, like in DataScript, and use only ``Database.attr_values``.
Must never: know about clauses, relations or SQL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import cmp_to_key
from typing import Any

from edn_format import Keyword, Symbol

from . import edn
from .errors import QueryError
from .values import ValueSet

_TYPE_RANK = {bool: 0, int: 1, float: 1, str: 2, Keyword: 3}


def truthy(x: Any) -> bool:
    """Clojure truthiness: only nil and false are false (0 and "" are true)."""
    return not (x is None or x is False)


def compare(a: Any, b: Any) -> int:
    """Total order used by comparisons and min/max: numbers, then strings, then keywords."""
    try:
        return -1 if a < b else (1 if a > b else 0)
    except TypeError:
        ra, rb = _TYPE_RANK.get(type(a), 9), _TYPE_RANK.get(type(b), 9)
        if ra != rb:
            return -1 if ra < rb else 1
        sa, sb = str(a), str(b)
        return -1 if sa < sb else (1 if sa > sb else 0)


def _same(a: Any, b: Any) -> bool:
    """Clojure's = on values: true is not 1 (Python's == says it is)."""
    return a == b and (type(a) is bool) == (type(b) is bool)


def _chain(test: Callable[[int], bool]) -> Callable[..., bool]:
    def f(*args: Any) -> bool:
        return all(test(compare(args[i], args[i + 1])) for i in range(len(args) - 1))

    return f


def clj_str(x: Any) -> str:
    if x is None:
        return ""
    if x is True:
        return "true"
    if x is False:
        return "false"
    if isinstance(x, Keyword):
        return ":" + x.name
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e21:
        return str(int(x))  # JS prints 1.0 as "1"; DataScript is the reference
    return str(x)


def _div(a: Any, b: Any) -> Any:
    if b == 0:
        raise QueryError("divide by zero")
    if isinstance(a, int) and isinstance(b, int) and a % b == 0:
        return a // b
    return a / b


def _quot(a: Any, b: Any) -> Any:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _rem(a: Any, b: Any) -> Any:
    return a - b * _quot(a, b)


def _pattern(p: Any) -> re.Pattern:
    return p if isinstance(p, re.Pattern) else re.compile(str(p))


def _re_result(m: re.Match | None) -> Any:
    if m is None:
        return None
    if m.re.groups == 0:
        return m.group(0)
    return (m.group(0), *m.groups())


def _re_find(p: Any, s: str) -> Any:
    return _re_result(_pattern(p).search(s))


def _re_matches(p: Any, s: str) -> Any:
    return _re_result(_pattern(p).fullmatch(s))


def _re_seq(p: Any, s: str) -> Any:
    out = [_re_result(m) for m in _pattern(p).finditer(s)]
    return out or None


def _subs(s: str, start: int, end: int | None = None) -> str:
    if start < 0 or start > len(s) or (end is not None and (end < start or end > len(s))):
        raise QueryError(f"subs: index out of range for {edn.fmt(s)}")
    return s[start:end]


def _name(x: Any) -> str:
    if isinstance(x, (Keyword, Symbol)):
        return x.name.rsplit("/", 1)[-1]
    return str(x)


def _namespace(x: Any) -> Any:
    if isinstance(x, (Keyword, Symbol)) and "/" in x.name:
        return x.name.rsplit("/", 1)[0]
    return None


def _count(x: Any) -> int:
    return 0 if x is None else len(x)


def _ground(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x


def _untuple(x: Any) -> Any:
    return tuple(x)


def _different(*args: Any) -> bool:
    return len(set(args)) == len(args)


# name -> callable; aliases ("str/starts-with?", "clojure.string/starts-with?") share entries
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "=": lambda *a: all(_same(a[0], x) for x in a[1:]),
    "==": lambda *a: all(_same(a[0], x) for x in a[1:]),
    "not=": lambda *a: not all(_same(a[0], x) for x in a[1:]),
    "!=": lambda *a: not all(_same(a[0], x) for x in a[1:]),
    "<": _chain(lambda c: c < 0),
    ">": _chain(lambda c: c > 0),
    "<=": _chain(lambda c: c <= 0),
    ">=": _chain(lambda c: c >= 0),
    "+": lambda *a: sum(a),
    "-": lambda a, *r: -a if not r else a - sum(r),
    "*": lambda *a: math.prod(a),
    "/": _div,
    "quot": _quot,
    "rem": _rem,
    "mod": lambda a, b: a % b,
    "inc": lambda a: a + 1,
    "dec": lambda a: a - 1,
    "max": lambda *a: sorted(a, key=cmp_to_key(compare))[-1],
    "min": lambda *a: sorted(a, key=cmp_to_key(compare))[0],
    "zero?": lambda a: a == 0,
    "pos?": lambda a: a > 0,
    "neg?": lambda a: a < 0,
    "even?": lambda a: a % 2 == 0,
    "odd?": lambda a: a % 2 == 1,
    "compare": compare,
    "true?": lambda a: a is True,
    "false?": lambda a: a is False,
    "nil?": lambda a: a is None,
    "some?": lambda a: a is not None,
    "not": lambda a: not truthy(a),
    "and": lambda *a: next((x for x in a if not truthy(x)), a[-1] if a else True),
    "or": lambda *a: next((x for x in a if truthy(x)), a[-1] if a else None),
    "identity": lambda a: a,
    "keyword": lambda a: Keyword(str(a)),
    "name": _name,
    "namespace": _namespace,
    "vector": lambda *a: tuple(a),
    "list": lambda *a: tuple(a),
    "set": lambda a: frozenset(a),
    "count": _count,
    "empty?": lambda a: _count(a) == 0,
    "contains?": lambda coll, k: k in coll,
    "str": lambda *a: "".join(clj_str(x) for x in a),
    "subs": _subs,
    "pr-str": lambda *a: " ".join(edn.fmt(x, 1 << 62) if isinstance(x, str) else clj_str(x) for x in a),
    "re-find": _re_find,
    "re-matches": _re_matches,
    "re-seq": _re_seq,
    "re-pattern": lambda s: re.compile(s),
    "-differ?": _different,
    "ground": _ground,
    "tuple": lambda *a: tuple(a),
    "untuple": _untuple,
    "clojure.string/blank?": lambda s: s is None or s.strip() == "",
    "clojure.string/includes?": lambda s, sub: sub in s,
    "clojure.string/starts-with?": lambda s, p: s.startswith(p),
    "clojure.string/ends-with?": lambda s, p: s.endswith(p),
}
for _k in [k for k in FUNCTIONS if k.startswith("clojure.string/")]:
    FUNCTIONS["str/" + _k.split("/", 1)[1]] = FUNCTIONS[_k]

# functions whose first argument is a database source (``$``)
DB_FUNCTIONS = {"get-else", "get-some", "missing?"}


def get_else(db: Any, e: Any, attr: Any, default: Any) -> Any:
    if default is None:
        raise QueryError("get-else: nil default value is not supported")
    vals = db.attr_values(e, attr, for_fn="get-else")
    return vals[0] if vals else default


def get_some(db: Any, e: Any, *attrs: Any) -> Any:
    for attr in attrs:
        vals = db.attr_values(e, attr, for_fn="get-some")
        if vals:
            return (attr if isinstance(attr, str) else getattr(attr, "name", attr), vals[0])
    return None


def missing(db: Any, e: Any, attr: Any) -> bool:
    return not db.attr_values(e, attr, for_fn="missing?")


FUNCTIONS["get-else"] = get_else
FUNCTIONS["get-some"] = get_some
FUNCTIONS["missing?"] = missing


def call(name: str, fn: Callable[..., Any], args: list[Any]) -> Any:
    """Call a built-in; failures become a QueryError naming the call (never a raw traceback)."""
    try:
        return fn(*args)
    except QueryError:
        raise
    except Exception as exc:  # TypeError, ValueError, re.error, ... from user-supplied values
        shown = " ".join(edn.fmt(a, 60) for a in args[:4]) + (" ..." if len(args) > 4 else "")
        raise QueryError(f"({name} {shown}) failed: {type(exc).__name__}: {exc}") from None


# -- aggregates ----------------------------------------------------------------------


def _sorted(vals: list[Any]) -> list[Any]:
    try:  # Python's order agrees with ``compare`` wherever it does not raise (mixed types)
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=cmp_to_key(compare))


def _extreme(vals: list[Any], pick: Callable[..., Any], end: int) -> Any:
    kinds = {type(v) is bool for v in vals}
    if len(kinds) == 2:  # Python orders True as 1; DataScript refuses ("Cannot compare true to 1")
        b = next(v for v in vals if type(v) is bool)
        other = next(v for v in vals if type(v) is not bool)
        raise QueryError(f"cannot compare {edn.fmt(b)} to {edn.fmt(other)}")
    try:
        return pick(vals)
    except TypeError:
        return _sorted(vals)[end]


def _median(vals: list[Any]) -> Any:
    s = _sorted(vals)
    n = len(s)
    if n % 2:
        return s[n // 2]
    return (s[n // 2 - 1] + s[n // 2]) / 2


def _variance(vals: list[Any]) -> float:
    mean = sum(vals) / len(vals)
    return sum((v - mean) ** 2 for v in vals) / len(vals)


def _take(n: Any, what: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise QueryError(f"({what} n ?x) needs a non-negative integer n, got {edn.fmt(n)}")
    return n


def _min(*args: Any) -> Any:
    if len(args) == 1:
        return _extreme(args[0], min, 0)
    n, vals = args
    # like DataScript: the n smallest values in ascending order, duplicates (from :with) kept
    return _sorted(vals)[: _take(n, "min")]


def _max(*args: Any) -> Any:
    if len(args) == 1:
        return _extreme(args[0], max, -1)
    n, vals = args
    # like DataScript: the n largest values, still in ascending order, duplicates (from :with) kept
    s = _sorted(vals)
    return s[max(0, len(s) - _take(n, "max")) :] if n else []


AGGREGATES: dict[str, Callable[..., Any]] = {
    "count": lambda vals: len(vals),
    "count-distinct": lambda vals: len(set(vals)),
    "sum": lambda vals: sum(vals),
    "avg": lambda vals: sum(vals) / len(vals),
    "median": _median,
    "variance": _variance,
    "stddev": lambda vals: math.sqrt(_variance(vals)),
    "min": _min,
    "max": _max,
    "distinct": ValueSet,  # sees booleans wrapped (find._ON_WRAPPED): true and 1 stay two members
}
