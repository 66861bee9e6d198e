"""Where each blob scan stands, persisted in `integrity_progress`, so scans resume after a crash.

One row per scan key (`<kind>:<partition>`): the run in progress (when it started, the
last top-level directory it finished, its report so far, its frozen plan and its pending
orphans), and for incremental scans the creation-time watermark of "new" blobs and the
position of the rolling re-hash.
Owns reading and writing that row; never decides what to scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import Connection, insert, select

from ..rows import schema
from ..writes.model import now_iso

_json = msgspec.json.Encoder(order="sorted")


@dataclass
class ScanState:
    scan_key: str
    run_started_at: str | None = None
    cursor: str | None = None
    partial: dict[str, Any] = field(default_factory=dict)  # the run in progress: report, plan, orphans, temps
    new_since: str | None = None
    roll_cursor: str | None = None
    roll_started_at: str | None = None

    @property
    def in_progress(self) -> bool:
        return self.run_started_at is not None


def load(conn: Connection, scan_key: str) -> ScanState:
    table = schema.integrity_progress
    row = conn.execute(select(table).where(table.c.scan_key == scan_key)).mappings().first()
    if row is None:
        return ScanState(scan_key)
    return ScanState(
        scan_key, row["run_started_at"], row["cursor"],
        msgspec.json.decode(row["partial"]) if row["partial"] else {},
        row["new_since"], row["roll_cursor"], row["roll_started_at"],
    )


def save(conn: Connection, state: ScanState) -> None:
    conn.execute(insert(schema.integrity_progress).prefix_with("OR REPLACE"), {
        "scan_key": state.scan_key, "run_started_at": state.run_started_at, "cursor": state.cursor,
        "partial": _json.encode(state.partial) if state.partial else None, "new_since": state.new_since,
        "roll_cursor": state.roll_cursor, "roll_started_at": state.roll_started_at, "updated_at": now_iso(),
    })
