"""High-water counters: each session's counter per id kind must be at least the highest id used.

A counter below a used id would make the writer hand out an id again (docs/spec.md, High-water counters).
One grouped query per kind, over the primary keys. Read-only.
"""

from __future__ import annotations

from sqlalchemy import Connection, and_, func, select

from ...rows import schema
from ..findings import Report

#: counter kind -> (table, id column)
USED = schema.ID_KINDS


def check(conn: Connection, report: Report) -> None:
    counters = schema.counters
    for kind, (table, column) in USED.items():
        used = (select(table.c.session_id, func.max(table.c[column]).label("used"))
                .group_by(table.c.session_id).subquery())
        query = (
            select(used.c.session_id, used.c.used, counters.c.value)
            .select_from(used.outerjoin(counters, and_(counters.c.session_id == used.c.session_id,
                                                       counters.c.kind == kind)))
            .where(func.coalesce(counters.c.value, 0) < used.c.used)
        )
        for session, highest, value in conn.execute(query):
            report.add("counter/below-used", f"session {session!r}: {kind} counter is {value or 0} but id {highest}"
                       " is already used; new ids would collide", session=session, kind=kind,
                       counter=value or 0, used=highest)
        report.count("counter_kinds_checked")
