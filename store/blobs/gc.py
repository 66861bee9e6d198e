"""Blob garbage collection: payloads that nothing references any more, inline rows and files alike.

    report = collect_garbage(store)                   # mark, sweep, store a `blob-gc` report
    report = collect_garbage(store, dry_run=True)     # what would go; changes nothing

Mark (one read transaction): every blob id held by a row — each `*_blob` column of every
table (`integrity.blob_refs.BLOB_COLUMNS`, derived from the schema), plus the blob ids that
an annotation's metadata blob (`events.meta_blob`) names (its `payload`) — and the last tx
id `T` the mark saw. A candidate is a `blobs` row created before the grace cutoff that no
row references; an orphan is a blob file older than the cutoff with no `blobs` row (a write
that crashed between its file and its commit), a temp file one older than the cutoff.

Sweep, safe while the writer runs: the writer commits in `BEGIN IMMEDIATE` transactions and
does all its blob work inside them (it looks for an existing row/file, writes or reuses the
file, inserts or upserts the `blobs` row, commits), and every write that references a blob
names it in its transaction batch (`{"blob/id": ...}` in `tx.facts`) and upserts its
`blobs` row. So, per lot of candidates, one `BEGIN IMMEDIATE` transaction:
  1. reads the batches committed after `T` and drops every blob they name from the
     candidates (a payload re-used or re-written since the mark survives);
  2. deletes the survivors' `blob_bytes` and `blobs` rows; commits.
Then, for the lot's files, a second `BEGIN IMMEDIATE` transaction re-checks that each id
still has no `blobs` row (a writer may have written the payload again between the two) and
unlinks the files while holding the write lock, so no writer can adopt a file it unlinks.
A crash between the two leaves files without rows: orphans, collected by the next run.
Rows are always deleted before files, so no committed row ever points at a collected payload.

The grace period (`Settings.gc_grace_hours`) counts from a blob's first write
(`blobs.created_at`) or a file's mtime: fresh payloads are left alone whatever references
them. Owns only this collection; it never touches a row other than `blobs`/`blob_bytes`,
never a file in quarantine/, and never a blob any row references.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import Connection, delete, func, select

from ..errors import ReadOnlyStoreError
from ..rows import schema
from ..rows.short_tx import short_transaction
from . import inline
from .canonical import BLOB_ID_RE
from .disk import TEMP_MARK

if TYPE_CHECKING:
    from ..integrity.findings import Report
    from ..store import Store

KIND = "blob-gc"
#: candidates per sweep transaction (each holds SQLite's write lock for one lot only)
LOT = 500
#: columns whose blobs are JSON that may name further blobs (an annotation's `payload`)
CONTAINERS: tuple[tuple[str, str], ...] = (("events", "meta_blob"),)

_ID_IN_BYTES = re.compile(rb"blake3:[0-9a-f]{64}")

Progress = Callable[[str, int, int], None]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def referenced(conn: Connection, files: Any) -> set[str]:
    """Every blob id some row holds (the mark), inside the caller's read transaction."""
    from ..integrity.blob_refs import BLOB_COLUMNS  # integrity imports blobs: imported when used

    live: set[str] = set()
    for _table, column in BLOB_COLUMNS:
        live.update(conn.execute(select(column).where(column.is_not(None)).distinct()).scalars())
    for table_name, column_name in CONTAINERS:
        column = schema.metadata.tables[table_name].c[column_name]
        ids = list(conn.execute(select(column).where(column.is_not(None)).distinct()).scalars())
        for start in range(0, len(ids), LOT):
            try:
                contents = inline.read_many(conn, files, ids[start : start + LOT])
            except Exception:  # noqa: BLE001 - an unreadable container: read one by one, keep what it may name
                contents = {}
                for bid in ids[start : start + LOT]:
                    try:
                        contents[bid] = inline.read(conn, files, bid)
                    except Exception:  # noqa: BLE001 - the scan reports it; nothing it names is known
                        continue
            for data in contents.values():
                live.update(m.decode() for m in _ID_IN_BYTES.findall(data))
    return live


