"""One unit of a blob scan: one top-level directory `blobs/<2 hex>/`, read, listed and re-hashed.

`scan_unit` reads the unit's blob rows FIRST and lists the directory SECOND (a file is
durable before its row commits, so a write racing the scan can never look like a missing
file), re-hashes the files of the rows in the run's plan and the inline bytes (from
store.sqlite's `blob_bytes`) of the inline ones, and sorts everything it saw into
a `UnitResult`: plain data, so it can come back from a worker process as JSON as easily as
from a function call. It runs in the scan's own process or in `scan_worker` processes.

This module only reads: rows through its own read-only SQL, files through `hashing`. It
never decides a verdict that needs the write lock (quarantine), never moves or deletes a
file, and never writes to SQLite.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from urllib.parse import quote

import blake3
import msgspec

from . import blob_files
from .hashing import hash_file
from .partition import Partition

#: (blob id, recorded size, status, planned: 1 when this run re-hashes it, bytes_id: inline bytes or None: a file)
RowData = tuple[str, int, str, int, int | None]


class UnitSpec(msgspec.Struct, frozen=True):
    """Everything a worker needs to scan units of one run (sent once to each worker process)."""

    db_path: str
    blob_dir: str
    rows_sql: str  # SELECT blob_id, size, status, planned, bytes_id FROM blobs WHERE blob_id >= ? AND blob_id < ? ...
    prefixes: list[str]  # the partition ([] = the whole space)
    grace_seconds: float
    now: float  # the scan's clock, as a POSIX timestamp

    def partition(self) -> Partition:
        return Partition.of(self.prefixes or None)


class UnitResult(msgspec.Struct):
    top: str
    planned: int = 0  # rows of the plan in this unit
    hashed: int = 0
    nbytes: int = 0
    vanished: int = 0  # listed, then gone before the read (a writer replacing a corrupt file)
    listed: int = 0  # blob files of the partition in this unit
    inline: int = 0  # rows of inline blobs in this unit (their bytes live in store.sqlite, not in a file)
    missing: list[RowData] = msgspec.field(default_factory=list)  # rows without a file (or inline bytes)
    suspects: list[RowData] = msgspec.field(default_factory=list)  # files that did not verify on the first read
    unmark: list[str] = msgspec.field(default_factory=list)  # quarantined rows whose file is back and intact
    orphans: list[tuple[str, str, float, int]] = msgspec.field(default_factory=list)  # (id, path, age, size)
    temps: list[tuple[str, str, float, int]] = msgspec.field(default_factory=list)  # (id of final, path, age, size)
    bad: list[tuple[str, str]] = msgspec.field(default_factory=list)  # (path, why), for this partition to report


def connect(db_path: str) -> sqlite3.Connection:
    """A read-only connection on store.sqlite (autocommit: each query is its own short read)."""
    conn = sqlite3.connect(f"file:{quote(os.path.abspath(db_path))}?mode=ro", uri=True, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def scan_unit(conn: sqlite3.Connection, spec: UnitSpec, part: Partition, top: str) -> UnitResult:
    rows = conn.execute(spec.rows_sql, (f"blake3:{top}", f"blake3:{top}g")).fetchall()
    listing = blob_files.list_top(spec.blob_dir, top)
    unit = UnitResult(top)
    files = listing.blobs
    known = set()
    inline: list[RowData] = []
    for blob_id, size, status, planned, bytes_id in rows:
        hexdigest = blob_id[7:]
        known.add(hexdigest)
        unit.planned += planned
        if bytes_id is not None:  # an inline blob: its bytes are re-hashed from store.sqlite below
            unit.inline += 1
            if planned:
                inline.append((blob_id, size, status, planned, bytes_id))
            continue
        path = files.get(hexdigest)
        if path is None:
            unit.missing.append((blob_id, size, status, planned, None))
            continue
        if not planned:
            continue
        digest, got_size, error = hash_file(path, size)
        if error == "missing":
            unit.vanished += 1
            continue
        unit.hashed += 1
        unit.nbytes += max(got_size, 0)
        if error is None and digest == hexdigest and got_size == size:
            if status == "quarantined":
                unit.unmark.append(blob_id)
        else:
            unit.suspects.append((blob_id, size, status, planned, None))
    _hash_inline(conn, inline, unit)
    unit.bad = [(path, why) for place, path, why in listing.bad if part.reports_misnamed(place)]
    for hexdigest, path in files.items():
        if not part.owns(hexdigest):
            continue
        unit.listed += 1
        if hexdigest not in known and (age := _age(path, spec, unit)) is not None:
            unit.orphans.append((f"blake3:{hexdigest}", path, *age))
    for hexdigest, path in listing.temps:
        if part.owns(hexdigest) and (age := _age(path, spec, unit)) is not None:
            unit.temps.append((f"blake3:{hexdigest}", path, *age))
    return unit


def _hash_inline(conn: sqlite3.Connection, rows: list[RowData], unit: UnitResult) -> None:
    """Re-hash the planned inline blobs of the unit, 500 `blob_bytes` rows per query."""
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        ids = [row[4] for row in chunk]
        sql = f"SELECT bytes_id, data FROM blob_bytes WHERE bytes_id IN ({', '.join('?' * len(ids))})"
        found = dict(conn.execute(sql, ids).fetchall())
        for row in chunk:
            data = found.get(row[4])
            if data is None:  # the row says inline, but the bytes are gone
                unit.missing.append(row)
                continue
            unit.hashed += 1
            unit.nbytes += len(data)
            if len(data) != row[1] or blake3.blake3(data).hexdigest() != row[0][7:]:
                unit.suspects.append(row)


def _age(path: str, spec: UnitSpec, unit: UnitResult) -> tuple[float, int] | None:
    """(age, size) of a regular file past the grace period; None when younger, gone, or not a regular file."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        unit.bad.append((path, "not a regular file where a blob file belongs"))
        return None
    age = spec.now - st.st_mtime
    return (age, st.st_size) if age >= spec.grace_seconds else None
