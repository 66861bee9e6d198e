"""Scan history: integrity reports stored in store.sqlite (`integrity_reports`).

Owns saving a finished (or interrupted) `Report` and reading the last ones back. It never
changes canonical rows and never decides what a finding is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
from sqlalchemy import Connection, insert, select

from ..rows import schema
from .findings import Finding, Report

if TYPE_CHECKING:
    from ..store import Store

_json = msgspec.json.Encoder(order="sorted")


def save_report(store: Store, report: Report) -> Report:
    """Append `report` to the scan history; sets and returns it with its `report_id`."""
    with store.engine.connect() as conn:
        conn.info["begin"] = "BEGIN IMMEDIATE"
        with conn.begin():
            insert_report(conn, report)
    return report


#: a stored report keeps at most this many findings (errors first); the report object keeps all
MAX_STORED_FINDINGS = 10_000


def insert_report(conn: Connection, report: Report) -> Report:
    """`save_report` inside the caller's write transaction (so a scan's state and report move together)."""
    findings = report.findings
    counts = dict(report.counts)
    if len(findings) > MAX_STORED_FINDINGS:
        findings = (report.errors + report.warnings)[:MAX_STORED_FINDINGS]
        counts["findings_not_stored"] = len(report.findings) - len(findings)
    row = {
        "kind": report.kind, "partition": report.partition, "status": report.status,
        "started_at": report.started_at, "finished_at": report.finished_at, "ok": int(report.ok),
        "errors": len(report.errors), "warnings": len(report.warnings),
        "counts": _json.encode(counts).decode(),
        "findings": _json.encode([f.as_dict() for f in findings]),
    }
    report.report_id = conn.execute(insert(schema.integrity_reports), row).inserted_primary_key[0]
    return report


def last_reports(store: Store, kind: str | None = None, limit: int = 10) -> list[Report]:
    """The most recent reports, newest first; `kind` filters (a prefix: "blob-scan" matches both modes)."""
    table = schema.integrity_reports
    query = select(table).order_by(table.c.report_id.desc()).limit(limit)
    if kind is not None:
        query = query.where(table.c.kind.startswith(kind, autoescape=True))
    with store.engine.connect() as conn, conn.begin():
        rows = conn.execute(query).mappings().all()
    return [_report(row) for row in rows]


def _report(row: object) -> Report:
    r = dict(row)  # type: ignore[call-overload]
    return Report(
        kind=r["kind"], started_at=r["started_at"], finished_at=r["finished_at"], status=r["status"],
        partition=r["partition"], counts=msgspec.json.decode(r["counts"]),
        findings=[Finding.from_dict(f) for f in msgspec.json.decode(r["findings"])], report_id=r["report_id"],
    )
