"""The inline tier: payload bytes kept in store.sqlite (`blob_bytes`), and reading any blob
whatever its tier.

A blob's metadata row (`blobs`) says where its bytes are: `bytes_id` names a `blob_bytes`
row (inline), NULL means a blob file (disk.py). Reads go through `read`/`read_many` with
the caller's connection, so inline bytes are read in the same read transaction as the rows
that reference them; a blob without inline bytes is read from its file. Every read is
checked against the blob id.

`stored_tiers` and `next_bytes_id` are what the write path (commit.py) and `pack.py` ask
before they add inline rows in their own transaction; `quarantine` is the scan's one
repair of inline bytes. Every function runs inside the caller's transaction and never
commits; none decides what to write.
"""

from __future__ import annotations

from collections.abc import Iterable

import blake3
from sqlalchemy import Connection

from ..errors import CorruptBlobError
from ..rows import dialect
from .disk import BlobFiles

_CHUNK = 500
_READ = ("SELECT b.blob_id, b.status, bb.data FROM blobs b LEFT JOIN blob_bytes bb ON bb.bytes_id = b.bytes_id"
         " WHERE b.blob_id IN ({})")


def checked(blob_id: str, data: bytes) -> bytes:
    """`data` if it hashes to `blob_id`, else CorruptBlobError (the inline bytes changed)."""
    if "blake3:" + blake3.blake3(data).hexdigest() != blob_id:
        raise CorruptBlobError(blob_id, "hash mismatch: the inline bytes changed (a scan quarantines them)")
    return data


def read(conn: Connection, files: BlobFiles, blob_id: str) -> bytes:
    """The bytes of one blob: inline from store.sqlite, else from its file."""
    return read_many(conn, files, [blob_id])[blob_id]


def read_many(conn: Connection, files: BlobFiles, blob_ids: Iterable[str]) -> dict[str, bytes]:
    """blob id -> bytes for every id (one query per 500 ids for the inline ones)."""
    wanted = list(dict.fromkeys(blob_ids))
    found: dict[str, bytes] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        sql = dialect.of(conn).sql(_READ.format(", ".join("?" * len(chunk))))
        for blob_id, _status, data in conn.exec_driver_sql(sql, tuple(chunk)):
            if data is not None:
                found[blob_id] = checked(blob_id, bytes(data))
    for blob_id in wanted:
        if blob_id not in found:
            found[blob_id] = files.get(blob_id)
    return found


def stored_tiers(conn: Connection, blob_ids: Iterable[str]) -> dict[str, tuple[int | None, str]]:
    """blob id -> (bytes_id or None for a file, status) for the ids that have a `blobs` row."""
    wanted = list(blob_ids)
    found: dict[str, tuple[int | None, str]] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        marks = ", ".join([dialect.of(conn).mark] * len(chunk))
        sql = f"SELECT blob_id, bytes_id, status FROM blobs WHERE blob_id IN ({marks})"
        for blob_id, bytes_id, status in conn.exec_driver_sql(sql, tuple(chunk)):
            found[blob_id] = (bytes_id, status)
    return found


def next_bytes_id(conn: Connection) -> int:
    """The next free `blob_bytes` id (ids only grow: rows append to the B-tree's end). The
    caller holds the write lock, so nobody else takes it meanwhile."""
    return int(conn.exec_driver_sql("SELECT coalesce(max(bytes_id), 0) + 1 FROM blob_bytes").scalar_one())


def bytes_of(conn: Connection, bytes_id: int) -> bytes | None:
    """The stored bytes of one `blob_bytes` row, unchecked (None: no such row)."""
    sql = dialect.of(conn).sql("SELECT data FROM blob_bytes WHERE bytes_id = ?")
    row = conn.exec_driver_sql(sql, (bytes_id,)).first()
    return None if row is None else bytes(row[0])


def quarantine(conn: Connection, blob_id: str, bytes_id: int, at: str) -> int:
    """Move corrupt inline bytes to `blob_quarantine` (never deleted) and mark the blob's row
    'quarantined' with no tier: writing the same content again stores it anew and clears the
    mark. Returns the quarantine row's id. The caller holds the write lock."""
    sql = dialect.of(conn).sql
    conn.exec_driver_sql(sql("INSERT INTO blob_quarantine (blob_id, data, quarantined_at)"
                             " SELECT ?, data, ? FROM blob_bytes WHERE bytes_id = ?"), (blob_id, at, bytes_id))
    quarantine_id = int(conn.exec_driver_sql("SELECT max(quarantine_id) FROM blob_quarantine").scalar_one())
    conn.exec_driver_sql(sql("DELETE FROM blob_bytes WHERE bytes_id = ?"), (bytes_id,))
    conn.exec_driver_sql(sql("UPDATE blobs SET status = 'quarantined', bytes_id = NULL WHERE blob_id = ?"), (blob_id,))
    return quarantine_id
