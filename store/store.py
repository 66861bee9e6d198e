"""`Store`: the storage library's front door, in the spirit of sqlite-utils' `Database`.

    store = Store.open("var/store")
    receipts = store.commit_many([{"write_id": "w1", "session": "s1", "events": [...]}])
    store.view("s1")            # the current branch
    store.view("s1#h3")         # the state of one immutable head

    store = Store.open("var/store", readonly=True)   # reads only: creates and migrates nothing

Owns the store root (store.sqlite, blobs/, quarantine/), opening and migrating it, and
running group commits and read views each in one SQLite transaction. It never imports
Celery: the workers drive it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from . import views
from .blobs import BlobStore
from .errors import NoStoreError, NotAStoreError, ReadOnlyStoreError, StoreError
from .gc_pause import gc_paused
from .rows.schema import check_adoptable, check_readable, migrate, open_engine
from .settings import Settings
from .writes.commit import GroupCommit


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
    def __init__(self, root: Path, settings: Settings, *, readonly: bool = False) -> None:
        self.root = root
        self.settings = settings
        self.readonly = readonly
        path = root / "store.sqlite"
        if not readonly:
            check_adoptable(path)
        self.engine = open_engine(path, settings.sqlite_synchronous, settings.sqlite_busy_timeout_ms, readonly=readonly)
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

    @classmethod
    def open(cls, root: str | Path, settings: Settings | None = None, *, readonly: bool = False) -> Store:
        """Open (and create, and migrate) the store at `root`.

        `readonly=True` opens an existing store as it is, through SQLite's `mode=ro`: it
        never creates, migrates or changes a file or directory. It raises NoStoreError for
        a missing root or store.sqlite, NotAStoreError for a file that is not a sessiondb
        store (not SQLite, an empty or a foreign database) and SchemaVersionError for any
        other schema version. Writes on a read-only store fail; reads work as usual.
        A writable open also refuses a foreign database or a file that is not SQLite."""
        path = Path(root)
        settings = settings or Settings.from_env(root=str(path))
        if readonly:
            if not path.is_dir():
                raise NoStoreError(str(path), "no such directory" if not path.exists() else "not a directory")
            if not (path / "store.sqlite").exists():
                raise NoStoreError(str(path), "it has no store.sqlite")
            if not (path / "store.sqlite").is_file():
                raise NotAStoreError(str(path / "store.sqlite"), "not a file")
            return cls(path, settings, readonly=True)
        path.mkdir(parents=True, exist_ok=True)
        return cls(path, settings)

    @classmethod
    def open_readonly(cls, root: str | Path, settings: Settings | None = None) -> Store:
        """`Store.open(root, settings, readonly=True)`."""
        return cls.open(root, settings, readonly=True)

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
        if self.readonly:
            raise ReadOnlyStoreError(str(self.root))
        with self.engine.connect() as conn:
            conn.info["begin"] = "BEGIN IMMEDIATE"
            with conn.begin(), gc_paused():
                return GroupCommit(conn, self.blobs, self.settings).run(writes)

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
