"""Deleted sessions stay deleted: nothing of a tombstoned session may be left behind.

For every tombstone: no session row, alias, event, owned invocation or derivation; no
per-session row except those a detach kept for a live reader (`forget.dependants`); no fact of
a removed entity in its tx batches (only bare identities stay: store/forget/excise.py); no
`blobs` row, inline bytes or blob file for the payloads its delete freed, unless a row
references them again; and, when the derived index is there and caught up, no fact of the
session's entities but their bare identities. Each problem is a `forget/left-behind` finding.
Read-only.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import Connection, and_, func, not_, or_, select

from ...blobs import BlobStore
from ...forget import dependants
from ...forget.excise import EXCISE, KEEP_IDENTITY
from ...rows import schema
from ..blob_refs import referenced_among
from ..findings import Report

_OWNED = [(schema.sessions, "session_id"), (schema.aliases, "session_id"), (schema.events, "session_id"),
          (schema.invocations, "caller_session"), (schema.derivations, "target_session")]
_BRANCH = [schema.messages, schema.turns, schema.evals, schema.calls, schema.snapshots, schema.heads]


def check(conn: Connection, blobs: BlobStore, report: Report) -> None:
    stones = conn.execute(select(schema.tombstones.c.session_id, schema.tombstones.c.tx_id)).all()
    for sid, tx_id in stones:
        _rows(conn, blobs, sid, report)
        _facts(conn, sid, tx_id, report)
        _payloads(conn, blobs, sid, tx_id, report)
        _index(conn, blobs, sid, tx_id, report)
        report.count("tombstones_checked")


def _left(report: Report, sid: str, what: str, message: str, **data: Any) -> None:
    report.add("forget/left-behind", f"deleted session {sid!r}: {message}", session=sid, what=what, **data)


def _rows(conn: Connection, blobs: BlobStore, sid: str, report: Report) -> None:
    for table, column in _OWNED:
        n = conn.execute(select(func.count()).select_from(table).where(table.c[column] == sid)).scalar_one()
        if n:
            _left(report, sid, "rows", f"{n} row(s) left in {table.name}", table=str(table.name), rows=n)
    ranges = dependants.needed_ranges(conn, blobs, sid, set())
    heads = dependants.needed_heads(conn, sid, set())
    for table in _BRANCH:
        where = table.c.session_id == sid
        kept = [table.c.event_id.between(lo, hi) for lo, hi in ranges]
        if table is schema.heads and heads:
            kept.append(table.c.head_id.in_(sorted(heads)))
        if kept:
            where = and_(where, not_(or_(*kept)))
        n = conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
        if n:
            _left(report, sid, "rows", f"{n} row(s) left in {table.name} that no live session reads",
                  table=str(table.name), rows=n)


def _facts(conn: Connection, sid: str, delete_tx: int, report: Report) -> None:
    tx = schema.tx
    rows = conn.execute(select(tx.c.tx_id, tx.c.facts).where(tx.c.session_id == sid, tx.c.tx_id != delete_tx))
    for tx_id, facts in rows:
        for item in msgspec.json.decode(facts):
            if not isinstance(item, dict) or EXCISE in item or "tombstone/session" in item:
                continue
            if item.get("session/id") == sid and len(item) > 1:
                _left(report, sid, "facts", f"tx {tx_id} still holds facts of the session", tx_id=tx_id)
                break
            key = next((v for a, v in item.items() if a.endswith("/key")), None)
            if isinstance(key, str) and key.startswith(f"{sid}/") and not _row_exists(conn, item):
                _left(report, sid, "facts", f"tx {tx_id} still holds facts of {key!r}", tx_id=tx_id)
                break


def _row_exists(conn: Connection, item: dict[str, Any]) -> bool:
    for attr, value in item.items():
        if attr.endswith("/key"):
            ns = attr.split("/", 1)[0]
            table = {"event": schema.events, "message": schema.messages, "turn": schema.turns, "eval": schema.evals,
                     "call": schema.calls, "snapshot": schema.snapshots}[ns]
            session, _, number = value.rpartition("/")
            column = table.c.event_id if ns == "event" else table.c[f"{ns}_id"]
            return conn.execute(select(func.count()).select_from(table).where(
                table.c.session_id == session, column == int(number))).scalar_one() > 0
    return True


def _excised(conn: Connection, delete_tx: int) -> list[list[Any]]:
    facts = conn.execute(select(schema.tx.c.facts).where(schema.tx.c.tx_id == delete_tx)).scalar()
    for item in msgspec.json.decode(facts) if facts else []:
        if isinstance(item, dict) and EXCISE in item:
            return item[EXCISE]
    return []


def _payloads(conn: Connection, blobs: BlobStore, sid: str, delete_tx: int, report: Report) -> None:
    freed = [value for attr, value, _keep in _excised(conn, delete_tx) if attr == "blob/id"]
    if not freed:
        return
    again = referenced_among(conn, freed)
    rows = set(conn.execute(select(schema.blobs.c.blob_id).where(schema.blobs.c.blob_id.in_(freed))).scalars())
    for blob_id in freed:
        if blob_id in again:
            continue  # written again since, by a live session
        if blob_id in rows or blobs.path(blob_id).exists():
            _left(report, sid, "payloads", f"payload {blob_id} it alone referenced is still stored", blob=blob_id)


def _index(conn: Connection, blobs: BlobStore, sid: str, delete_tx: int, report: Report) -> None:
    from ...index import Index

    root = blobs.root
    if not (root / "index.sqlite").exists():
        return
    with Index.open(root, create=False) as index:
        if index.watermark() < delete_tx:
            return  # not applied yet: the index check reports the lag
        db = index.database()
        for attr, value, keep in _excised(conn, delete_tx):
            extra = [d for d in db.datoms("eavt", [attr, value]) if not (keep and d.a == attr)]
            if extra and not (attr not in KEEP_IDENTITY and _still_a_row(conn, attr, value)):
                _left(report, sid, "index", f"the index still holds {len(extra)} fact(s) of {attr} {value!r}",
                      entity=f"{attr} {value}")
                return


def _still_a_row(conn: Connection, attr: str, value: Any) -> bool:
    if attr.endswith("/key"):
        return _row_exists(conn, {attr: value})
    if attr == "blob/id":
        return conn.execute(select(func.count()).select_from(schema.blobs)
                            .where(schema.blobs.c.blob_id == value)).scalar_one() > 0
    return False
