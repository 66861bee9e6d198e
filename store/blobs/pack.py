"""`pack_blobs`: move small blob files into store.sqlite (the inline tier), crash-safe.

A store written before the inline tier (or with a lower `inline_max_bytes`) keeps its small
payloads as files; they stay readable where they are. Packing walks the blob tree in
order, a lot of files at a time, and for each lot, in one transaction under SQLite's write
lock: reads each file whose row says "file", at most `max_bytes` and not quarantined,
checks it against its id, inserts its bytes into `blob_bytes` and points the row at them.
Only after that transaction committed are the lot's files unlinked. A crash in between
leaves a file beside its committed inline copy: reads take the inline copy, the scan does
not call the file an orphan (its row exists), and the next pack removes it.

The whole run holds the root's writer lock (`Store.writer_lock`), like every other commit:
while a fleet's writer holds it, packing refuses (`WriterLockHeldError`) and changes
nothing. Owns only this move: it never writes a file, never touches a file that no row
references (orphans are the scan's), and leaves a file that does not match its id where
it is (the scan quarantines it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import blake3

from ..errors import ReadOnlyStoreError
from . import inline
from .canonical import BLOB_ID_RE

if TYPE_CHECKING:
    from ..store import Store

#: files per transaction
LOT = 256


def pack_blobs(store: Store, max_bytes: int | None = None,
               progress: Callable[[str, int, int], None] | None = None) -> dict[str, int]:
    """Move every intact blob file of at most `max_bytes` (default: the store's
    `inline_max_bytes`) inline; remove files whose blob is inline already. Returns counts:
    `packed`, `bytes_packed`, `files_removed`, `kept_large`, `kept_quarantined`,
    `kept_corrupt`, `kept_orphan`, `files_seen`."""
    if store.readonly:
        raise ReadOnlyStoreError(str(store.root))
    limit = store.settings.inline_max_bytes if max_bytes is None else max_bytes
    counts = dict.fromkeys(("files_seen", "packed", "bytes_packed", "files_removed", "kept_large",
                            "kept_quarantined", "kept_corrupt", "kept_orphan"), 0)
    with store.writer_lock():
        paths = [p for p in store.blobs.iter_files() if BLOB_ID_RE.match("blake3:" + p.name)]
        for start in range(0, len(paths), LOT):
            lot = paths[start : start + LOT]
            counts["files_seen"] += len(lot)
            removable = _pack_lot(store, lot, limit, counts)
            for path in removable:  # the inline copies are committed: the files may go
                try:
                    os.unlink(path)
                    counts["files_removed"] += 1
                except FileNotFoundError:
                    pass
            if progress is not None:
                progress("pack", start + len(lot), len(paths))
    return counts


def _pack_lot(store: Store, lot: list[os.PathLike[str]], limit: int, counts: dict[str, int]) -> list[str]:
    """One transaction: the lot's small files inline; returns the files to unlink after it committed."""
    ids = {"blake3:" + os.path.basename(p): str(p) for p in lot}
    removable: list[str] = []
    with store.engine.connect() as conn:
        conn.info["begin"] = "BEGIN IMMEDIATE"
        with conn.begin():
            rows = {}
            marks = ", ".join("?" * len(ids))
            for blob_id, size, status, bytes_id in conn.exec_driver_sql(
                    f"SELECT blob_id, size, status, bytes_id FROM blobs WHERE blob_id IN ({marks})", tuple(ids)):
                rows[blob_id] = (size, status, bytes_id)
            next_id = inline.next_bytes_id(conn)
            for blob_id, path in ids.items():
                row = rows.get(blob_id)
                if row is None:
                    counts["kept_orphan"] += 1
                    continue
                size, status, bytes_id = row
                if bytes_id is not None:  # inline already (a pack that crashed before its unlinks)
                    removable.append(path)
                    continue
                if status != "ok":
                    counts["kept_quarantined"] += 1
                    continue
                if size > limit:
                    counts["kept_large"] += 1
                    continue
                try:
                    data = _read_regular(path)
                except OSError:  # unreadable, or a symbolic link at the blob's name: the scan's to judge
                    counts["kept_corrupt"] += 1
                    continue
                if len(data) != size or "blake3:" + blake3.blake3(data).hexdigest() != blob_id:
                    counts["kept_corrupt"] += 1
                    continue
                conn.exec_driver_sql("INSERT INTO blob_bytes (bytes_id, data) VALUES (?, ?)", (next_id, data))
                conn.exec_driver_sql("UPDATE blobs SET bytes_id = ? WHERE blob_id = ?", (next_id, blob_id))
                next_id += 1
                counts["packed"] += 1
                counts["bytes_packed"] += size
                removable.append(path)
    return removable


def _read_regular(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb", buffering=0) as f:
        return f.readall()
