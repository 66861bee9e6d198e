"""Read views of sessions (docs/spec.md, Reads): current branch, history, audit log, lookups.

Every function takes a `Connection` already inside one read transaction (so a view never
sees half of a group commit) and the BlobStore for head states and contents stored as
files; inline payloads are read with the rows, in the same transaction (`blobs.inline`). A branch is
read through its membership ranges (`branch.py`) with indexed range scans per session;
nothing walks a head chain or scans a table. These functions never write.
"""

from __future__ import annotations

import functools
from typing import Any

import blake3
import msgspec
from sqlalchemy import Connection, Table, and_, or_, select

from .blobs import BlobStore, inline
from .blobs.canonical import TEXT
from .errors import NotFoundError, SessionDeletedError
from .gc_pause import gc_paused
from .rows import branch, dialect, schema
from .rows.branch import Membership

COLLECTIONS: dict[str, tuple[Table, str]] = {
    "messages": (schema.messages, "message_id"),
    "turns": (schema.turns, "turn_id"),
    "evals": (schema.evals, "eval_id"),
    "calls": (schema.calls, "call_id"),
    "snapshots": (schema.snapshots, "snapshot_id"),
    "heads": (schema.heads, "seq"),
}


def _rows(conn: Connection, query: Any) -> list[dict[str, Any]]:
    return _dicts(conn.execute(query))


def _dicts(result: Any) -> list[dict[str, Any]]:
    # Views fetch thousands of plain rows (no types to convert): read them off the DBAPI
    # cursor and zip with the column names, skipping SQLAlchemy's per-row processing (the
    # collector's passes triggered by thousands of fresh dicts were a third of a large view).
    keys = list(result.keys())
    try:
        with gc_paused():
            rows = result.cursor.fetchall()
            return [dict(zip(keys, row, strict=True)) for row in rows]
    finally:
        result.close()


def resolve(conn: Connection, name: str) -> tuple[str, str | None]:
    """`session`, `alias` or `session#head` -> (session id, head id or None)."""
    head = None
    if "#" in name:
        name, head = name.split("#", 1)
    if conn.execute(select(schema.sessions.c.session_id).where(schema.sessions.c.session_id == name)).first():
        session = name
    else:
        alias = conn.execute(select(schema.aliases.c.session_id).where(schema.aliases.c.name == name)).first()
        if alias is None:
            stone = conn.execute(select(schema.tombstones).where(schema.tombstones.c.session_id == name)).first()
            if stone is not None:  # deleted: say so, not "unknown" (store/forget/)
                raise SessionDeletedError(name, stone.deleted_at, stone.reason)
            raise NotFoundError("session", name)
        session = alias[0]
    if head is not None:
        row = conn.execute(select(schema.heads.c.session_id).where(schema.heads.c.head_id == head)).first()
        if row is None or row[0] != session:
            raise NotFoundError("head", f"{session}#{head}")
    return session, head


def session_row(conn: Connection, session: str) -> dict[str, Any]:
    row = conn.execute(select(schema.sessions).where(schema.sessions.c.session_id == session)).first()
    if row is None:
        raise NotFoundError("session", session)
    return dict(row._mapping)


def head_members(conn: Connection, blobs: BlobStore, head: str) -> Membership:
    state_blob = conn.execute(select(schema.heads.c.state_blob).where(schema.heads.c.head_id == head)).scalar_one()
    return branch.load(msgspec.json.decode(inline.read(conn, blobs, state_blob))["members"])


def _in_branch(table: Table, members: Membership) -> Any:
    clauses = []
    for session, ranges in members.items():
        spans = [table.c.event_id.between(lo, hi) for lo, hi in ranges]
        clauses.append(and_(table.c.session_id == session, or_(*spans)))
    return or_(*clauses)


def own_last(members: Membership, session: str) -> Membership:
    """The membership in reading order: what the session inherited first, its own rows last."""
    ordered = {s: r for s, r in members.items() if s != session}
    if session in members:
        ordered[session] = members[session]
    return ordered