def _named_since(conn: Connection, after_tx: int) -> tuple[set[str], int]:
    """Blob ids named by the batches committed after `after_tx`, and the last tx id seen."""
    named: set[str] = set()
    last = after_tx
    for tx_id, facts in conn.execute(select(schema.tx.c.tx_id, schema.tx.c.facts)
                                     .where(schema.tx.c.tx_id > after_tx)):
        last = max(last, tx_id)
        for entity in msgspec.json.decode(facts):
            bid = entity.get("blob/id") if isinstance(entity, dict) else None
            if isinstance(bid, str):
                named.add(bid)
    return named, last


def _files(store: Store) -> tuple[dict[str, tuple[str, float, int]], list[tuple[str, float, int]]]:
    """(blob id -> (path, mtime, size) of every well-named blob file, [(path, mtime, size)] of temp files)."""
    blob_files: dict[str, tuple[str, float, int]] = {}
    temps: list[tuple[str, float, int]] = []
    if not store.blobs.dir.is_dir():
        return blob_files, temps
    for path in store.blobs.iter_files():
        name = path.name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if TEMP_MARK in name:
            temps.append((str(path), st.st_mtime, st.st_size))
        elif BLOB_ID_RE.match("blake3:" + name) and str(path) == str(store.blobs.path("blake3:" + name)):
            blob_files["blake3:" + name] = (str(path), st.st_mtime, st.st_size)
    return blob_files, temps


