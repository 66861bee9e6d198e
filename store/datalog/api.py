"""The public ``Database``: the datom database (``db.DatomDb``) with queries and pulls on top.

Owns: the convenience entry points ``q``, ``pull`` and ``pull_many`` and the caches of
parsed queries and pull patterns (parsing a pattern costs more than pulling one entity).
This thin facade is where the query side meets the db, so that ``db`` imports nothing of
``parser``/``query``/``find``/``pull`` (DataScript keeps db, query and pull apart the same way).
Must never: hold query, pull or storage logic itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from . import edn
from .db import DatomDb
from .errors import DatalogError, QueryParseError
from .parser import Query, parse_query
from .pull import PullPattern, parse_pattern, pull_one
from .query import execute

_CACHE_SIZE = 256


def _guard_parse(parse: Callable[[Any], Any], form: Any) -> Any:
    """Parsers raise QueryParseError on purpose; anything else (deep nesting, odd types) is
    still the caller's malformed input, never a traceback from inside the engine."""
    try:
        return parse(form)
    except DatalogError:
        raise
    except RecursionError:
        raise QueryParseError("query or pattern nests too deeply", None) from None
    except Exception as exc:
        raise QueryParseError(f"cannot parse {edn.fmt(form)}: {type(exc).__name__}: {exc}", form) from None


class _Parsed:
    """An LRU cache of parse results keyed by the EDN text (Python-data forms are parsed each time)."""

    def __init__(self, parse: Callable[[Any], Any]) -> None:
        self._parse = parse
        self._items: OrderedDict[str, Any] = OrderedDict()

    def get(self, form: Any) -> Any:
        if not isinstance(form, str):
            return _guard_parse(self._parse, form)
        hit = self._items.get(form)
        if hit is not None:
            self._items.move_to_end(form)
            return hit
        parsed = self._items[form] = _guard_parse(self._parse, form)
        if len(self._items) > _CACHE_SIZE:
            self._items.popitem(last=False)
        return parsed


class Database(DatomDb):
    """A Datalog database stored in one SQLite file (or ``":memory:"``), with ``q`` and ``pull``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._queries = _Parsed(parse_query)
        self._patterns = _Parsed(parse_pattern)

    def _parse(self, query: Any) -> Query:
        return self._queries.get(query)

    def q(self, query: Any, *inputs: Any) -> Any:
        """Run a query (EDN string or Python data). ``$`` is this database; ``inputs``
        fill the other ``:in`` slots in order."""
        parsed = self._queries.get(query)
        if inputs and inputs[0] is self:
            inputs = inputs[1:]  # DataScript-style call q(query, db, ...): the database is implicit here
        return self._read(execute, self, parsed, inputs)

    def pull(self, pattern: Any, eid: Any) -> dict | None:
        pat: PullPattern = self._patterns.get(pattern)
        return self._read(pull_one, self, pat, eid)

    def pull_many(self, pattern: Any, eids: Iterable[Any]) -> list[dict | None]:
        pat: PullPattern = self._patterns.get(pattern)
        eids = list(eids)
        return self._read(lambda: [pull_one(self, pat, e) for e in eids])
