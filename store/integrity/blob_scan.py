"""The blob scan: re-hash blob files, find missing, orphan, leftover and misnamed files.

    report = scan_blobs(store)              # incremental: new blobs + a rolling slice of old ones
    report = scan_blobs(store, full=True)   # every blob of the partition

The unit of work is one top-level directory `blobs/<2 hex>/` (256 of them, in order),
scanned by `unit.scan_unit` (rows first, listing second, then re-hash the planned files),
either here or, for big runs, in `workers` worker processes (`scan_worker`). This module
takes the unit results in order: suspects are re-read once under the write lock
(`BEGIN IMMEDIATE`) before a verdict, corrupt files move to quarantine/ and their row is
marked 'quarantined', and the run checkpoints the last finished unit, its findings and its
pending orphans, so a crashed or interrupted run resumes after the last checkpoint.

`repair=False` (the default on a store opened read-only) is a dry run: the same findings,
but nothing is moved, marked, checkpointed or recorded, so it runs on a read-only store;
a corrupt file is reported as such and left where it is.

Owns the scan's plan and verdicts. It never deletes a blob file that a row references, and
deletes nothing at all unless `collect_orphans=True`, and then only orphans and temp files
past the grace period, under the write lock. It never rewrites a row except a blob row's
`status`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import blake3
from sqlalchemy import Connection, and_, false, func, or_, select, true, update
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from ..blobs import inline as inline_tier
from ..rows import schema
from ..rows.short_tx import short_transaction
from . import blob_files, blob_refs, scan_state, sqlite_check
from .findings import Finding, Report
from .hashing import NOT_A_FILE, Hashed, hash_file
from .partition import Partition
from .reports import insert_report, save_report
from .scan_worker import ProcessUnits
from .unit import UnitResult, UnitSpec, connect, scan_unit

if TYPE_CHECKING:
    from ..store import Store

#: files younger than this are writes in progress, never orphans or leftovers
DEFAULT_GRACE_SECONDS = 3600
#: an incremental scan re-hashes a rolling slice so every blob is re-hashed within this period
DEFAULT_PERIOD_SECONDS = 7 * 24 * 3600
#: a run checkpoints its progress at most this often (and whenever it quarantines a file)
DEFAULT_CHECKPOINT_SECONDS = 2.0
#: with `workers=None`, runs that re-hash at least this many blobs use worker processes
PROCESS_THRESHOLD = 5000

#: progress(phase, done, total): phase "hash" counts the blobs of the run's plan
Progress = Callable[[str, int, int], None]

_ROLL_DIGITS = 8
_END = "blake3:g"  # sorts after every blob id
_START = "blake3:"  # sorts before every blob id


def scan_blobs(
    store: Store,
    full: bool = False,
    *,
    collect_orphans: bool = False,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    prefixes: Iterable[str] | None = None,
    partition: str | None = None,
    workers: int | None = None,
    period_seconds: float = DEFAULT_PERIOD_SECONDS,
    progress: Progress | None = None,
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS,
    now: datetime | None = None,
    repair: bool | None = None,
) -> Report:
    """Scan the blob files of one partition (`prefixes` or `partition="i/n"`; default: all).

    `workers`: worker processes that list and re-hash (0: all in this process; default: one
    per core when the run re-hashes at least PROCESS_THRESHOLD blobs, else 0). `now`: the
    scan's clock (for the grace period and the rolling re-hash). Returns the report, which
    is also appended to the scan history. An exception (a crash, or one raised by
    `progress`) leaves the run's checkpoint behind: the next call with the same mode and
    partition resumes it. `repair` (default: unless the store was opened read-only):
    quarantine corrupt files, keep the checkpoint and the history; False is a dry run that
    writes nothing (`collect_orphans` needs `repair`)."""
    repair = not getattr(store, "readonly", False) if repair is None else repair
    if collect_orphans and not repair:
        raise ValueError("collect_orphans=True deletes files: it needs repair=True (and a writable store)")
    part = Partition.of(prefixes, partition)
    kind = "blob-scan/full" if full else "blob-scan/incremental"
    now = now or datetime.now(UTC)
    # SQLite's own check first (once per scan: by the partition that reports top-level names).
    # Rows read from a damaged database cannot be trusted, so the blob scan then stops there.
    pages = Report(kind, _iso(now), partition=part.name)
    if part.reports_misnamed("") and not sqlite_check.check_databases(store.root, pages, full=full):
        pages.finished_at = _iso(datetime.now(UTC))
        pages.count("blob_scan_skipped")
        if repair:  # (a dry run records nothing)
            try:
                save_report(store, pages)
            except Exception:  # noqa: BLE001 - a damaged database may refuse the history row too
                pass
        return pages
    scan = _BlobScan(store, part, kind, collect_orphans, grace_seconds, period_seconds, progress,
                     checkpoint_seconds, now, repair)
    report = scan.run(workers)
    report.counts.update(pages.counts)
    return report


@dataclass
class Plan:
    """Which blob rows a run re-hashes; frozen when the run starts so a resumed run does the same work."""

    total: int
    incremental: bool
    new_since: str | None = None  # incremental: rows created after this ...
    new_until: str | None = None  # ... and at or before this are new (None: no new rows)
    roll_from: str = _START  # incremental: ids in (roll_from, roll_to] are this run's rolling slice
    roll_to: str = _START
    restart_cycle: bool = False

    def where(self, blobs: Any) -> Any:
        if not self.incremental:
            return true()
        new = false() if self.new_until is None else and_(
            blobs.c.created_at <= self.new_until,
            *([blobs.c.created_at > self.new_since] if self.new_since else []))
        rolling = and_(blobs.c.blob_id > self.roll_from, blobs.c.blob_id <= self.roll_to)
        return or_(new, rolling)


class Row(NamedTuple):
    blob_id: str
    size: int
    status: str
    planned: int
    bytes_id: int | None = None  # inline: the `blob_bytes` row; None: a blob file


class _BlobScan:
    def __init__(self, store: Store, part: Partition, kind: str, collect: bool, grace: float, period: float,
                 progress: Progress | None, checkpoint_seconds: float, now: datetime, repair: bool) -> None:
        self.store, self.part, self.kind, self.repair = store, part, kind, repair
        self.collect, self.grace, self.period = collect, grace, period
        self.progress, self.now = progress, now
        self.checkpoint_seconds = checkpoint_seconds
        self.key = f"{kind}:{part.name}"
        self.blob_dir = str(store.blobs.dir)
        self.plan = Plan(0, False)
        # orphan and temp candidates: (blob id, path, age, size); settled at the end of the run
        self.orphans: list[list[Any]] = []
        self.temps: list[list[Any]] = []
        self.last_checkpoint = 0.0

    # -- run ----------------------------------------------------------------------------
    def run(self, workers: int | None) -> Report:
        with short_transaction(self.store) as conn:
            state = scan_state.load(conn, self.key)
        if state.in_progress and state.partial and self.repair:  # a dry run leaves a repair run's checkpoint be
            report = _report_from(state.partial["report"])
            self.plan = Plan(**state.partial["plan"])
            self.orphans, self.temps = state.partial["orphans"], state.partial["temps"]
            report.count("resumed")
        else:
            report = Report(self.kind, _iso(self.now), partition=self.part.name)
            self.plan = self._plan(state)
            report.counts["planned"] = self.plan.total
            state.run_started_at, state.cursor = report.started_at, None
        try:
            if state.cursor is None and os.path.isdir(self.blob_dir):
                self._misnamed(blob_files.top_dirs(self.blob_dir)[1], report)
            if workers is None:
                workers = (os.cpu_count() or 1) if self.plan.total >= PROCESS_THRESHOLD else 0
            self._scan(max(0, workers), state, report)
            self._settle_orphans(report)
        except BaseException:
            report.status, report.finished_at = "interrupted", _iso(datetime.now(UTC))
            if not self.repair:
                raise
            try:
                save_report(self.store, report)
            except Exception:  # noqa: BLE001 - the original error matters more than the history row
                pass
            raise
        report.finished_at = _iso(datetime.now(UTC))
        self._finish(state, report)
        return report

    # -- plan ---------------------------------------------------------------------------
    def _plan(self, state: scan_state.ScanState) -> Plan:
        blobs = schema.blobs
        plan = Plan(total=0, incremental=self.kind.endswith("incremental"))
        with short_transaction(self.store) as conn:
            if plan.incremental:
                plan.new_since = state.new_since
                plan.new_until = conn.execute(select(func.max(blobs.c.created_at))).scalar()
                plan.roll_from = state.roll_cursor or _START
                started = _parse(state.roll_started_at) if state.roll_started_at else self.now
                state.roll_started_at = _iso(started)
                fraction = (self.now - started).total_seconds() / self.period if self.period > 0 else 1.0
                if fraction >= 1:
                    plan.roll_to, plan.restart_cycle = _END, True
                else:
                    position = int(max(0.0, fraction) * 16**_ROLL_DIGITS)
                    plan.roll_to = max(plan.roll_from, f"blake3:{position:0{_ROLL_DIGITS}x}")
            plan.total = conn.execute(select(func.count()).select_from(blobs).where(
                self.part.where(blobs.c.blob_id), plan.where(blobs))).scalar_one()
        return plan

    # -- the units ----------------------------------------------------------------------
    def _scan(self, workers: int, state: scan_state.ScanState, report: Report) -> None:
        tops = [f"{b:02x}" for b in range(256) if self.part.owns_dir(f"{b:02x}")]
        if state.cursor is not None:
            tops = [t for t in tops if t > state.cursor]
        spec = UnitSpec(str(self.store.root / "store.sqlite"), self.blob_dir, self._rows_sql(),
                        list(self.part.prefixes), self.grace, self.now.timestamp())
        self.last_checkpoint = time.monotonic()
        if workers == 0:
            conn = connect(spec.db_path)
            try:
                part = spec.partition()
                for top in tops:
                    self._step(scan_unit(conn, spec, part, top), state, report)
            finally:
                conn.close()
        else:
            with ProcessUnits(spec, workers) as pool:
                for unit in pool.map(tops):
                    self._step(unit, state, report)

    def _rows_sql(self) -> str:
        """The SQL a unit reads its rows with: (blob_id, size, status, planned, bytes_id) of one top-level directory."""
        blobs = schema.blobs

        def sql(expr: Any) -> str:
            return str(expr.compile(dialect=sqlite_dialect(), compile_kwargs={"literal_binds": True}))

        return (f"SELECT blob_id, size, status, CASE WHEN ({sql(self.plan.where(blobs))}) THEN 1 ELSE 0 END, bytes_id"
                f" FROM blobs WHERE blob_id >= ? AND blob_id < ? AND ({sql(self.part.where(blobs.c.blob_id))})"
                " ORDER BY blob_id")

    def _step(self, unit: UnitResult, state: scan_state.ScanState, report: Report) -> None:
        """Take one finished unit (in order): findings, verdicts under the lock, checkpoint, progress."""
        self._judge(unit, report)
        done = report.counts.get("planned_done", 0) + unit.planned
        report.counts["planned_done"] = done
        state.cursor = unit.top
        suspects = [Row(*r) for r in unit.suspects]
        if not self.repair:
            self._verdicts(None, suspects, (), report)
        elif suspects or unit.unmark or time.monotonic() - self.last_checkpoint >= self.checkpoint_seconds:
            # verdicts and the checkpoint that covers them commit together
            with short_transaction(self.store, "BEGIN IMMEDIATE") as conn:
                self._verdicts(conn, suspects, unit.unmark, report)
                state.partial = {"report": _report_data(report), "plan": asdict(self.plan),
                                 "orphans": self.orphans, "temps": self.temps}
                scan_state.save(conn, state)
            self.last_checkpoint = time.monotonic()
        if self.progress is not None and unit.planned:
            self.progress("hash", min(done, self.plan.total), self.plan.total)

    def _judge(self, unit: UnitResult, report: Report) -> None:
        """The findings of one unit that need no lock."""
        for path, why in unit.bad:
            report.add("blob/bad-name", f"{path}: {why}", path=path, reason=why)
        report.count("blobs_hashed", unit.hashed)
        report.count("bytes_hashed", unit.nbytes)
        report.count("files_listed", unit.listed)
        report.count("inline_rows", unit.inline)
        report.count("skipped_missing", unit.vanished + sum(r[3] for r in unit.missing))
        for row in unit.missing:
            self._missing(Row(*row), report)
        self.orphans.extend(list(o) for o in unit.orphans)
        self.temps.extend(list(t) for t in unit.temps)

    def _verdicts(self, conn: Connection | None, suspects: Sequence[Any], unmark: Sequence[str],
                  report: Report) -> None:
        """Under the write lock: re-read each suspect once, then quarantine what is really corrupt
        (with no `conn`, a dry run: only report it)."""
        blobs = schema.blobs
        for row in suspects:
            if row.bytes_id is not None:
                self._inline_verdict(conn, row, report)
                continue
            again = hash_file(str(self.store.blobs.path(row.blob_id)))
            report.count("reread")
            verdict = _verdict(row, again)
            if verdict is None:
                report.count("transient_mismatch")
                continue
            finding_type, message, data = verdict
            if data.get("file_intact", True) is False and conn is None:
                message += "; left in place (a dry run: scan with repair to move it to quarantine)"
            elif data.get("file_intact", True) is False:
                message += "; moved to quarantine"
                target = self.store.blobs.quarantine(row.blob_id)
                conn.execute(update(blobs).where(blobs.c.blob_id == row.blob_id).values(status="quarantined"))
                data["quarantined_to"] = str(target) if target else None
                report.count("quarantined")
            report.findings.append(Finding(finding_type, message, data))
        for blob_id in unmark:
            # a quarantined blob whose file is back and intact (restored by hand): clear the mark
            conn.execute(update(blobs).where(blobs.c.blob_id == blob_id).values(status="ok"))
            report.count("unmarked")

    def _inline_verdict(self, conn: Connection | None, row: Row, report: Report) -> None:
        """A suspect inline blob, read again (under the write lock when repairing): corrupt
        bytes move to `blob_quarantine` and the row is marked (a re-write of the content heals)."""
        report.count("reread")
        if conn is None:
            with short_transaction(self.store) as read:
                data = inline_tier.bytes_of(read, row.bytes_id)
        else:
            data = inline_tier.bytes_of(conn, row.bytes_id)
        if data is None:
            report.count("transient_mismatch")  # gone since the first read (quarantined or re-stored)
            return
        got = blake3.blake3(data).hexdigest()
        if got == row.blob_id[7:] and len(data) == row.size:
            report.count("transient_mismatch")
            return
        kind = "blob/hash-mismatch" if len(data) == row.size else "blob/size-mismatch"
        message = f"{row.blob_id}: its inline bytes changed ({len(data)} bytes, {row.size} recorded)"
        data_out: dict[str, Any] = {"blob_id": row.blob_id, "tier": "inline", "recorded_size": row.size,
                                    "file_size": len(data), "actual_hash": f"blake3:{got}", "file_intact": False}
        if conn is None:
            message += "; left in place (a dry run: scan with repair to move it to quarantine)"
        else:
            message += "; moved to quarantine"
            data_out["quarantine_id"] = inline_tier.quarantine(conn, row.blob_id, row.bytes_id, _iso(self.now))
            report.count("quarantined")
        report.findings.append(Finding(kind, message, data_out))

    def _missing(self, row: Any, report: Report) -> None:
        if row.bytes_id is not None:
            report.add("blob/missing", f"{row.blob_id} is inline but its bytes ({row.bytes_id}) are gone",
                       blob_id=row.blob_id, size=row.size, bytes_id=row.bytes_id)
            return
        path = str(self.store.blobs.path(row.blob_id))
        if os.path.exists(path):  # a concurrent write put it back after the listing
            return
        if row.status == "quarantined":
            report.add("blob/quarantined", f"{row.blob_id} is quarantined; writing the same content again"
                       " restores it", blob_id=row.blob_id, size=row.size)
        else:
            report.add("blob/missing", f"{row.blob_id} has a row but no file", blob_id=row.blob_id,
                       size=row.size, path=path)

    def _misnamed(self, listing: blob_files.Listing, report: Report) -> None:
        for place, path, why in listing.bad:
            if self.part.reports_misnamed(place):
                report.add("blob/bad-name", f"{path}: {why}", path=path, reason=why)

    # -- orphans ------------------------------------------------------------------------
    def _settle_orphans(self, report: Report) -> None:
        orphans = {o[0]: o for o in self.orphans}
        if orphans:
            with short_transaction(self.store) as conn:
                referenced = blob_refs.referenced_among(conn, orphans)
            for blob_id in referenced:  # no blob row, but a row points at it: a ref problem, not an orphan
                orphans.pop(blob_id)
        collected: set[str] = set()
        if self.collect and (orphans or self.temps):
            collected = self._collect(orphans, self.temps)
        for blob_id, path, age, size in sorted(orphans.values()):
            report.add("blob/orphan", f"{path}: no row references it (age {age:.0f} s)", blob_id=blob_id,
                       path=path, age_seconds=round(age), size=size, collected=path in collected)
        for blob_id, path, age, size in self.temps:
            report.add("blob/temp-leftover", f"{path}: temp file of an unfinished write (age {age:.0f} s)",
                       blob_id=blob_id, path=path, age_seconds=round(age), size=size, collected=path in collected)
        report.count("collected", len(collected))

    def _collect(self, orphans: dict[str, list[Any]], temps: list[list[Any]]) -> set[str]:
        """Delete orphans and temp files, holding the write lock so no write can adopt a file meanwhile."""
        blobs = schema.blobs
        deleted: set[str] = set()
        with short_transaction(self.store, "BEGIN IMMEDIATE") as conn:
            ids = sorted(orphans)
            adopted: set[str] = set()
            for start in range(0, len(ids), 500):
                adopted.update(conn.execute(select(blobs.c.blob_id).where(
                    blobs.c.blob_id.in_(ids[start:start + 500]))).scalars())
            adopted |= blob_refs.referenced_among(conn, ids)
            paths = [o[1] for bid, o in orphans.items() if bid not in adopted] + [t[1] for t in temps]
            for path in paths:
                try:
                    os.unlink(path)
                    deleted.add(path)
                except OSError:  # gone already, or not ours to delete: reported, not collected
                    pass
        return deleted

    # -- finish -------------------------------------------------------------------------
    def _finish(self, state: scan_state.ScanState, report: Report) -> None:
        if not self.repair:
            report.counts["dry_run"] = 1
            return
        state.run_started_at, state.cursor, state.partial = None, None, {}
        plan = self.plan
        if plan.incremental:
            if plan.new_until is not None:
                state.new_since = plan.new_until
            if plan.restart_cycle:
                state.roll_cursor, state.roll_started_at = _START, _iso(self.now)
            else:
                state.roll_cursor = plan.roll_to
        with short_transaction(self.store, "BEGIN IMMEDIATE") as conn:
            scan_state.save(conn, state)
            insert_report(conn, report)


def _verdict(row: Any, got: Hashed) -> tuple[str, str, dict[str, Any]] | None:
    """What a second read of a suspect file says: None when it is fine after all."""
    blob_id = row.blob_id
    if got.missing:
        return None  # gone since the first read (a writer replaced it); the next scan looks again
    if got.error == NOT_A_FILE:
        return ("blob/not-a-file", f"{blob_id}: a symbolic link or other non-regular file holds the blob's name;"
                " moved to quarantine", {"blob_id": blob_id, "file_intact": False})
    if got.error:
        return "blob/unreadable", f"{blob_id}: {got.error}", {"blob_id": blob_id, "error": got.error}
    intact = got.hexdigest == blob_id[7:]
    if intact and got.size == row.size:
        return None
    data = {"blob_id": blob_id, "recorded_size": row.size, "file_size": got.size,
            "actual_hash": f"blake3:{got.hexdigest}", "file_intact": intact}
    if got.size != row.size:
        if intact:
            return ("blob/size-mismatch", f"{blob_id}: the file is intact but its row records {row.size} bytes,"
                    f" not {got.size}", data)
        return ("blob/size-mismatch", f"{blob_id}: {got.size} bytes on disk, {row.size} recorded (truncated or"
                " extended)", data)
    return "blob/hash-mismatch", f"{blob_id}: the file's bytes changed", data


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _report_data(report: Report) -> dict[str, Any]:
    return {"kind": report.kind, "started_at": report.started_at, "partition": report.partition,
            "counts": report.counts, "findings": [f.as_dict() for f in report.findings]}


def _report_from(data: dict[str, Any]) -> Report:
    return Report(data["kind"], data["started_at"], partition=data["partition"], counts=dict(data["counts"]),
                  findings=[Finding.from_dict(f) for f in data["findings"]])