def branch_rows(conn: Connection, table: Table, order: str, members: Membership) -> list[dict[str, Any]]:
    """Rows of `table` in the membership: per session in inheritance order, each by its id."""
    rows: list[dict[str, Any]] = []
    for session, ranges in members.items():
        params: list[Any] = [session]
        for lo, hi in ranges:
            params += (lo, hi)
        result = conn.exec_driver_sql(_branch_sql(table.name, order, len(ranges), dialect.of(conn)), tuple(params))
        rows += _dicts(result)
    return rows


@functools.lru_cache(maxsize=256)
def _branch_sql(table: str, order: str, spans: int, backend: dialect.Dialect) -> str:
    """The SQL of one session's part of a branch (views run it often: built once, not per call)."""
    ranges = " OR ".join(["event_id BETWEEN ? AND ?"] * spans) or backend.false
    return backend.sql(f"SELECT * FROM {table} WHERE session_id = ? AND ({ranges}) ORDER BY {order}")


def counters(conn: Connection, session: str) -> dict[str, int]:
    found = dict(conn.execute(
        select(schema.counters.c.kind, schema.counters.c.value).where(schema.counters.c.session_id == session)
    ).all())
    return {kind: found.get(kind, 0) for kind in schema.ID_KINDS}


def public_session(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "branch"}


def view(conn: Connection, blobs: BlobStore, session: str, head: str | None = None) -> dict[str, Any]:
    row = session_row(conn, session)
    if head is None:
        members: Membership = branch.load(msgspec.json.decode(row["branch"]))
    else:
        members = head_members(conn, blobs, head)
    ordered = own_last(members, session)
    result: dict[str, Any] = {"session": public_session(row), "head": head or row["current_head"]}
    for name, (table, order) in COLLECTIONS.items():
        result[name] = branch_rows(conn, table, order, ordered)
    inv = schema.invocations
    result["invocations"] = _rows(conn, select(inv).where(
        and_(inv.c.caller_session == session, or_(*[inv.c.event_id.between(lo, hi)
                                                    for lo, hi in members.get(session, [])] or [False])))
        .order_by(inv.c.event_id))
    result["refs"] = {"current_head": row["current_head"]}
    selected = head or row["current_head"]
    final = None
    if selected is not None:
        final = conn.execute(select(schema.heads.c.final_blob).where(schema.heads.c.head_id == selected)).scalar()
    result["final"] = final
    result["counters"] = counters(conn, session)
    result["inherited"] = [s for s in ordered if s != session]
    return result


def history_view(conn: Connection, session: str) -> dict[str, Any]:
    row = session_row(conn, session)
    ev, hd, inv, der = schema.events, schema.heads, schema.invocations, schema.derivations
    return {
        "session": public_session(row),
        "events": _rows(conn, select(ev).where(ev.c.session_id == session).order_by(ev.c.event_id)),
        "heads": _rows(conn, select(hd).where(hd.c.session_id == session).order_by(hd.c.seq)),
        "invocations": _rows(conn, select(inv).where(
            or_(inv.c.caller_session == session, inv.c.callee_session == session)).order_by(inv.c.started_at)),
        "derivations": _rows(conn, select(der).where(
            or_(der.c.target_session == session, der.c.source_session == session)).order_by(der.c.at)),
        "refs": {"current_head": row["current_head"]},
        "counters": counters(conn, session),
    }


def event_view(conn: Connection, session: str) -> list[dict[str, Any]]:
    session_row(conn, session)
    ev = schema.events
    cols = [ev.c.event_id, ev.c.type, ev.c.at, ev.c.entity, ev.c.entity_id, ev.c.status, ev.c.tx_id]
    return _rows(conn, select(*cols).where(ev.c.session_id == session).order_by(ev.c.event_id))


