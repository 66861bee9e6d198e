"""Age retention: delete the sessions that stopped more than N days ago and nothing depends on.

`delete_stopped_sessions` is the one policy built on delete itself (helper-side scheduling and
report storage live with the other retention policies). A session qualifies when its status
is `stopped` or `error`, it ended (`ended_at`, else its last update) before the cutoff, and
no live session depends on it (`forget.dependants.direct`: forks, children, invocations). Each
is deleted as its own `session/deleted` write with the reason "retention: stopped > N days"
and a write id derived from the session id, so a re-run (or a retried one) is idempotent.
The setting is `SESSIONDB_RETAIN_STOPPED_DAYS` (0: off).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import blake3
from sqlalchemy import func, select

from ..errors import StoreError
from ..rows import schema
from . import dependants

Submit = Callable[[dict[str, Any]], dict[str, Any]]


def reason_for(days: float) -> str:
    return f"retention: stopped > {days:g} days"


def write_id_for(session: str) -> str:
    return "retention-" + blake3.blake3(session.encode()).hexdigest()[:32]


def stopped_before(store: Any, cutoff: str) -> list[str]:
    s = schema.sessions
    ended = func.coalesce(s.c.ended_at, s.c.updated_at)
    with store.engine.connect() as conn, conn.begin():
        return list(conn.execute(select(s.c.session_id).where(s.c.status.in_(["stopped", "error"]), ended < cutoff)
                                 .order_by(ended, s.c.session_id)).scalars())


def delete_stopped_sessions(store: Any, older_than_days: float, *, dry_run: bool = False,
                            now: datetime | None = None, submit: Submit | None = None) -> dict[str, Any]:
    """Delete (or, `dry_run`, list) the sessions stopped for more than `older_than_days` days
    with no live dependants. `submit` sends a delete write (default: `store.commit`; a fleet
    passes its client's). Returns `{"older_than_days", "cutoff", "deleted": [...], "skipped":
    [{"session", "dependants"}], "failed": [{"session", "error"}], "bytes_freed", "dry_run"}`."""
    if older_than_days <= 0:
        raise ValueError("older_than_days must be > 0 (SESSIONDB_RETAIN_STOPPED_DAYS=0 turns retention off)")
    cutoff = ((now or datetime.now(UTC)) - timedelta(days=older_than_days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    report: dict[str, Any] = {"older_than_days": older_than_days, "cutoff": cutoff, "dry_run": dry_run,
                              "deleted": [], "skipped": [], "failed": [], "bytes_freed": 0}
    commit = submit or store.commit
    for sid in stopped_before(store, cutoff):
        with store.engine.connect() as conn, conn.begin():
            deps = dependants.direct(conn, sid)
        if deps:
            report["skipped"].append({"session": sid, "dependants": deps})
            continue
        if dry_run:
            plan = store.delete_session(sid, dry_run=True)
            report["deleted"].append(sid)
            report["bytes_freed"] += plan["bytes_freed"]
            continue
        try:
            receipt = commit({"write_id": write_id_for(sid), "session": sid, "events": [
                {"type": "session/deleted", "reason": reason_for(older_than_days)}]})
        except StoreError as exc:  # e.g. a dependant appeared meanwhile: the next run looks again
            report["failed"].append({"session": sid, "error": exc.as_dict()})
            continue
        report["deleted"].append(sid)
        report["bytes_freed"] += receipt.get("bytes_freed", 0)
    return report
