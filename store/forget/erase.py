"""Erasing a deleted session's payloads, and making sure no byte of them survives on disk.

Inside the writer's transaction (`candidates`, `unshared`, `remove_payloads`): the blob ids
the deleted rows referenced, those that no remaining row references (content addressing:
bytes another session shares stay), and their removal from both tiers (`blob_bytes` rows,
`blob_quarantine` rows, the `blobs` rows themselves). After the commit (`after_commit`): the
blob files and quarantined copies are unlinked and their directories fsynced, and SQLite's
WAL is checkpointed and truncated, so neither free pages (the write connection runs with
`PRAGMA secure_delete=ON`, store/rows/schema.py) nor old WAL frames keep deleted bytes.
It never decides what to delete (delete.py does).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, not_, select

from ..blobs import BlobStore
from ..blobs.disk import sync_filesystem
from ..integrity.blob_refs import BLOB_COLUMNS
from ..rows import hot, schema

log = logging.getLogger(__name__)
_CHUNK = 500
#: ids per pass over a blob column: each pass scans the whole table, so as many as SQLite
#: takes as parameters (32,766 since 3.32)
_SCAN_CHUNK = 30_000


def _blob_columns(table: schema.Table) -> list[Any]:
    return [c for t, c in BLOB_COLUMNS if t is table]


def candidates(conn: Connection, blobs: BlobStore, going: Iterable[tuple[schema.Table, Any]]) -> set[str]:
    """Every blob id the rows selected by `going` reference, annotation payloads (named inside
    their event's metadata blob) included."""
    found: set[str] = set()
    metas: list[str] = []
    for table, where in going:
        for column in _blob_columns(table):
            ids = [b for b in conn.execute(select(column).where(where, column.is_not(None)).distinct()).scalars()]
            found.update(ids)
            if column is schema.events.c.meta_blob:
                metas += ids
    found.update(_payloads_in_metas(conn, blobs, metas))
    return found


def _payloads_in_metas(conn: Connection, blobs: BlobStore, metas: list[str]) -> set[str]:
    import msgspec

    from ..blobs import inline

    payloads: set[str] = set()
    for start in range(0, len(metas), _CHUNK):
        for data in inline.read_many(conn, blobs, metas[start : start + _CHUNK]).values():
            payload = msgspec.json.decode(data).get("payload")
            if isinstance(payload, str):
                payloads.add(payload)
    return payloads


def unshared(conn: Connection, blobs: BlobStore, ids: set[str],
             leaving: Iterable[tuple[schema.Table, Any]] = ()) -> set[str]:
    """The ids of `ids` that no row references, apart from the rows in `leaving` (a dry run
    counts as gone what the delete would remove). One pass over each blob column, as plain SQL
    on the DBAPI cursor (SQLAlchemy's expansion of 30k bound values costs seconds)."""
    if not ids:
        return set()
    going: dict[str, list[Any]] = {}
    for table, where in leaving:
        going.setdefault(str(table.name), []).append(where)
    wanted = sorted(ids)
    referenced: set[str] = set()
    cursor, mark = hot.cursor_of(conn), hot.placeholder(conn)
    try:
        for table, column in BLOB_COLUMNS:
            if str(table.name) in going:  # a dry run: SQLAlchemy, to say which rows do not count
                for start in range(0, len(wanted), _SCAN_CHUNK):
                    query = select(column).where(column.in_(wanted[start : start + _SCAN_CHUNK]))
                    for where in going[str(table.name)]:
                        query = query.where(not_(where))
                    referenced.update(conn.execute(query.distinct()).scalars())
                continue
            for start in range(0, len(wanted), _SCAN_CHUNK):
                chunk = wanted[start : start + _SCAN_CHUNK]
                sql = (f"SELECT DISTINCT {column.name} FROM {table.name}"
                       f" WHERE {column.name} IN ({', '.join([mark] * len(chunk))})")
                referenced.update(r[0] for r in cursor.execute(sql, chunk).fetchall())
    finally:
        cursor.close()
    left = ids - referenced
    annotation = [b for b, kind in _kinds(conn, left).items() if kind == "annotation-payload"]
    if annotation:
        ev = schema.events
        query = select(ev.c.meta_blob).where(ev.c.meta_blob.is_not(None))
        for where in going.get("events", []):
            query = query.where(not_(where))
        metas = list(conn.execute(query.distinct()).scalars())
        left -= _payloads_in_metas(conn, blobs, metas)
    return left


def _kinds(conn: Connection, ids: set[str]) -> dict[str, str]:
    wanted, found = sorted(ids), {}
    for start in range(0, len(wanted), _CHUNK):
        found.update(conn.execute(select(schema.blobs.c.blob_id, schema.blobs.c.kind)
                                  .where(schema.blobs.c.blob_id.in_(wanted[start : start + _CHUNK]))).all())
    return found


def size_of(conn: Connection, ids: set[str]) -> int:
    wanted, total = sorted(ids), 0
    for start in range(0, len(wanted), _CHUNK):
        total += conn.execute(select(func.coalesce(func.sum(schema.blobs.c.size), 0)).where(
            schema.blobs.c.blob_id.in_(wanted[start : start + _CHUNK]))).scalar_one()
    return int(total)


def remove_payloads(conn: Connection, ids: set[str]) -> tuple[dict[str, int], list[str]]:
    """Delete the `blobs`, `blob_bytes` and `blob_quarantine` rows of `ids`. Returns (blob id ->
    size, the ids stored as files: unlinked by `after_commit`, once the delete is durable)."""
    b, bb, q = schema.blobs, schema.blob_bytes, schema.blob_quarantine
    wanted = sorted(ids)
    sizes: dict[str, int] = {}
    files: list[str] = []
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        inline_ids = []
        for blob_id, size, bytes_id in conn.execute(select(b.c.blob_id, b.c.size, b.c.bytes_id)
                                                    .where(b.c.blob_id.in_(chunk))):
            sizes[blob_id] = size
            if bytes_id is None:
                files.append(blob_id)
            else:
                inline_ids.append(bytes_id)
        if inline_ids:
            conn.execute(delete(bb).where(bb.c.bytes_id.in_(inline_ids)))
        conn.execute(delete(q).where(q.c.blob_id.in_(chunk)))
        conn.execute(delete(b).where(b.c.blob_id.in_(chunk)))
    # a quarantined inline blob has no tier left (its copy in blob_quarantine is deleted above)
    return sizes, sorted(files)


def unlink_files(conn: Connection, blobs: BlobStore, ids: list[str]) -> int:
    """Unlink the blob files (and quarantined copies) of `ids` that have no `blobs` row (one
    written again since is kept), then sync the file system once (`syncfs`: the directory
    entries are gone for good). Returns the files unlinked."""
    again: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        again.update(conn.execute(select(schema.blobs.c.blob_id).where(schema.blobs.c.blob_id.in_(chunk))).scalars())
    quarantined: dict[str, list[Path]] = {}
    if blobs.quarantine_dir.is_dir():
        for path in blobs.quarantine_dir.iterdir():
            quarantined.setdefault(path.name.split(".", 1)[0], []).append(path)
    removed = 0
    for blob_id in ids:
        if blob_id in again:
            continue
        path = blobs.path(blob_id)
        for p in [path, *quarantined.get(path.name, [])]:
            try:
                os.unlink(p)
            except FileNotFoundError:
                continue
            removed += 1
    if removed:
        fd = os.open(blobs.dir, os.O_RDONLY)
        try:
            sync_filesystem(fd)
        finally:
            os.close(fd)
    return removed


def checkpoint(conn: Connection, attempts: int = 20, wait_ms: int = 100) -> bool:
    """SQLite only: copy the WAL into the database and truncate it to zero bytes, so old page
    versions holding deleted bytes are gone from the -wal file. A reader in the middle of a read
    transaction holds it back: each attempt waits at most `wait_ms` for readers (not the
    connection's long busy timeout: the writer must not stall), about two seconds in all.
    True when it completed; else the next delete's checkpoint truncates it."""
    if conn.dialect.name != "sqlite":
        return True
    raw = conn.connection.driver_connection
    (timeout,) = raw.execute("PRAGMA busy_timeout").fetchone()
    raw.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
    try:
        for _ in range(attempts):
            busy, _log, _done = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return True
    finally:
        raw.execute(f"PRAGMA busy_timeout={int(timeout)}")
    log.warning("the WAL could not be truncated after a delete (readers held it); the next delete retries")
    return False


def after_commit(conn: Connection, blobs: BlobStore, files: list[str]) -> dict[str, Any]:
    """What follows a committed delete, outside its transaction: files, then the WAL."""
    removed = unlink_files(conn, blobs, files) if files else 0
    if conn.in_transaction():
        conn.commit()
    return {"files_unlinked": removed, "wal_truncated": checkpoint(conn)}

