"""`Store`: the storage library's front door, in the spirit of sqlite-utils' `Database`.

    store = Store.open("var/store")
    receipts = store.commit_many([{"write_id": "w1", "session": "s1", "events": [...]}])
    store.view("s1")            # the current branch
    store.view("s1#h3")         # the state of one immutable head

Owns the store root (store.sqlite, blobs/, quarantine/), opening and migrating it, and
running group commits and read views each in one SQLite transaction. It never imports
Celery: the workers drive it.

One writer per root: a commit holds the root's writer lock (`store.writer_lock`). A
process that already holds it (the fleet's writer) commits at once; any other process
takes it for the length of the commit, or, while another process holds it (a running
fleet), gets `WriterLockHeldError` and nothing is written. Reads never need the lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from . import views
from .blobs import BlobStore
from .errors import StoreError, WriterLockHeldError
from .gc_pause import gc_paused
from .rows.schema import migrate, open_engine
from .settings import Settings
from .writer_lock import WriterLock, held_here, holder_pid
from .writes.commit import GroupCommit


def raise_for(receipt: dict[str, Any]) -> dict[str, Any]:
    """Return a committed receipt; turn a rejection receipt back into its StoreError."""
    if receipt.get("status") != "rejected":
        return receipt
    raise StoreError.from_dict(receipt["error"])


class Store:
    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings
        self.blobs = BlobStore(root)
        self.engine = open_engine(root / "store.sqlite", settings.sqlite_synchronous)
        self.schema_version = migrate(self.engine, str(root))

    @classmethod
    def open(cls, root: str | Path, settings: Settings | None = None) -> Store:
        path = Path(root)
        path.mkdir(parents=True, exist_ok=True)
        return cls(path, settings or Settings.from_env(root=str(path)))

    def close(self) -> None:
        self.engine.dispose()
        self.blobs.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------------
    def commit_many(self, writes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Apply many writes in ONE SQLite transaction; one receipt per write, in order.

        A bad write gets a rejection receipt (and a dead-letter row); the others commit.
        Returns only after the transaction and every blob it references are durable."""
        if not writes:
            return []
        with self.writer_lock(), self.engine.connect() as conn:
            conn.info["begin"] = "BEGIN IMMEDIATE"
            with conn.begin(), gc_paused():
                return GroupCommit(conn, self.blobs, self.settings).run(writes)

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Hold the root's writer lock for a commit: already ours (we are the fleet's writer),
        or taken now and given back after; `WriterLockHeldError` if another process holds it."""
        if held_here(self.root):
            yield
            return
        lock = WriterLock(self.root)
        if not lock.try_acquire():
            raise WriterLockHeldError(str(self.root), holder_pid(self.root))
        try:
            yield
        finally:
            lock.release()

    def commit(self, write: dict[str, Any]) -> dict[str, Any]:
        """Apply one write; returns its receipt or raises the StoreError that rejected it."""
        return raise_for(self.commit_many([write])[0])

    def write(self, session: str, events: Iterable[dict[str, Any]], write_id: str) -> dict[str, Any]:
        return self.commit({"write_id": write_id, "session": session, "events": list(events)})

    def write_alias(self, alias: str, session: str) -> dict[str, Any]:
        """Point a unique alias at a session (idempotent; re-pointing it is an AliasConflictError)."""
        return self.commit({"write_id": f"alias:{alias}:{session}", "session": session,
                            "events": [{"type": "alias/set", "alias": alias}]})

    # -- reads --------------------------------------------------------------------------
    def _read(self) -> Connection:
        return self.engine.connect()

    def resolve(self, name: str) -> tuple[str, str | None]:
        """`session`, `alias` or `session#head` -> (session id, head id or None)."""
        with self._read() as conn, conn.begin():
            return views.resolve(conn, name)

    def view(self, session: str, head: str | None = None) -> dict[str, Any]:
        with self._read() as conn, conn.begin():
            sid, named_head = views.resolve(conn, session if head is None else f"{session}#{head}")
            return views.view(conn, self.blobs, sid, named_head)

    def history_view(self, session: str) -> dict[str, Any]:
        with self._read() as conn, conn.begin():
            return views.history_view(conn, views.resolve(conn, session)[0])

    def event_view(self, session: str) -> list[dict[str, Any]]:
        with self._read() as conn, conn.begin():
            return views.event_view(conn, views.resolve(conn, session)[0])

    def message_records(self, session: str, include_content: bool = False,
                        all_branches: bool = False) -> list[dict[str, Any]]:
        with self._read() as conn, conn.begin():
            return views.message_records(conn, self.blobs, views.resolve(conn, session)[0],
                                         include_content, all_branches)

    def high_water_counters(self, session: str) -> dict[str, int]:
        with self._read() as conn, conn.begin():
            return views.counters(conn, views.resolve(conn, session)[0])

    def current_head_id(self, session: str) -> str | None:
        with self._read() as conn, conn.begin():
            return views.current_head_id(conn, views.resolve(conn, session)[0])

    def call_records(self, session: str) -> list[dict[str, Any]]:
        with self._read() as conn, conn.begin():
            return views.call_records(conn, views.resolve(conn, session)[0])

    def attached_from(self, session: str) -> dict[str, Any] | None:
        with self._read() as conn, conn.begin():
            return views.attached_from(conn, views.resolve(conn, session)[0])

    def blob(self, blob_id: str) -> bytes:
        return self.blobs.get(blob_id)
