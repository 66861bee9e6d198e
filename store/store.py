"""`Store`: the storage library's front door, in the spirit of sqlite-utils' `Database`.

    store = Store.open("var/store")
    receipts = store.commit_many([{"write_id": "w1", "session": "s1", "events": [...]}])
    store.view("s1")            # the current branch
    store.view("s1#h3")         # the state of one immutable head

    store = Store.open("var/store", readonly=True)   # reads only: creates and migrates nothing

Owns the store root (store.sqlite, blobs/, quarantine/), opening and migrating it, and
running group commits and read views each in one database transaction. It never imports
Celery: the workers drive it.

The canonical database is store.sqlite in the root, or the PostgreSQL database of
`Settings.database_url` (docs/postgres.md): then the root keeps only the blob files (and
quarantine/), and every writer and reader of the store must reach the same root.

One writer per store: a commit holds the store's writer lock (`store.writer_lock`, a flock
on SQLite; `store.advisory_lock` on PostgreSQL, checked again inside each group's
transaction). A process that already holds it (the fleet's writer, or `hold_writer_lock`)
commits at once; any other process takes it for the length of the commit, or, while another
process holds it (a running fleet), gets `WriterLockHeldError` and nothing is written.
Reads never need the lock; on PostgreSQL each view is one REPEATABLE READ, READ ONLY
transaction (one snapshot, never blocking the writer).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.exc import SQLAlchemyError

from . import advisory_lock, views
from .advisory_lock import AdvisoryLock
from .blobs import BlobStore, inline
from .errors import DependantsError, NoStoreError, NotAStoreError, ReadOnlyStoreError, StoreError, WriterLockHeldError
from .forget import delete as forget_delete
from .forget import dependants as forget_dependants
from .forget import erase
from .gc_pause import gc_paused
from .private import create_private_file, make_private_dir, restrict_file
from .rows import dialect, hot, schema
from .rows.schema import check_adoptable, check_readable, migrate, open_engine, open_postgres_engine
from .settings import Settings
from .writer_lock import WriterLock, holder_pid
from .writes.commit import GroupCommit

log = logging.getLogger(__name__)


def raise_for(receipt: dict[str, Any]) -> dict[str, Any]:
    """Return a committed receipt; turn a rejection receipt back into its StoreError."""
    if receipt.get("status") != "rejected":
        return receipt
    raise StoreError.from_dict(receipt["error"])


def receipt_counts(receipts: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many receipts are `committed` (new), `duplicate` (a write id already applied:
    nothing written) and `rejected`; the three add up to the number of receipts."""
    counts = {"committed": 0, "duplicate": 0, "rejected": 0}
    for receipt in receipts:
        if receipt.get("status") == "rejected":
            counts["rejected"] += 1
        elif receipt.get("duplicate"):
            counts["duplicate"] += 1
        else:
            counts["committed"] += 1
    return counts


