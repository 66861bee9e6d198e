"""Pull patterns: parsing and evaluating them against a database.

Owns: the pull pattern records and the shape of pulled maps:
  * keys are attribute idents without the colon (``"session/id"``), reverse
    attributes keep their underscore (``"message/_session"``), ``"db/id"`` is the id;
  * cardinality-many and reverse attributes give lists (default ``:limit`` 1000, except the reverse
    of a cardinality-one ref, as in DataScript);
  * refs without a sub-pattern give ``{"db/id": eid}``;
  * an entity with nothing to show pulls as ``None``.
Must never: evaluate query clauses or write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edn_format import Keyword, Symbol

from . import edn
from .errors import QueryParseError

if TYPE_CHECKING:
    from .db import DatomDb

_NO_DEFAULT = object()
DEFAULT_LIMIT = 1000


@dataclass(frozen=True)
class AttrSpec:
    attr: str  # forward ident ("message/session" for reverse too)
    reverse: bool
    key: Any
    limit: int | None
    default: Any
    sub: Any  # PullPattern | None
    recursion: Any  # None | int | "..."


@dataclass(frozen=True)
class PullPattern:
    wildcard: bool
    specs: tuple[AttrSpec, ...]


def _is_vec(x: Any) -> bool:
    return isinstance(x, list) or type(x).__name__ == "ImmutableList"


def _attr_name(x: Any, form: Any) -> str:
    if isinstance(x, Symbol):
        x = x.name
    name = edn.ident(x)
    if name is None:
        raise QueryParseError(f"bad attribute {edn.fmt(x)} in pull pattern {edn.fmt(form)}", form)
    return name


def _spec(name: str, key: Any = None) -> dict:
    leaf = name.rsplit("/", 1)[-1]
    reverse = leaf.startswith("_")
    attr = name[: len(name) - len(leaf)] + leaf[1:] if reverse else name
    return {
        "attr": attr,
        "reverse": reverse,
        "key": key if key is not None else name,
        "limit": DEFAULT_LIMIT,
        "default": _NO_DEFAULT,
        "sub": None,
        "recursion": None,
    }


def _with_options(x: Any, form: Any) -> dict:
    items = list(x)
    head = items[0]
    if isinstance(head, Symbol) and head.name in ("limit", "default"):  # legacy (limit :a 10)
        if len(items) != 3:
            raise QueryParseError(f"({head.name} attr value) expected in pull pattern: {edn.fmt(x)}", form)
        d = _spec(_attr_name(items[1], form))
        if head.name == "limit":
            d["limit"] = items[2]
        else:
            d["default"] = items[2]
        return d
    d = _spec(_attr_name(head, form))
    opts = items[1:]
    if len(opts) % 2:
        raise QueryParseError(f"attribute options must be pairs in pull pattern: {edn.fmt(x)}", form)
    for k, v in zip(opts[::2], opts[1::2], strict=False):
        name = edn.ident(k)
        if name == "limit":
            if v is not None and (not isinstance(v, int) or v < 0):
                raise QueryParseError(
                    f":limit must be a non-negative integer or nil in pull pattern: {edn.fmt(x)}", form
                )
            d["limit"] = v
        elif name == "default":
            d["default"] = v
        elif name == "as":
            d["key"] = v.name if isinstance(v, (Keyword, Symbol)) else v
        else:
            raise QueryParseError(f"unknown attribute option {edn.fmt(k)} in pull pattern", form)
    return d


def parse_pattern(pattern: Any) -> PullPattern:
    """Pull pattern (EDN string or data) -> PullPattern; malformed input raises QueryParseError."""
    if isinstance(pattern, PullPattern):
        return pattern
    if isinstance(pattern, str):
        pattern = edn.read(pattern)
    if not _is_vec(pattern) and not isinstance(pattern, tuple):
        raise QueryParseError(f"pull pattern must be a vector, got {edn.fmt(pattern)}", pattern)
    wildcard = False
    specs: list[AttrSpec] = []
    for x in pattern:
        if (isinstance(x, Symbol) and x.name == "*") or x == "*":
            wildcard = True
        elif isinstance(x, (Keyword, str, Symbol)):
            specs.append(AttrSpec(**_spec(_attr_name(x, pattern))))
        elif isinstance(x, tuple) or _is_vec(x):
            if not x:
                raise QueryParseError("empty attribute expression in pull pattern", pattern)
            specs.append(AttrSpec(**_with_options(x, pattern)))
        elif isinstance(x, Mapping):
            for k, v in x.items():
                d = _with_options(k, pattern) if (isinstance(k, tuple) or _is_vec(k)) else _spec(_attr_name(k, pattern))
                if isinstance(v, Symbol) and v.name == "...":
                    d["recursion"] = "..."
                elif v == "...":
                    d["recursion"] = "..."
                elif isinstance(v, int) and not isinstance(v, bool):
                    d["recursion"] = v
                else:
                    d["sub"] = parse_pattern(v)
                specs.append(AttrSpec(**d))
        else:
            raise QueryParseError(f"bad pull pattern element {edn.fmt(x)}", pattern)
    return PullPattern(wildcard, tuple(specs))


def pull_one(db: DatomDb, pattern: PullPattern, eid: Any) -> dict | None:
    """Pull one entity given by id or lookup ref (``None`` when it resolves to nothing)."""
    e = db._resolve(eid)
    if e is None:
        return None
    return pull_entity(db, pattern, e, frozenset(), {})


def pull_many(db: DatomDb, pattern: PullPattern, eids: list[Any]) -> list[Any]:
    return [pull_one(db, pattern, e) for e in eids]


_WILDCARD = PullPattern(True, ())


def pull_entity(db: DatomDb, pattern: PullPattern, e: int, seen: frozenset = frozenset(), depth: Any = None) -> Any:
    """Pull one entity; ``seen``: entities on the path above it (recursion stops there),
    ``depth``: recursion depth reached per recursive spec."""
    return _pull(db, pattern, e, set(seen), dict(depth or {}))


def _pull(db: DatomDb, pattern: PullPattern, e: int, path: set, depth: dict) -> Any:
    """``path`` (entities above, then ``e`` while its children are pulled) and ``depth`` (by spec
    id) are mutated and restored around each child: copying them per entity made a deep
    recursive pull quadratic."""
    attrs = db.entity_attrs(e)  # ident -> [decoded values], in index order
    schema = db.schema
    out: dict[Any, Any] = {}
    added = e not in path
    if added:
        path.add(e)
    try:
        if pattern.wildcard:
            explicit = {s.attr for s in pattern.specs if not s.reverse}
            out["db/id"] = e
            for a, vals in attrs.items():
                if a in explicit:
                    continue
                attr = schema.get(a)
                if attr.ref:
                    vals = [
                        _pull(db, _WILDCARD, v, path, depth) if attr.component and v not in path else {"db/id": v}
                        for v in vals
                    ]
                out[a] = vals if attr.many else vals[0]
        for s in pattern.specs:
            if s.attr == "db/id" and not s.reverse:
                out[s.key] = e
                continue
            if s.reverse:
                vals = db.reverse_refs(s.attr, e)
                many = not schema.get(s.attr).component
            else:
                vals = attrs.get(s.attr, [])
                many = schema.is_many(s.attr)
            if not vals:
                if s.default is not _NO_DEFAULT:
                    out[s.key] = s.default
                continue
            limit = s.limit
            if s.reverse and limit == DEFAULT_LIMIT and not schema.is_many(s.attr):
                limit = None  # as DataScript: the reverse of a cardinality-one ref has no default limit
            if limit is not None and many:
                vals = vals[:limit]
            is_ref = s.reverse or schema.is_ref(s.attr)
            if is_ref:
                if s.recursion is not None:
                    key = id(s)
                    n = depth.get(key, 0)
                    if s.recursion != "..." and n >= s.recursion:
                        continue
                    depth[key] = n + 1
                    try:
                        vals = [{"db/id": v} if v in path else _pull(db, pattern, v, path, depth) for v in vals]
                    finally:
                        if n:
                            depth[key] = n
                        else:
                            del depth[key]
                elif s.sub is not None:
                    vals = [_pull(db, s.sub, v, path, {}) for v in vals]
                else:
                    vals = [{"db/id": v} for v in vals]
                vals = [x for x in vals if x is not None]  # like DataScript: empty sub-pulls vanish
                if not vals:
                    continue
            elif s.sub is not None:
                raise QueryParseError(f"attribute :{s.attr} is not a ref; it cannot have a sub-pattern", s.attr)
            out[s.key] = vals if many else vals[0]
    finally:
        if added:
            path.discard(e)
    if not out:
        return None
    return out
