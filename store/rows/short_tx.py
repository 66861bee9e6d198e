"""One short transaction on a fresh connection of a store, for the background jobs.

Scans, blob GC and retention never hold a transaction open for long (a long read stalls WAL
checkpoints; a long write stalls the writer): each step opens one with `short_transaction`,
`BEGIN` to read or `BEGIN IMMEDIATE` to take the write lock first (`conn.info["begin"]`, which
the engine's begin hook issues). Owns only that; it decides nothing about what runs inside.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection


@contextmanager
def short_transaction(store: Any, begin: str = "BEGIN") -> Iterator[Connection]:
    """A connection in a transaction begun with `begin`: committed when the block ends, rolled
    back when it raises, closed either way."""
    conn = store.engine.connect()
    try:
        conn.info["begin"] = begin
        with conn.begin():
            yield conn
    finally:
        conn.close()
