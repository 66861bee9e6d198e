"""Deleting a session for real: the plan (what goes, who depends on it) and its execution.

`plan` decides, inside the caller's transaction and without writing: which sessions go (the
session, plus its dependants transitively with `cascade`), which of their rows stay because
a live session still reads them (`detach`: kept once, under their own keys, so every
dependant's view is byte-identical), and refuses with the list of dependants otherwise.
`execute` carries a plan out inside the writer's transaction (the group commit calls it for
a `session/deleted` write): rows of every table, excised tx facts (`excise.py`), payloads
nothing else references (`erase.py`), a content-free stub for each of its write receipts (a
re-sent write id still answers as a duplicate), and one tombstone per deleted session. It
never commits, never touches blob files (they are unlinked after the commit) and never
imports Celery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from sqlalchemy import Connection, and_, bindparam, delete, func, insert, not_, or_, select, update

from ..blobs import BlobStore
from ..errors import DependantsError, NotFoundError, SessionDeletedError
from ..rows import schema
from ..rows.branch import Ranges
from . import dependants, erase, excise

_json = msgspec.json.Encoder(order="sorted")

#: per-session entity tables a fork can read through its membership (kept by a detach)
BRANCH_TABLES = [schema.messages, schema.turns, schema.evals, schema.calls, schema.snapshots, schema.heads]


@dataclass
class Plan:
    session: str  # the session id the delete names (resolved from an alias)
    mode: str  # plain | cascade | detach
    sessions: list[str]  # the sessions that go, the named one first
    dependants: list[dict[str, str]]  # live sessions that depend on the named one
    #: per session whose rows are removed: the event ranges kept for live readers
    keep: dict[str, Ranges] = field(default_factory=dict)
    #: deleted sessions (earlier detaches) whose kept rows may now go too
    pruned: list[str] = field(default_factory=list)
    #: per session: heads kept because rows that stay name them (invocations, derivations)
    keep_heads: dict[str, set[str]] = field(default_factory=dict)

    def kept(self, sid: str) -> tuple[Ranges, set[str]]:
        return self.keep.get(sid, []), self.keep_heads.get(sid, set())


def resolve(conn: Connection, name: str) -> str:
    """A session id or alias -> the live session id; SessionDeletedError for a tombstoned one."""
    s, a = schema.sessions, schema.aliases
    if conn.execute(select(s.c.session_id).where(s.c.session_id == name)).first() is not None:
        return name
    alias = conn.execute(select(a.c.session_id).where(a.c.name == name)).scalar()
    if alias is not None:
        return alias
    stone = dependants.tombstone(conn, name)
    if stone is not None:
        raise SessionDeletedError(name, stone["deleted_at"], stone["reason"])
    raise NotFoundError("session", name)


def plan(conn: Connection, blobs: BlobStore, name: str, *, cascade: bool = False, detach: bool = False) -> Plan:
    sid = resolve(conn, name)
    direct = dependants.direct(conn, sid)
    mode = "cascade" if cascade else "detach" if detach else "plain"
    if direct and mode == "plain":
        raise DependantsError(sid, direct)
    sessions = dependants.closure(conn, sid) if cascade else [sid]
    leaving = set(sessions)
    keep = {s: dependants.needed_ranges(conn, blobs, s, leaving) for s in sessions} if detach else \
        dict.fromkeys(sessions, [])
    pruned = sorted(dependants.tombstoned_sources(conn, blobs, sessions))
    for stone in pruned:
        keep[stone] = dependants.needed_ranges(conn, blobs, stone, leaving)
    heads = {s: dependants.needed_heads(conn, s, leaving) for s in [*sessions, *pruned] if s in pruned or detach}
    return Plan(sid, mode, sessions, direct, keep, pruned, heads)


def _kept(table: schema.Table, ranges: Ranges) -> Any:
    return or_(*[table.c.event_id.between(lo, hi) for lo, hi in ranges]) if ranges else None


def _owned(table: schema.Table, session: str, ranges: Ranges, heads: set[str]) -> Any:
    """The rows of `session` in `table` that go: all of them but the kept ranges (and heads)."""
    where = table.c.session_id == session
    kept = _kept(table, ranges) if table in BRANCH_TABLES else None
    if table is schema.heads and heads:
        named = table.c.head_id.in_(sorted(heads))
        kept = named if kept is None else or_(kept, named)
    return where if kept is None else and_(where, not_(kept))


#: per table, how a session's rows are found (the per-session tables use `_owned`)
_BY_SESSION = {
    "sessions": schema.sessions.c.session_id, "counters": schema.counters.c.session_id,
    "invocations": schema.invocations.c.caller_session, "derivations": schema.derivations.c.target_session,
    "aliases": schema.aliases.c.session_id, "rejected_writes": schema.rejected_writes.c.session_id,
}


def dry_run(conn: Connection, blobs: BlobStore, p: Plan) -> dict[str, Any]:
    """What `execute` would remove, counted without writing."""
    counts: dict[str, int] = {}
    for sid in p.sessions + p.pruned:
        for table, where in _row_filters(sid, *p.kept(sid), sid in p.pruned):
            n = conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
            if n:
                counts[str(table.name)] = counts.get(str(table.name), 0) + n
    candidates = erase.candidates(conn, blobs, _blob_filters(p))
    freed = erase.unshared(conn, blobs, candidates, _blob_filters(p))
    size = erase.size_of(conn, freed)
    return {"status": "dry-run", "session": p.session, "mode": p.mode, "sessions": p.sessions,
            "dependants": p.dependants, "kept_for_dependants": {s: r for s, r in p.keep.items() if r},
            "counts": counts, "payloads": len(freed), "bytes_freed": size}


def _row_filters(sid: str, keep: Ranges, heads: set[str], pruned: bool) -> list[tuple[schema.Table, Any]]:
    tables: list[tuple[schema.Table, Any]] = []
    for table in (schema.events, *BRANCH_TABLES):
        tables.append((table, _owned(table, sid, keep, heads)))
    kept_any = bool(keep or heads)  # kept rows keep their high-water marks (the counters check reads them)
    if not pruned:
        for name, column in _BY_SESSION.items():
            if name != "counters" or not kept_any:
                tables.append((column.table, column == sid))  # type: ignore[arg-type]
    elif not kept_any:
        tables.append((schema.counters, schema.counters.c.session_id == sid))
    return tables


def _blob_filters(p: Plan) -> list[tuple[schema.Table, Any]]:
    filters = []
    for sid in p.sessions + p.pruned:
        filters += [(t, w) for t, w in _row_filters(sid, *p.kept(sid), sid in p.pruned)
                    if any(c.name.endswith("_blob") for c in t.columns)]
    return filters


def execute(conn: Connection, blobs: BlobStore, p: Plan, *, write_id: str, tx_id: int, at: str,
            reason: str | None, digest: str | None) -> tuple[dict[str, Any], list[str]]:
    """Carry out `p` in the caller's transaction. Returns (receipt, blob files to unlink after commit)."""
    candidates = erase.candidates(conn, blobs, _blob_filters(p))
    counts: dict[str, dict[str, int]] = {s: {} for s in p.sessions + p.pruned}
    stubs = {s: _stub_receipts(conn, s) for s in p.sessions}
    removed: dict[str, dict[str, set[int]]] = {}
    for sid in p.sessions + p.pruned:
        removed[sid] = excise.removed_ids(conn, sid, *p.kept(sid))
        for table, where in _row_filters(sid, *p.kept(sid), sid in p.pruned):
            n = conn.execute(delete(table).where(where)).rowcount
            if n:
                counts[sid][str(table.name)] = counts[sid].get(str(table.name), 0) + n
    freed = erase.unshared(conn, blobs, candidates)
    sizes, files = erase.remove_payloads(conn, freed)
    retractions: list[list[Any]] = []
    for sid in p.sessions + p.pruned:
        retractions += excise.excise_log(conn, sid, removed[sid], set(freed))
    retractions += [["blob/id", bid, False] for bid in sorted(freed)]
    for sid, stub in stubs.items():
        if stub:
            conn.execute(update(schema.writes).where(schema.writes.c.write_id == bindparam("wid"))
                         .values(receipt=bindparam("stub")), [{"wid": w, "stub": r} for w, r in stub])
        counts[sid]["writes_stubbed"] = len(stub)
    total = sum(sizes.values())
    summary = {"payloads": len(freed), "bytes_freed": total}
    for sid in p.sessions:
        why = reason if sid == p.session else f"cascade from {p.session!r}" + (f": {reason}" if reason else "")
        conn.execute(insert(schema.tombstones).values(
            session_id=sid, deleted_at=at, reason=why, write_id=write_id, tx_id=tx_id, mode=p.mode,
            counts=_json.encode({**counts[sid], **(summary if sid == p.session else {})}).decode(),
            bytes_freed=total if sid == p.session else 0))
    facts = [{"tombstone/session": sid, "tombstone/deleted-at": at, "tombstone/write": write_id}
             for sid in p.sessions]
    facts.append({excise.EXCISE: retractions})
    conn.execute(insert(schema.tx).values(tx_id=tx_id, write_id=write_id, session_id=p.session, at=at,
                                          facts=_json.encode(facts)))
    receipt = {"write_id": write_id, "status": "committed", "tx_id": tx_id, "session": p.session,
               "deleted": p.sessions, "mode": p.mode, "pruned": p.pruned,
               "counts": {s: c for s, c in counts.items() if c}, **summary, "at": at}
    conn.execute(insert(schema.writes).values(write_id=write_id, session_id=p.session, tx_id=tx_id,
                                              receipt=_json.encode(receipt), committed_at=at, digest=digest))
    return receipt, files


def _stub_receipts(conn: Connection, sid: str) -> list[tuple[str, bytes]]:
    """A content-free receipt for each committed write of `sid` (no event ids, entity ids or blob
    ids): a re-sent write id is still a duplicate (its content digest is kept), never re-applied."""
    w, tx = schema.writes, schema.tx
    rows = conn.execute(select(w.c.write_id, w.c.tx_id, w.c.committed_at).where(
        w.c.write_id.in_(select(tx.c.write_id).where(tx.c.session_id == sid).scalar_subquery())))
    return [(write_id, _json.encode({"write_id": write_id, "status": "committed", "tx_id": tx_id, "session": sid,
                                     "at": at, "session_deleted": True}))
            for write_id, tx_id, at in rows]
