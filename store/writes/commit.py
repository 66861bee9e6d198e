"""Group commit: many session writes, one database transaction, one receipt each.

The write path is parse -> plan -> execute:
  1. parse: `model.parse_write` checks each write's shape (a bad one is rejected alone);
  2. plan: each write is applied by the event handlers (`events.py`) to an in-memory
     overlay of the rows it reads and writes (`WriteContext` over `GroupState`), so every
     rule (ids, conflicts, the CAS on the current head, aliases) is decided before anything
     touches disk, and a write that breaks one is rejected without disturbing the others;
  3. execute: the group's small payloads (at most `inline_max_bytes`) are inserted into
     `blob_bytes` with the rows, in the same transaction (no file, no file-system sync);
     the larger ones are written as blob files and made durable (two file-system syncs)
     while the rows of every planned write are inserted table by table, together with
     each write's receipt and its transaction batch of facts; the caller commits after.
If execution itself fails (it should not: the plan checked everything), the group is redone
one write per SAVEPOINT, so a write the planner missed is still rejected alone.

This module is the one place where "already applied" is decided (write id -> receipt and
content digest): a write id seen before with the same content gets its stored receipt back,
marked `"duplicate": true`; with other content it is rejected (`write/id-conflict`). No
single write can fail its group: any exception while parsing or planning one write is a
rejection of that write alone.
It never imports Celery; the writer worker calls `commit_many`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from functools import cache
from operator import itemgetter
from typing import Any

import blake3
import msgspec
from sqlalchemy import Connection, Table, insert
from sqlalchemy.exc import SQLAlchemyError

from ..blobs import BlobStore
from ..errors import (
    IdConflictError,
    InternalError,
    NotFoundError,
    SessionDeletedError,
    StoreError,
    ValidationError,
    WriteFailedError,
    echoed,
)
from ..rows import branch, dialect, hot, schema
from ..settings import Settings
from .context import GroupState, WriteContext
from .events import apply_event
from .facts import facts_for
from .model import ParsedWrite, SessionDeleted, is_delete, now_iso, parse_write

log = logging.getLogger(__name__)
_json = msgspec.json.Encoder(order="sorted")

#: the tables in dependency order (SQLAlchemy sorts them anew on every `sorted_tables`)
_TABLES = schema.metadata.sorted_tables

#: what executing a planned group can raise: the database (through SQLAlchemy or the DBAPI cursor) or the disk
STORAGE_FAILURES = (SQLAlchemyError, *dialect.DRIVER_ERRORS, OSError)


@cache
def _bulk_sql(table: Table, verb: str, tail: str, mark: str) -> tuple[str, Any]:
    columns = [c.name for c in table.columns]
    sql = f"{verb} INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))}){tail}"
    return sql, itemgetter(*columns)


def _bulk(cursor: Any, mark: str, table: Table, verb: str, rows: Iterable[dict[str, Any]], tail: str = "") -> None:
    """executemany of full rows (every planned row carries every column of its table)."""
    sql, values = _bulk_sql(table, verb, tail, mark)
    cursor.executemany(sql, map(values, rows))


def _replace(cursor: Any, backend: dialect.Dialect, table: Table, rows: Iterable[dict[str, Any]]) -> None:
    """executemany of full rows that replace the stored row with the same key (`Dialect.replace`)."""
    verb, tail = backend.replace(table)
    _bulk(cursor, backend.mark, table, verb, rows, tail)


def rejection(raw: Any, error: StoreError) -> dict[str, Any]:
    """The rejection receipt of `raw`: its write id and session echoed back bounded (`echo`)."""
    write_id = raw.get("write_id") if isinstance(raw, dict) else getattr(raw, "write_id", None)
    session = raw.get("session") if isinstance(raw, dict) else None
    return {
        "write_id": echoed(write_id) if isinstance(write_id, str) else None,
        "status": "rejected",
        "session": echoed(session) if isinstance(session, str) else None,
        "error": error.as_dict(),
    }


def unexpected(raw: Any, exc: Exception) -> dict[str, Any]:
    """A bug met while parsing or planning one write: that write is rejected alone, never the group."""
    log.exception("write %r could not be planned", echoed(raw.get("write_id") if isinstance(raw, dict) else None))
    return rejection(raw, InternalError(f"{type(exc).__name__}: {exc}"))


def content_digest(raw: dict[str, Any]) -> str:
    """blake3 of the canonical JSON of a write's content, `{"session", "events"}` (its id aside):
    what tells a re-delivery of a write from another write under the same id."""
    return "blake3:" + blake3.blake3(_json.encode({"session": raw["session"], "events": raw["events"]})).hexdigest()


def duplicate(receipt: dict[str, Any]) -> dict[str, Any]:
    """The answer to a write id already applied: its stored receipt (the original tx id, ids
    and time), marked `duplicate` so the producer knows this delivery wrote nothing. `status`
    stays "committed": the write is durable, and callers that check it keep working."""
    return {**receipt, "duplicate": True}


def _segments(parsed: Sequence[ParsedWrite | None]) -> list[tuple[int, int]]:
    """[lo, hi) runs of the group: each delete alone, the writes between them together."""
    runs: list[tuple[int, int]] = []
    lo = 0
    for i, write in enumerate(parsed):
        if write is not None and is_delete(write):
            if lo < i:
                runs.append((lo, i))
            runs.append((i, i + 1))
            lo = i + 1
    if lo < len(parsed):
        runs.append((lo, len(parsed)))
    return runs


class GroupCommit:
    """Applies a group of writes in one transaction on `conn` (which the caller owns)."""

    def __init__(self, conn: Connection, blobs: BlobStore, settings: Settings) -> None:
        self.conn, self.blobs, self.settings = conn, blobs, settings
        #: a delete committed in this group (the caller erases after the commit: `forget.erase`)
        self.deleted = False
        #: blob ids whose files a delete freed: unlinked after the commit, never before
        self.unlink_after_commit: list[str] = []

    def _run_delete(self, raw: Any, write: ParsedWrite, receipts: list[dict[str, Any] | None], i: int,
                    at: str) -> None:
        """A `session/deleted` write, alone between the group's other writes (those before it
        are executed already, those after it are planned against what it left): store/forget/."""
        from ..forget import delete

        known = self._stored_receipts([write.write_id])
        if write.write_id in known:
            receipts[i] = self._again(raw, write, *known[write.write_id])
            return
        event = write.events[0]
        assert isinstance(event, SessionDeleted)
        self.cursor.execute("SAVEPOINT sessiondb_delete")
        try:
            plan = delete.plan(self.conn, self.blobs, write.session, cascade=event.cascade, detach=event.detach)
            tx_id = hot.scalar(self.cursor, "SELECT coalesce(max(tx_id), 0) FROM tx") + 1
            receipt, files = delete.execute(self.conn, self.blobs, plan, write_id=write.write_id, tx_id=tx_id,
                                            at=event.at or at, reason=event.reason, digest=write.digest)
            self.cursor.execute("RELEASE SAVEPOINT sessiondb_delete")
        except Exception as exc:  # noqa: BLE001 - no write may fail its group
            self.cursor.execute("ROLLBACK TO SAVEPOINT sessiondb_delete")
            self.cursor.execute("RELEASE SAVEPOINT sessiondb_delete")
            receipts[i] = rejection(raw, exc) if isinstance(exc, StoreError) else unexpected(raw, exc)
            return
        self.deleted = True
        self.unlink_after_commit += files
        receipts[i] = receipt

    def run(self, raws: Sequence[Any]) -> list[dict[str, Any]]:

        self.apply_event = apply_event
        at = now_iso()
        parsed: list[ParsedWrite | None] = []
        receipts: list[dict[str, Any] | None] = []
        for raw in raws:
            try:
                write = parse_write(raw, self.settings)
                write.digest = content_digest(raw)
                parsed.append(write)
                receipts.append(None)
            except StoreError as exc:
                parsed.append(None)
                receipts.append(rejection(raw, exc))
            except Exception as exc:  # noqa: BLE001 - no write may fail its group
                parsed.append(None)
                receipts.append(unexpected(raw, exc))
        self.cursor, self.backend = hot.cursor_of(self.conn), dialect.of(self.conn)
        self.mark = self.backend.mark
        try:
            for lo, hi in _segments(parsed):
                if hi - lo == 1 and parsed[lo] is not None and is_delete(parsed[lo]):  # type: ignore[arg-type]
                    self._run_delete(raws[lo], parsed[lo], receipts, lo, at)  # type: ignore[arg-type]
                    continue
                part = receipts[lo:hi]
                self._run(raws[lo:hi], parsed[lo:hi], part, at)
                receipts[lo:hi] = part
        finally:
            self.cursor.close()
        rejected = [(raws[i], r) for i, r in enumerate(receipts) if r is not None and r["status"] == "rejected"]
        if rejected:
            self._dead_letters(rejected, at)
        return [r for r in receipts if r is not None]

    def _run(self, raws: Sequence[Any], parsed: list[ParsedWrite | None], receipts: list[dict[str, Any] | None],
             at: str) -> None:
        known = self._stored_receipts([p.write_id for p in parsed if p is not None])
        # the group's savepoint, on the cursor: SQLAlchemy's begin_nested() cost ~0.3 ms a group
        self.cursor.execute("SAVEPOINT sessiondb_group")
        try:
            group = self._plan_group(raws, parsed, receipts, known, at)
            self._execute(group, at)
            self.cursor.execute("RELEASE SAVEPOINT sessiondb_group")
        except Exception as exc:  # noqa: BLE001 - storage, or a write the plan missed: isolate it
            self.cursor.execute("ROLLBACK TO SAVEPOINT sessiondb_group")
            self.cursor.execute("RELEASE SAVEPOINT sessiondb_group")
            log.warning("group commit failed (%s); retrying one write per savepoint", exc)
            for i, write in enumerate(parsed):
                if write is None:
                    continue
                one: list[dict[str, Any] | None] = [None]
                sub = self.conn.begin_nested()
                try:
                    group = self._plan_group([raws[i]], [write], one, self._stored_receipts([write.write_id]), at)
                    self._execute(group, at)
                    sub.commit()
                except STORAGE_FAILURES as failure:
                    sub.rollback()
                    one[0] = rejection(raws[i], WriteFailedError(f"could not be stored: {failure}"))
                except Exception as failure:  # noqa: BLE001 - no write may fail its group
                    sub.rollback()
                    one[0] = unexpected(raws[i], failure)
                receipts[i] = one[0]

    # -- plan ---------------------------------------------------------------------------
    def _stored_receipts(self, write_ids: list[str]) -> dict[str, tuple[dict[str, Any], str | None]]:
        """write id -> (stored receipt, content digest or None) of the ids already committed."""
        rows = hot.rows_where(self.cursor, self.mark, schema.writes, ("write_id", "receipt", "digest"), "write_id",
                              write_ids)
        return {write_id: (msgspec.json.decode(receipt), digest) for write_id, receipt, digest in rows}

    def _plan_group(self, raws, parsed, receipts, known, at) -> GroupState:  # type: ignore[no-untyped-def]
        last_tx = hot.scalar(self.cursor, "SELECT coalesce(max(tx_id), 0) FROM tx")
        group = GroupState(self.conn, self.blobs, self.settings, next_tx=last_tx + 1,
                           cursor=self.cursor, mark=self.mark, batch=self.blobs.batch(known=self._known_blobs))
        for i, write in enumerate(parsed):
            if write is None:
                continue
            done = known.get(write.write_id) or group.committed.get(write.write_id)
            if done is not None:
                receipts[i] = self._again(raws[i], write, *done)
                continue
            try:
                ctx = self._plan(group, write, at)
                receipts[i] = self._merge(group, ctx, at)
            except StoreError as exc:
                if isinstance(exc, ValidationError) and exc.write_id is None:
                    exc = ValidationError(exc.message, write_id=write.write_id)
                receipts[i] = rejection(raws[i], exc)
            except Exception as exc:  # noqa: BLE001 - no write may fail its group
                receipts[i] = unexpected(raws[i], exc)
        return group

    @staticmethod
    def _again(raw: Any, write: ParsedWrite, receipt: dict[str, Any], digest: str | None) -> dict[str, Any]:
        """A write id already committed: the same content (or a row from before digests, NULL:
        unknown, taken as the same) is a duplicate delivery; other content is a conflict."""
        if digest is None or digest == write.digest:
            return duplicate(receipt)
        return rejection(raw, IdConflictError(write.write_id, receipt.get("tx_id")))

    def _plan(self, group: GroupState, write: ParsedWrite, at: str) -> WriteContext:
        sid = self._resolve_alias(group, write.session)
        ctx = WriteContext(group, write, sid, group.load_session(sid))
        for index, ev in enumerate(write.events):
            ctx.index = index
            ctx.at = ev.at or at
            self.apply_event(ctx, ev)
        if ctx.session is None:
            raise NotFoundError("session", write.session)
        return ctx

    def _resolve_alias(self, group: GroupState, name: str) -> str:
        if group.load_session(name) is not None:
            return name
        alias = group.load_row(schema.aliases, (name,))
        if alias is None:
            stone = group.load_row(schema.tombstones, (name,))
            if stone is not None:  # a deleted session's id is never reused
                raise SessionDeletedError(name, stone["deleted_at"], stone["reason"])
        return alias["session_id"] if alias is not None else name

    def _merge(self, group: GroupState, ctx: WriteContext, at: str) -> dict[str, Any]:
        """The write is good: fold its staged changes into the group and build its receipt."""
        assert ctx.session is not None
        receipt = {
            "write_id": ctx.write_id,
            "status": "committed",
            "tx_id": ctx.tx_id,
            "session": ctx.sid,
            "event_ids": ctx.event_ids,
            "ids": ctx.ids,
            "blobs": sorted(ctx.blobs),
            "heads": ctx.head_moves,
            "at": at,
        }
        # encoded before the group is touched: a write that cannot be encoded is rejected alone
        stored_receipt, facts = _json.encode(receipt), _json.encode(facts_for(ctx))
        group.sessions[ctx.sid] = ctx.session
        group.dirty_sessions.add(ctx.sid)
        group.rows.update(ctx.staged)
        group.members.update(ctx.members)
        for table_name, row in ctx.appended:
            group.appended.setdefault(table_name, []).append(row)
        for table_name, key in ctx.dirty:
            group.dirty.setdefault(table_name, {})[key] = group.rows[(table_name, key)]  # type: ignore[assignment]
        for bid, (data, kind, media) in ctx.blobs.items():
            if bid not in group.new_blobs:
                group.new_blobs.add(bid)
                if len(data) <= self.settings.inline_max_bytes:
                    group.inline[bid] = data
                else:
                    group.files += 1
                    group.batch.add(bid, data)
                group.blob_rows.append({"blob_id": bid, "size": len(data), "kind": kind, "media_type": media,
                                        "created_at": at, "status": "ok", "bytes_id": None})
        group.appended.setdefault("tx", []).append({
            "tx_id": ctx.tx_id, "write_id": ctx.write_id, "session_id": ctx.sid, "at": at, "facts": facts})
        group.appended.setdefault("writes", []).append({
            "write_id": ctx.write_id, "session_id": ctx.sid, "tx_id": ctx.tx_id,
            "receipt": stored_receipt, "committed_at": at, "digest": ctx.digest})
        group.committed[ctx.write_id] = (receipt, ctx.digest)
        group.next_tx += 1
        return receipt

    # -- execute ------------------------------------------------------------------------
    def _execute(self, group: GroupState, at: str) -> None:
        # The blob I/O thread writes, syncs and publishes the group's blob files while the
        # rows are inserted here (SQLite releases the GIL). The caller commits only after
        # `durable` is done, so no committed row points at a blob that is not durable.
        durable = group.batch.durable() if group.files else None
        try:
            self._insert_rows(group)
        finally:
            if durable is not None:
                durable.result()

    def _known_blobs(self, blob_ids: list[str]) -> dict[str, bool]:
        """Of these (file-sized) ids, those with a row -> whether their bytes are inline and
        intact (then no file is written: the same content is stored once, whatever the tier)."""
        return {bid: bytes_id is not None and status == "ok"
                for bid, (bytes_id, status) in self._stored_tiers(blob_ids).items()}

    def _stored_tiers(self, blob_ids: Iterable[str]) -> dict[str, tuple[int | None, str]]:
        """`blobs.inline.stored_tiers` on the group's cursor (the write path's hot reads: `rows.hot`)."""
        rows = hot.rows_where(self.cursor, self.mark, schema.blobs, ("blob_id", "bytes_id", "status"), "blob_id",
                              list(blob_ids))
        return {blob_id: (bytes_id, status) for blob_id, bytes_id, status in rows}

    def _inline_rows(self, group: GroupState, cursor: Any) -> None:
        """`blob_bytes` rows for the group's small blobs, except those stored already: inline,
        or as an intact file (dedupe across tiers). A quarantined blob, or a file found missing
        or corrupt here, gets its bytes inline again: writing the same content heals it."""
        stored = self._stored_tiers(group.inline)
        next_id = hot.scalar(self.cursor, "SELECT coalesce(max(bytes_id), 0) + 1 FROM blob_bytes")
        bytes_ids: dict[str, int] = {}
        rows = []
        for bid, data in group.inline.items():
            bytes_id, status = stored.get(bid, (None, None))
            if status == "ok":
                if bytes_id is not None:
                    continue
                good = self.blobs.is_good(bid)
                if good:
                    continue
                if good is False:
                    self.blobs.quarantine(bid)
            bytes_ids[bid] = next_id
            rows.append((next_id, data))
            next_id += 1
        if rows:
            cursor.executemany(f"INSERT INTO blob_bytes (bytes_id, data) VALUES ({self.mark}, {self.mark})", rows)
            for row in group.blob_rows:
                if row["blob_id"] in bytes_ids:
                    row["bytes_id"] = bytes_ids[row["blob_id"]]

    def _insert_rows(self, group: GroupState) -> None:
        # One executemany per table, on the transaction's own DBAPI cursor with positional
        # tuples: SQLAlchemy's per-row parameter processing was a third of the writer's CPU.
        cursor, mark = self.cursor, self.mark
        for table in _TABLES:
            rows = group.appended.get(table.name)
            if rows:
                _bulk(cursor, mark, table, "INSERT", rows)
            dirty = group.dirty.get(table.name)
            if dirty:
                _replace(cursor, self.backend, table, dirty.values())
        if group.inline:
            self._inline_rows(group, cursor)
        if group.blob_rows:
            # a blob seen before keeps its first row; writing it again clears a quarantine
            # mark (and, when its bytes were stored inline again just now, points at them)
            _bulk(cursor, mark, schema.blobs, "INSERT", group.blob_rows,
                  " ON CONFLICT (blob_id) DO UPDATE SET status = 'ok',"
                  " bytes_id = coalesce(excluded.bytes_id, blobs.bytes_id)")
        session_rows, counter_rows = [], []
        for sid in group.dirty_sessions:
            state = group.sessions[sid]
            assert state is not None
            state.row["branch"] = _json.encode(branch.dump(state.branch)).decode()
            session_rows.append(state.row)
            counter_rows.extend({"session_id": sid, "kind": kind, "value": value}
                                for kind, value in state.counters.items() if value)
        if session_rows:
            _replace(cursor, self.backend, schema.sessions, session_rows)
            _replace(cursor, self.backend, schema.counters, counter_rows)

    def _dead_letters(self, rejected: Iterable[tuple[Any, dict[str, Any]]], at: str) -> None:
        rows = []
        for _raw, receipt in rejected:
            error = receipt["error"]
            rows.append({
                "write_id": receipt["write_id"], "session_id": receipt["session"],
                "error_type": error["type"], "message": error["message"],
                "event_index": error.get("event_index"), "field": error.get("field"),
                "error": _json.encode(error), "at": at})
        self.conn.execute(insert(schema.rejected_writes), rows)