def collect_garbage(store: Store, *, grace_hours: float | None = None, dry_run: bool = False,
                    progress: Progress | None = None, save: bool = True) -> Report:
    """Collect unreferenced payloads older than the grace period; returns (and stores) the report.

    Counts: `candidates`, `revived` (re-used by a write during the sweep: kept),
    `collected_inline`, `collected_files` (blob rows removed, by tier), `orphan_files`,
    `temp_files` (files without a row), `bytes_freed`, `kept_young`, `referenced`.
    `dry_run`: the same plan, nothing deleted, no report stored (works on a read-only store)."""
    from ..integrity.findings import Report
    from ..integrity.reports import save_report

    if store.readonly and not dry_run:
        raise ReadOnlyStoreError(str(store.root))
    grace = store.settings.gc_grace_hours if grace_hours is None else grace_hours
    if grace < 0:
        raise ValueError(f"grace_hours must be >= 0, not {grace}")
    now, started = datetime.now(UTC), time.monotonic()
    cutoff = now - timedelta(hours=grace)
    cutoff_iso, cutoff_ts = _iso(cutoff), cutoff.timestamp()
    report = Report(kind=KIND, started_at=_iso(now))
    counts = dict.fromkeys(("candidates", "revived", "collected_inline", "collected_files", "orphan_files",
                            "temp_files", "bytes_freed", "kept_young", "referenced"), 0)
    report.counts = counts
    blobs = schema.blobs

    # -- mark ------------------------------------------------------------------------------
    with short_transaction(store) as conn:
        mark_tx = conn.execute(select(func.coalesce(func.max(schema.tx.c.tx_id), 0))).scalar_one()
        live = referenced(conn, store.blobs)
        rows = conn.execute(select(blobs.c.blob_id, blobs.c.size, blobs.c.bytes_id, blobs.c.created_at)).all()
    counts["referenced"] = len(live)
    candidates: list[tuple[str, int]] = []
    with_row: set[str] = set()
    for blob_id, size, _bytes_id, created_at in rows:
        with_row.add(blob_id)
        if blob_id in live:
            continue
        if created_at >= cutoff_iso:
            counts["kept_young"] += 1
            continue
        candidates.append((blob_id, size))
    counts["candidates"] = len(candidates)
    blob_files, temps = _files(store)
    orphans = [(bid, path, size) for bid, (path, mtime, size) in blob_files.items()
               if bid not in with_row and bid not in live and mtime < cutoff_ts]
    old_temps = [(path, size) for path, mtime, size in temps if mtime < cutoff_ts]

    if progress is not None:  # the mark is done, the sweep not begun (tests write here)
        progress("mark", len(candidates), len(candidates))
    if dry_run:
        counts["dry_run"] = 1
        counts["orphan_files"], counts["temp_files"] = len(orphans), len(old_temps)
        counts["bytes_freed"] = sum(s for _, s in candidates) + sum(s for *_, s in orphans) + \
            sum(s for _, s in old_temps)
        _finish(report, started)
        return report

    # -- sweep: rows first, one write transaction per lot; then that lot's files ------------
    seen_tx = mark_tx
    revived: set[str] = set()
    done = 0
    for start in range(0, len(candidates), LOT):
        lot = candidates[start : start + LOT]
        with short_transaction(store, "BEGIN IMMEDIATE") as conn:
            named, seen_tx = _named_since(conn, seen_tx)
            revived |= named
            ids = [bid for bid, _ in lot if bid not in revived]
            tiers = inline.stored_tiers(conn, ids)
            bytes_ids: list[int] = []
            file_ids: list[str] = []
            for bid, size in lot:
                if bid not in tiers:
                    continue
                bytes_id, _status = tiers[bid]
                if bytes_id is not None:
                    bytes_ids.append(bytes_id)
                    counts["collected_inline"] += 1
                else:
                    file_ids.append(bid)
                    counts["collected_files"] += 1
                counts["bytes_freed"] += size
            if bytes_ids:
                conn.execute(delete(schema.blob_bytes).where(schema.blob_bytes.c.bytes_id.in_(bytes_ids)))
            if tiers:
                conn.execute(delete(blobs).where(blobs.c.blob_id.in_(list(tiers))))
        done += len(lot)
        if progress is not None:  # between the lot's rows and its files (tests write here)
            progress("sweep", done, len(candidates))
        # the lot's files (a file a crashed pack left beside a collected inline copy is an orphan now: next run)
        _unlink_unclaimed(store, [(bid, str(store.blobs.path(bid))) for bid in file_ids], counts=None)
    counts["revived"] = len(revived & {bid for bid, _ in candidates})

    # -- orphan files (no row at the mark): re-checked under the write lock -------------------
    for start in range(0, len(orphans), LOT):
        lot_o = orphans[start : start + LOT]
        freed = _unlink_unclaimed(store, [(bid, path) for bid, path, _ in lot_o], counts)
        sizes = {path: size for _, path, size in lot_o}
        counts["bytes_freed"] += sum(sizes[p] for p in freed)
    for path, size in old_temps:
        try:
            os.unlink(path)
        except OSError:
            continue
        counts["temp_files"] += 1
        counts["bytes_freed"] += size
    _finish(report, started)
    if save:
        save_report(store, report)
    return report


def _unlink_unclaimed(store: Store, files: Iterable[tuple[str, str]], counts: dict[str, int] | None) -> list[str]:
    """Unlink each (blob id, path) whose id has no `blobs` row, holding the write lock; the paths unlinked."""
    files = list(files)
    if not files:
        return []
    unlinked: list[str] = []
    with short_transaction(store, "BEGIN IMMEDIATE") as conn:
        claimed = set(inline.stored_tiers(conn, [bid for bid, _ in files]))
        for bid, path in files:
            if bid in claimed:
                continue
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            unlinked.append(path)
            if counts is not None:
                counts["orphan_files"] += 1
    return unlinked


def _finish(report: Report, started: float) -> None:
    report.finished_at = _iso(datetime.now(UTC))
    report.counts["elapsed_ms"] = int((time.monotonic() - started) * 1000)