def message_records(conn: Connection, blobs: BlobStore, session: str, include_content: bool = False,
                    all_branches: bool = False) -> list[dict[str, Any]]:
    row = session_row(conn, session)
    msg = schema.messages
    if not include_content:
        if all_branches:
            return _rows(conn, select(msg).where(msg.c.session_id == session).order_by(msg.c.message_id))
        members = branch.load(msgspec.json.decode(row["branch"]))
        return branch_rows(conn, msg, "message_id", own_last(members, session))
    # one join of the messages with their blobs' media types and inline bytes; only blobs
    # stored as files are read afterwards, one by one
    if all_branches:
        records = _content_rows(conn.exec_driver_sql(_content_sql(0, dialect.of(conn)), (session,)))
    else:
        members = own_last(branch.load(msgspec.json.decode(row["branch"])), session)
        records = []
        for sid, ranges in members.items():
            params: list[Any] = [sid]
            for lo, hi in ranges:
                params += (lo, hi)
            records += _content_rows(conn.exec_driver_sql(_content_sql(len(ranges), dialect.of(conn)), tuple(params)))
    files = [r for r in records if r["content"] is None]
    if files:
        data = inline.read_many(conn, blobs, [r["content_blob"] for r in files])
        for r in files:
            r["content"] = decode_payload(data[r["content_blob"]], r.pop("media_type"))
    return records


_MESSAGE_COLUMNS = [c.name for c in schema.messages.columns]


@functools.lru_cache(maxsize=64)
def _content_sql(spans: int, backend: dialect.Dialect) -> str:
    """Messages of one session (in `spans` event ranges; 0: all of them) with their content."""
    where = "" if spans == 0 else " AND (" + " OR ".join(["m.event_id BETWEEN ? AND ?"] * spans) + ")"
    columns = ", ".join(f"m.{c}" for c in _MESSAGE_COLUMNS)
    return backend.sql(f"SELECT {columns}, b.media_type, bb.data FROM messages m"
                       " JOIN blobs b ON b.blob_id = m.content_blob"
                       " LEFT JOIN blob_bytes bb ON bb.bytes_id = b.bytes_id"
                       f" WHERE m.session_id = ?{where} ORDER BY m.message_id")


def _content_rows(result: Any) -> list[dict[str, Any]]:
    """Message records with `content` decoded from inline bytes (checked against the blob id);
    None, and the media type kept, for content stored as a file."""
    keys = _MESSAGE_COLUMNS
    n = len(keys)
    blob_at = keys.index("content_blob")
    b3 = blake3.blake3
    records = []
    try:
        with gc_paused():
            for row in result.cursor.fetchall():
                record = dict(zip(keys, row[:n], strict=True))
                media, data = row[n], row[n + 1]
                if data is None:
                    record["content"] = None
                    record["media_type"] = media
                else:
                    if b3(data).hexdigest() != row[blob_at][7:]:  # inline.checked, without a call per row
                        inline.checked(row[blob_at], data)
                    record["content"] = data.decode("utf-8") if media == TEXT else decode_payload(data, media)
                records.append(record)
    finally:
        result.close()
    return records



def decode_payload(data: bytes, media_type: str) -> Any:
    """A stored payload back as the value a producer sent: text, JSON value, or bytes."""
    if media_type.startswith("text/"):
        return data.decode("utf-8")
    if media_type == "application/json":
        return msgspec.json.decode(data)
    return data


def call_records(conn: Connection, session: str) -> list[dict[str, Any]]:
    session_row(conn, session)
    return _rows(conn, select(schema.calls).where(schema.calls.c.session_id == session)
                 .order_by(schema.calls.c.call_id))


def attached_from(conn: Connection, session: str) -> dict[str, Any] | None:
    """Where a derived session came from: its (first) derivation as target, or None for a root session."""
    session_row(conn, session)
    der = schema.derivations
    rows = _rows(conn, select(der).where(and_(der.c.target_session == session, der.c.kind != "resume"))
                 .order_by(der.c.event_id).limit(1))
    return rows[0] if rows else None


def current_head_id(conn: Connection, session: str) -> str | None:
    return session_row(conn, session)["current_head"]
