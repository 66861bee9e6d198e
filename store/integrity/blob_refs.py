"""Which rows reference which blobs: every `*_blob` column of the canonical tables.

Owns the list of blob-referencing columns (derived from the schema, so a new `*_blob`
column is covered without touching this file) and two questions over them: which of
these blob ids does some row reference, and which referenced blob ids have no `blobs`
row. Read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Column, Connection, Table, select

from ..rows import schema

#: (table, column) for every column that holds a blob id
BLOB_COLUMNS: list[tuple[Table, Column[Any]]] = [
    (table, column)
    for table in schema.metadata.sorted_tables
    for column in table.columns
    if column.name.endswith("_blob") and not table.name.startswith("integrity_")
]

_CHUNK = 500


def referenced_among(conn: Connection, blob_ids: Iterable[str]) -> set[str]:
    """The subset of `blob_ids` that at least one row references (one pass per column per 500 ids)."""
    wanted = sorted(set(blob_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        for _table, column in BLOB_COLUMNS:
            found.update(conn.execute(select(column).where(column.in_(chunk)).distinct()).scalars())
    return found


def without_blob_row(conn: Connection) -> Iterator[tuple[str, str, dict[str, Any], str]]:
    """(table, column, primary key of the row, blob id) for every reference whose blob has no `blobs` row."""
    blobs = schema.blobs
    for table, column in BLOB_COLUMNS:
        keys = [c for c in table.primary_key.columns]
        query = (
            select(*keys, column)
            .select_from(table.outerjoin(blobs, blobs.c.blob_id == column))
            .where(column.is_not(None), blobs.c.blob_id.is_(None))
        )
        for row in conn.execute(query):
            yield str(table.name), str(column.name), {str(k.name): row[i] for i, k in enumerate(keys)}, row[-1]
