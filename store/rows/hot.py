"""The write path's hot reads, run on the transaction's own DBAPI cursor.

SQLAlchemy Core costs ~50-80 us per `execute` (cache key, compiled-statement lookup, result
metadata); one awaited write ran nine of them, more than its SQLite work. Here each
statement is SQL text built once from the SQLAlchemy table (its columns, its primary key)
and run on the cursor with positional parameters; rows come back as plain dicts by column
name. Only for columns whose values need no SQLAlchemy type processing (strings, integers,
floats, bytes): all of the write path's tables.

Owns only these statements; it never decides what to read or write.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Connection, Table

#: the paramstyle's placeholder (SQLite's `qmark`; psycopg's `format`/`pyformat`)
_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def cursor_of(conn: Connection) -> Any:
    """A DBAPI cursor inside `conn`'s transaction."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def placeholder(conn: Connection) -> str:
    return _PLACEHOLDER[conn.dialect.paramstyle]


@cache
def _by_key_sql(table: Table, mark: str) -> tuple[str, tuple[str, ...]]:
    columns = tuple(c.name for c in table.columns)
    where = " AND ".join(f"{c.name} = {mark}" for c in table.primary_key.columns)
    return f"SELECT {', '.join(columns)} FROM {table.name} WHERE {where}", columns


def row_by_key(cursor: Any, mark: str, table: Table, key: tuple[Any, ...]) -> dict[str, Any] | None:
    """The row of `table` whose primary key is `key` (in the key's column order), or None."""
    sql, columns = _by_key_sql(table, mark)
    row = cursor.execute(sql, key).fetchone()
    return None if row is None else dict(zip(columns, row, strict=True))


@cache
def _where_sql(table: Table, columns: tuple[str, ...], column: str, count: int, mark: str) -> str:
    test = f"{column} = {mark}" if count == 1 else f"{column} IN ({', '.join([mark] * count)})"
    return f"SELECT {', '.join(columns)} FROM {table.name} WHERE {test}"


def rows_where(cursor: Any, mark: str, table: Table, columns: tuple[str, ...], column: str,
               values: list[Any], chunk: int = 500) -> list[tuple[Any, ...]]:
    """`columns` of the rows whose `column` is one of `values` (as tuples, in no set order)."""
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(values), chunk):
        part = values[start : start + chunk]
        found.extend(cursor.execute(_where_sql(table, columns, column, len(part), mark), part).fetchall())
    return found


def scalar(cursor: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
    row = cursor.execute(sql, params).fetchone()
    return None if row is None else row[0]
