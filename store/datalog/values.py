"""Booleans inside relations: ``TRUE`` / ``FALSE`` stand in for Python's ``True`` / ``False``.

Owns: the in-relation spelling of booleans.  Python has ``True == 1`` and ``hash(True) ==
hash(1)``, so wherever rows are hashed (de-duplication, joins, grouping, ``count-distinct``)
``true`` and ``1`` (``false`` and ``0``) would merge into one value; DataScript keeps them
apart.  Values enter relations wrapped (scanned datoms, query constants, inputs, function
results) and leave unwrapped (query results, arguments of built-in functions and aggregates).
The two instances are singletons compared by identity, so joins and sets keep working.
``(distinct ?x)`` returns a ``ValueSet``: a Python ``set`` cannot hold both ``true`` and ``1``.
Must never: import anything from the engine (the db and the query side both use it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from itertools import chain
from typing import Any


class Bool:
    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "true" if self.value else "false"

    def __edn__(self) -> str:
        return repr(self)

    def __bool__(self) -> bool:
        return self.value


TRUE = Bool(True)
FALSE = Bool(False)


def wrap(x: Any) -> Any:
    """A value as relations hold it: Python booleans become ``TRUE`` / ``FALSE``."""
    if x is True:
        return TRUE
    if x is False:
        return FALSE
    return x


def unwrap(x: Any) -> Any:
    """A value as callers and built-ins see it: ``TRUE`` / ``FALSE`` become Python booleans."""
    return x.value if type(x) is Bool else x


def unwrap_rows(rows: list[tuple]) -> list[tuple]:
    """Result rows with Python booleans; the same list when none holds one (checked at C speed)."""
    if Bool not in set(map(type, chain.from_iterable(rows))):
        return rows
    return [tuple([x.value if type(x) is Bool else x for x in r]) for r in rows]


class ValueSet(AbstractSet):
    """The value of ``(distinct ?x)``: a read-only set that keeps ``true`` and ``1`` (``false`` and
    ``0``) apart, as DataScript's sets do.  It iterates and tests membership with Python values and
    compares equal to a Python ``set`` with the same members (``{1, True}`` has one member, so a
    ``ValueSet`` holding both ``1`` and ``true`` equals no Python set)."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._items = frozenset(map(wrap, items))

    def __contains__(self, x: object) -> bool:
        try:
            return wrap(x) in self._items
        except TypeError:  # unhashable: never a member
            return False

    def __iter__(self) -> Iterator[Any]:
        return (unwrap(x) for x in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return "ValueSet({" + ", ".join(map(repr, self)) + "})"
