"""Dangling references: rows that point at a session, head, row or blob that does not exist.

The references are a table (`REFS`), one line per foreign key the write path promises to
keep; each becomes one anti-join query. Findings are grouped per missing target, so a
deleted session yields one finding per referencing table with a count and sample keys,
not one per event. Read-only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, and_, select

from ...rows import schema as s
from ..blob_refs import without_blob_row
from ..findings import Report

SAMPLES = 5


@dataclass(frozen=True)
class Ref:
    table: Table
    columns: tuple[str, ...]  # in `table`; the last one names the target, the others scope it
    target: Table
    target_columns: tuple[str, ...]
    what: str  # what the target is, for messages


def _scoped(table: Table, column: str, target: Table, target_column: str, what: str) -> Ref:
    """A per-session id: (session_id, column) -> target (session_id, target_column)."""
    return Ref(table, ("session_id", column), target, ("session_id", target_column), what)


def _plain(table: Table, column: str, target: Table, target_column: str, what: str) -> Ref:
    return Ref(table, (column,), target, (target_column,), what)


REFS: list[Ref] = [
    _plain(s.sessions, "current_head", s.heads, "head_id", "current head"),
    _plain(s.sessions, "parent", s.sessions, "session_id", "parent session"),
    _plain(s.heads, "session_id", s.sessions, "session_id", "session"),
    _plain(s.heads, "basis", s.heads, "head_id", "basis head"),
    _scoped(s.heads, "snapshot_id", s.snapshots, "snapshot_id", "snapshot"),
    _scoped(s.heads, "turn_id", s.turns, "turn_id", "turn"),
    _plain(s.invocations, "caller_session", s.sessions, "session_id", "caller session"),
    _plain(s.invocations, "callee_session", s.sessions, "session_id", "callee session"),
    _plain(s.invocations, "caller_head_before", s.heads, "head_id", "caller head"),
    _plain(s.invocations, "caller_head_after", s.heads, "head_id", "caller head"),
    _plain(s.invocations, "callee_head_before", s.heads, "head_id", "callee head"),
    _plain(s.invocations, "callee_head_after", s.heads, "head_id", "callee head"),
    _plain(s.derivations, "target_session", s.sessions, "session_id", "derived session"),
    _plain(s.derivations, "source_session", s.sessions, "session_id", "source session"),
    _plain(s.derivations, "source_head", s.heads, "head_id", "source head"),
    _plain(s.aliases, "session_id", s.sessions, "session_id", "aliased session"),
    _plain(s.calls, "child_session", s.sessions, "session_id", "child session"),
    _plain(s.turns, "head_before", s.heads, "head_id", "head"),
    _plain(s.turns, "head_after", s.heads, "head_id", "head"),
    _scoped(s.messages, "turn_id", s.turns, "turn_id", "turn"),
    _scoped(s.messages, "call_id", s.calls, "call_id", "call"),
    _scoped(s.evals, "turn_id", s.turns, "turn_id", "turn"),
    _scoped(s.evals, "message_id", s.messages, "message_id", "message"),
    _scoped(s.calls, "turn_id", s.turns, "turn_id", "turn"),
    _scoped(s.calls, "eval_id", s.evals, "eval_id", "eval"),
    _scoped(s.snapshots, "turn_id", s.turns, "turn_id", "turn"),
    *[_plain(t, "session_id", s.sessions, "session_id", "session")
      for t in (s.events, s.messages, s.turns, s.evals, s.calls, s.snapshots, s.counters)],
]


def check(conn: Connection, report: Report) -> None:
    for ref in REFS:
        _check_ref(conn, ref, report)
    _check_current_head_owner(conn, report)
    _check_blob_rows(conn, report)
    _check_inline_bytes(conn, report)


def _check_ref(conn: Connection, ref: Ref, report: Report) -> None:
    src, tgt = ref.table, ref.target.alias("target")
    keys = list(src.primary_key.columns)
    on = and_(*[tgt.c[tc] == src.c[sc] for sc, tc in zip(ref.columns, ref.target_columns, strict=True)])
    joined, deleted = src.outerjoin(tgt, on), []
    if ref.target is s.sessions:  # a deleted session's id is a tombstone: naming it is no dangling ref
        stones = s.tombstones.alias("stones")
        joined = joined.outerjoin(stones, stones.c.session_id == src.c[ref.columns[-1]])
        deleted = [stones.c.session_id.is_(None)]
    query = (
        select(*keys, *[src.c[c] for c in ref.columns])
        .select_from(joined)
        .where(*[src.c[c].is_not(None) for c in ref.columns], tgt.c[ref.target_columns[0]].is_(None), *deleted)
    )
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in conn.execute(query):
        target = tuple(row[len(keys):])
        groups[target].append({str(k.name): row[i] for i, k in enumerate(keys)})
    for target, rows in groups.items():
        name = "/".join(str(v) for v in target)
        column, table = ref.columns[-1], str(src.name)
        report.add(
            "ref/dangling",
            f"{table}.{column} -> {ref.target.name}: {ref.what} {name!r} does not exist ({len(rows)} rows)",
            table=table, column=column, target_table=str(ref.target.name), target=name, rows=len(rows),
            sample=rows[:SAMPLES])
    report.count("refs_checked")


def _check_current_head_owner(conn: Connection, report: Report) -> None:
    sessions, heads = s.sessions, s.heads
    query = (select(sessions.c.session_id, heads.c.head_id, heads.c.session_id.label("owner"))
             .join(heads, heads.c.head_id == sessions.c.current_head)
             .where(heads.c.session_id != sessions.c.session_id))
    for row in conn.execute(query):
        report.add("ref/dangling", f"session {row.session_id!r}: current head {row.head_id!r} belongs to session"
                   f" {row.owner!r}", table="sessions", column="current_head", target_table="heads",
                   target=row.head_id, rows=1, sample=[{"session_id": row.session_id}], owner=row.owner)


def _check_inline_bytes(conn: Connection, report: Report) -> None:
    """A blob row whose tier says inline (`bytes_id`) but whose `blob_bytes` row is gone: its
    bytes are nowhere (an inline blob has no file), so every row referencing it is dangling."""
    blobs, data = s.blobs, s.blob_bytes
    query = (select(blobs.c.blob_id, blobs.c.bytes_id)
             .select_from(blobs.outerjoin(data, data.c.bytes_id == blobs.c.bytes_id))
             .where(blobs.c.bytes_id.is_not(None), data.c.bytes_id.is_(None)))
    for blob_id, bytes_id in conn.execute(query):
        report.add("ref/dangling", f"{blob_id}: its blob row points at inline bytes {bytes_id} that do not exist",
                   table="blobs", column="bytes_id", target_table="blob_bytes", target=str(bytes_id), rows=1,
                   sample=[{"blob_id": blob_id}])
    report.count("refs_checked")


def _check_blob_rows(conn: Connection, report: Report) -> None:
    groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = defaultdict(list)
    for table, column, key, blob_id in without_blob_row(conn):
        groups[blob_id].append((table, column, key))
    for blob_id, refs in groups.items():
        report.add("ref/dangling", f"{blob_id} is referenced by {len(refs)} row(s) but has no blob row",
                   table=refs[0][0], column=refs[0][1], target_table="blobs", target=blob_id, rows=len(refs),
                   sample=[{"table": t, "column": c, **k} for t, c, k in refs[:SAMPLES]])