class Store:
    """A store root opened in this process: commit session writes, read views of sessions.

    Open one with `Store.open(root)`; use it as a context manager or call `close()`.
    Every commit holds the root's writer lock (`<root>/writer.lock`) for its length: on a
    root a running fleet's writer serves, commits from another process raise
    `WriterLockHeldError` (use `sessiondb.SessionClient` there); reading it is fine.

    Every name of a session below (`session`) may be a session id or an alias. Errors are
    `sessiondb.StoreError`s; an unknown session or head is a `sessiondb.NotFoundError`.
    The contract is docs/spec.md.
    """

    def __init__(self, root: Path, settings: Settings, *, readonly: bool = False) -> None:
        """Use `Store.open`; this takes an existing directory and explicit settings."""
        self.root = root
        self.settings = settings
        self.readonly = readonly
        #: the PostgreSQL database (None: store.sqlite in the root); `database` shows it without password
        self.database_url = dialect.database_url(settings.database_url)
        if self.database_url is None:
            path: Path | str = root / "store.sqlite"
            if not readonly:
                check_adoptable(path)
            self.engine = open_engine(path, settings.sqlite_synchronous, settings.sqlite_busy_timeout_ms,
                                      readonly=readonly)
            self._read_engine = self.engine
        else:
            path = dialect.shown(self.database_url)
            self.engine = open_postgres_engine(self.database_url, readonly=readonly)
            # a view is one snapshot: REPEATABLE READ, READ ONLY (it never blocks the writer)
            self._read_engine = self.engine.execution_options(isolation_level="REPEATABLE READ",
                                                              postgresql_readonly=True)
        self.database = str(path)
        try:
            # the file is checked before anything else is touched: a bad one is reported, not adopted
            if readonly:
                self.schema_version = check_readable(self.engine, path, str(root))
            else:
                self.schema_version = migrate(self.engine, str(root), path)
        except BaseException:
            self.engine.dispose()
            raise
        self.blobs = BlobStore(root, readonly=readonly)
        # taken for each commit unless this process is the writer
        self._writer_lock: WriterLock | AdvisoryLock = (
            WriterLock(root) if self.database_url is None else AdvisoryLock(self.database_url))
        self._holding = False  # `hold_writer_lock` took it: given back by `close`
        self._commit_lock = threading.Lock()  # one commit at a time on the kept write connection
        self._write_conn: Connection | None = None
        self._write_pid = 0

    @classmethod
    def open(cls, root: str | Path, settings: Settings | None = None, *, readonly: bool = False) -> Store:
        """Open the store root `root`, creating the directory and `store.sqlite` if needed.

        Args:
            root: the store root directory (store.sqlite, blobs/, quarantine/ live in it).
            settings: limits and tuning; default: `Settings.from_env()` (`SESSIONDB_*`
                variables) with this root.
            readonly: open an existing store as it is, through SQLite's `mode=ro`: never
                create, migrate or change a file or directory. Writes then fail; reads work.

        Returns:
            The open store. An older store is migrated forward in place (not when `readonly`).

        Raises:
            NoStoreError: `readonly` and the root or its store.sqlite does not exist.
            NotAStoreError: store.sqlite is not a sessiondb store (not SQLite, an empty or a
                foreign database); a writable open refuses it too.
            SchemaVersionError: the root was written by a newer sessiondb (or, `readonly`,
                by an older one: migrating it would be a write).
        """
        path = Path(root)
        settings = settings or Settings.from_env(root=str(path))
        if dialect.database_url(settings.database_url) is not None:  # PostgreSQL: the root holds blob files
            if not readonly:
                make_private_dir(path)
            return cls(path, settings, readonly=readonly)
        if readonly:
            if not path.is_dir():
                raise NoStoreError(str(path), "no such directory" if not path.exists() else "not a directory")
            if not (path / "store.sqlite").exists():
                raise NoStoreError(str(path), "it has no store.sqlite")
            if not (path / "store.sqlite").is_file():
                raise NotAStoreError(str(path / "store.sqlite"), "not a file")
            return cls(path, settings, readonly=True)
        make_private_dir(path)  # 0700, also an existing root: what is inside is the owner's alone
        create_private_file(path / "store.sqlite")  # 0600 before SQLite opens it: its -wal/-shm follow
        for name in ("store.sqlite", "store.sqlite-wal", "store.sqlite-shm"):
            restrict_file(path / name)  # a store created before its files were private
        return cls(path, settings)

    @classmethod
    def open_readonly(cls, root: str | Path, settings: Settings | None = None) -> Store:
        """`Store.open(root, settings, readonly=True)`."""
        return cls.open(root, settings, readonly=True)

    def close(self) -> None:
        """Close the database connections (and give back a writer lock `hold_writer_lock` took),
        and stop the blob I/O thread and processes."""
        with self._commit_lock:
            self._drop_write_connection()
            if self._holding:
                self._writer_lock.release()
                self._holding = False
            if isinstance(self._writer_lock, AdvisoryLock):
                self._writer_lock.close()
        self.engine.dispose()
        self.blobs.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------------
    def commit_many(self, writes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply many writes in ONE SQLite transaction (group commit); one receipt per write.

        Args:
            writes: session writes as plain data, each
                `{"write_id": str, "session": str, "events": [event, ...]}`
                (the format: docs/store.md).

        Returns:
            One receipt per write, in order: `{"status": "committed", "write_id", "tx_id",
            "session", "event_ids", "ids", "blobs", "heads", "at"}`, or `{"status":
            "rejected", "write_id", "session", "error": {"type", "message", ...}}`. A write
            id that was already committed returns its stored receipt and changes nothing.
            A bad write is rejected alone (and recorded in `rejected_writes`); the others
            commit. Returns only after the transaction and every blob it references are
            durable.

        Raises:
            sqlalchemy.exc.OperationalError, OSError: the database or the disk failed for
                the whole group (locked past the busy timeout, or the commit itself failed):
                nothing was committed; retry later.
        """
        if not writes:
            return []
        if self.readonly:
            raise ReadOnlyStoreError(str(self.root))
        with self._commit_lock, self.writer_lock() as fence:
            conn = self._write_connection()
            try:
                if fence is None:
                    conn.info["begin"] = "BEGIN IMMEDIATE"
                with conn.begin(), gc_paused():
                    if fence is not None:  # PostgreSQL: still the writer? (else WriterFencedError, nothing written)
                        cursor = hot.cursor_of(conn)
                        try:
                            fence.fence(cursor)
                        finally:
                            cursor.close()
                    group = GroupCommit(conn, self.blobs, self.settings)
                    receipts = group.run(writes)
                if fence is not None:
                    fence.committed()
                if group.deleted:  # durable now: unlink the freed files, truncate the WAL
                    try:
                        erase.after_commit(conn, self.blobs, group.unlink_after_commit)
                    except (OSError, SQLAlchemyError) as exc:  # committed all the same: `check` reports leftovers
                        log.warning("erasing after a delete failed: %s", exc)
                return receipts
            except BaseException:
                self._drop_write_connection()  # whatever state it was left in, the next commit starts afresh
                raise

    def _write_connection(self) -> Connection:
        """The connection commits run on, kept between commits (a pool checkout, its reset and
        return cost ~12% of a lone write). Opened again in a forked child: never shared."""
        if self._write_conn is None or self._write_pid != os.getpid():
            self._write_conn, self._write_pid = self.engine.connect(), os.getpid()
        return self._write_conn

    def _drop_write_connection(self) -> None:
        conn, self._write_conn = self._write_conn, None
        if conn is not None and self._write_pid == os.getpid():
            conn.close()

    @contextmanager
    def writer_lock(self) -> Iterator[AdvisoryLock | None]:
        """Hold the store's writer lock for a commit: already ours (we are the fleet's writer),
        or taken now and given back after; `WriterLockHeldError` if another process holds it.
        Yields the AdvisoryLock to fence the transaction with (PostgreSQL), else None."""
        lock = self._writer_lock
        if isinstance(lock, AdvisoryLock):
            holder = advisory_lock.held_here(lock.url)
            if holder is not None:
                yield holder
                return
        elif lock.held_in_process():
            yield None
            return
        if not lock.try_acquire():
            pid = lock.holder_pid() if isinstance(lock, AdvisoryLock) else holder_pid(self.root)
            raise WriterLockHeldError(self.database if isinstance(lock, AdvisoryLock) else str(self.root), pid)
        try:
            yield lock if isinstance(lock, AdvisoryLock) else None
        finally:
            lock.release()

    def hold_writer_lock(self, poll_s: float = 0.2, on_wait: Any = None) -> None:
        """Become this store's writer until `close` (or, on PostgreSQL, until fenced): wait as a
        standby while another process holds the writer lock (`on_wait(holder_pid)` is called
        once then), take it, and keep it, so that every commit of this process commits at once.
        After a `WriterFencedError` call it again to wait for the lock anew."""
        self._writer_lock.acquire(poll_s=poll_s, on_wait=on_wait)
        self._holding = True

    def commit(self, write: dict[str, Any]) -> dict[str, Any]:
        """Apply one write (see `commit_many`).

        Args:
            write: `{"write_id": str, "session": str, "events": [event, ...]}`.

        Returns:
            The committed receipt (the stored one when the write id was already committed).

        Raises:
            ValidationError: the write does not match the write format (`write/invalid`).
            HeadConflictError: the compare-and-set on the current head failed; `.data` has
                `expected_head` and `actual_head`.
            AliasConflictError, ConflictError: an alias or id conflicts with what is stored.
            NotFoundError: the session, or something the write refers to, does not exist.
            WriteFailedError: SQLite refused this write.
        """
        return raise_for(self.commit_many([write])[0])

    def write(self, session: str, events: Iterable[dict[str, Any]], write_id: str) -> dict[str, Any]:
        """Apply the write `{"write_id": write_id, "session": session, "events": events}`.

        Same receipt and errors as `commit`.
        """
        return self.commit({"write_id": write_id, "session": session, "events": list(events)})

    def write_alias(self, alias: str, session: str) -> dict[str, Any]:
        """Point the unique name `alias` at `session` (a write with one `alias/set` event).

        Setting the same alias on the same session again is a no-op.

        Returns:
            The committed receipt.

        Raises:
            AliasConflictError: the alias names another session, or equals a session id.
            NotFoundError: the session does not exist.
        """
        return self.commit({"write_id": f"alias:{alias}:{session}", "session": session,
                            "events": [{"type": "alias/set", "alias": alias}]})

    def delete_session(self, session: str, *, cascade: bool = False, detach: bool = False,
                       reason: str | None = None, dry_run: bool = False,
                       write_id: str | None = None) -> dict[str, Any]:
        """Delete a session for real (docs/forgetting.md): its rows, its facts in the tx log
        and the index, and the payloads nothing else references; a tombstone remains.

        Args:
            session: a session id or alias.
            cascade: also delete every session that depends on it, transitively.
            detach: keep the rows its dependants (forks) still read, so their views are
                unchanged; delete the rest.
            reason: recorded in the tombstone.
            dry_run: change nothing; return what would go (`"status": "dry-run"`).
            write_id: the delete's write id (default: a new one); sending the same write id
                again returns the stored receipt, marked `duplicate`.

        Returns:
            The receipt: `{"status": "committed", "write_id", "tx_id", "session", "deleted":
            [session ids], "mode", "counts": {session: {table: rows}}, "payloads",
            "bytes_freed", "at"}`; with `dry_run` the plan (`counts`, `payloads`,
            `bytes_freed`, `dependants`, `sessions`).

        Raises:
            DependantsError: other sessions depend on it and neither `cascade` nor `detach`
                was given (`.dependants` lists them); nothing was deleted.
            SessionDeletedError: it was deleted already.
            NotFoundError: no such session or alias.
        """
        if dry_run:
            with self._read() as conn, conn.begin():
                try:
                    plan = forget_delete.plan(conn, self.blobs, session, cascade=cascade, detach=detach)
                except DependantsError as exc:
                    sid = forget_delete.resolve(conn, session)
                    plan = forget_delete.Plan(sid, "plain", [sid], exc.dependants, {sid: []}, [])
                    return {**forget_delete.dry_run(conn, self.blobs, plan), "refused": exc.as_dict()}
                return forget_delete.dry_run(conn, self.blobs, plan)
        event: dict[str, Any] = {"type": "session/deleted", "cascade": cascade, "detach": detach}
        if reason is not None:
            event["reason"] = reason
        return self.commit({"write_id": write_id or f"delete-{uuid.uuid4().hex}", "session": session,
                            "events": [event]})

    def tombstone(self, session: str) -> dict[str, Any] | None:
        """What remains of a deleted session: `{"session_id", "deleted_at", "reason", "write_id",
        "tx_id", "mode", "counts", "bytes_freed"}`, or None if it was never deleted."""
        with self._read() as conn, conn.begin():
            stone = forget_dependants.tombstone(conn, session)
        if stone is not None:
            stone["counts"] = json.loads(stone["counts"])
        return stone

    def tombstones(self) -> list[dict[str, Any]]:
        """Every tombstone (see `tombstone`), oldest delete first."""
        with self._read() as conn, conn.begin():
            rows = [dict(r._mapping) for r in conn.execute(
                select(schema.tombstones).order_by(schema.tombstones.c.deleted_at, schema.tombstones.c.session_id))]
        for row in rows:
            row["counts"] = json.loads(row["counts"])
        return rows

    # -- reads --------------------------------------------------------------------------
    def _read(self) -> Connection:
        return self._read_engine.connect()

    def resolve(self, name: str) -> tuple[str, str | None]:
        """Resolve a name: a session id, an alias, or `session#head`.

        Returns:
            `(session id, head id or None)`.

        Raises:
            NotFoundError: no such session or alias, or the head is not one of the session's.
        """
        with self._read() as conn, conn.begin():
            return views.resolve(conn, name)

    def view(self, session: str, head: str | None = None) -> dict[str, Any]:
        """The current branch of a session, or the branch of one of its heads.

        Args:
            session: a session id, an alias, or `session#head`.
            head: a head id of the session (the same as `session#head`); default: the
                current branch.

        Returns:
            `{"session": row, "head": id, "messages": [...], "turns": [...], "evals": [...],
            "calls": [...], "snapshots": [...], "heads": [...], "invocations": [...],
            "refs": {"current_head": id}, "final": blob id, "counters": {...},
            "inherited": [session ids]}`: the rows of the branch (rows inherited by a fork
            first), read in one transaction. Status fields show their latest value.

        Raises:
            NotFoundError: no such session, alias or head.
        """
        with self._read() as conn, conn.begin():
            sid, named_head = views.resolve(conn, session if head is None else f"{session}#{head}")
            return views.view(conn, self.blobs, sid, named_head)

    def history_view(self, session: str) -> dict[str, Any]:
        """Everything ever recorded for a session, abandoned branches included.

        Returns:
            `{"session": row, "events": [...], "heads": [...] (in order), "invocations":
            [...] (as caller or callee), "derivations": [...] (as source or target),
            "refs": {"current_head": id}, "counters": {...}}`.

        Raises:
            NotFoundError: no such session or alias.
        """
        with self._read() as conn, conn.begin():
            return views.history_view(conn, views.resolve(conn, session)[0])

    def event_view(self, session: str) -> list[dict[str, Any]]:
        """The audit log of a session: every event of every branch, by event id.

        Returns:
            `[{"event_id", "type", "at", "entity", "entity_id", "status", "tx_id"}, ...]`.

        Raises:
            NotFoundError: no such session or alias.
        """
        with self._read() as conn, conn.begin():
            return views.event_view(conn, views.resolve(conn, session)[0])

    def message_records(self, session: str, include_content: bool = False,
                        all_branches: bool = False) -> list[dict[str, Any]]:
        """The message rows of a session.

        Args:
            session: a session id or an alias.
            include_content: add `"content"`: the message as it was sent (text as `str`,
                JSON as its value, binary as `bytes`), read from its blob.
            all_branches: every message of the session, abandoned branches included, by
                id; default: the current branch (inherited messages first).

        Returns:
            `[{"session_id", "message_id", "event_id", "role", "content_blob", "chars",
            "turn_id", "call_id", "at"(, "content")}, ...]`.

        Raises:
            NotFoundError: no such session or alias.
            CorruptBlobError: with `include_content`, a content blob is missing or quarantined.
        """
        with self._read() as conn, conn.begin():
            return views.message_records(conn, self.blobs, views.resolve(conn, session)[0],
                                         include_content, all_branches)

    def high_water_counters(self, session: str) -> dict[str, int]:
        """The highest id used so far, on any branch, per id kind.

        Returns:
            `{"event": n, "message": n, "turn": n, "eval": n, "call": n, "snapshot": n,
            "head": n}` (0 for a kind never used). New ids continue above these.

        Raises:
            NotFoundError: no such session or alias.
        """
        with self._read() as conn, conn.begin():
            return views.counters(conn, views.resolve(conn, session)[0])

    def current_head_id(self, session: str) -> str | None:
        """The id of the session's current head, or None before its first head.

        Raises:
            NotFoundError: no such session or alias.
        """
        with self._read() as conn, conn.begin():
            return views.current_head_id(conn, views.resolve(conn, session)[0])

    def call_records(self, session: str) -> list[dict[str, Any]]:
        """Every call row of the session (all branches), by call id, with its latest status.

        Raises:
            NotFoundError: no such session or alias.
        """
        with self._read() as conn, conn.begin():
            return views.call_records(conn, views.resolve(conn, session)[0])

    def attached_from(self, session: str) -> dict[str, Any] | None:
        """Where a derived session came from: its first fork, attached-child or continue.

        Returns:
            The derivation row `{"derivation_id", "kind", "target_session",
            "source_session", "source_head", "event_id", "at"}`, or None for a session that
            was not derived from another one.

        Raises:
            NotFoundError: no such session or alias.
        """
        with self._read() as conn, conn.begin():
            return views.attached_from(conn, views.resolve(conn, session)[0])

    def blob(self, blob_id: str) -> bytes:
        """The bytes of a blob (`blake3:<64 hex>`), checked against its id.

        Raises:
            CorruptBlobError: the blob is missing or quarantined, or its bytes (inline in
                store.sqlite, or its file) do not match its id.
        """
        with self._read() as conn, conn.begin():
            return inline.read(conn, self.blobs, blob_id)
