"""sessiondb's derived Datalog index: `<root>/index.sqlite`, built only from the tx log.

The index is a `store.datalog.Database` whose schema comes from `facts.SCHEMA` and whose
facts are the transaction batches of store.sqlite's `tx` table, applied in tx order. Its
watermark (the last applied tx id) lives inside the index file and moves in the same
SQLite transaction as the facts it covers, so a crash never leaves facts without their
watermark or the reverse. A batch that cannot be applied is quarantined (recorded with
its error inside the index) and indexing goes on.

`index.sqlite` is a symbolic link to one generation file (`index-<n>.sqlite`). A rebuild
writes the next generation from scratch and swaps the link atomically: readers keep
reading the generation they opened (SQLite names a WAL after the real file, so
generations never share one) and never see a half-built index. The index can be deleted
at any time and rebuilt. This module reads the store's database (store.sqlite, or the
PostgreSQL database of `database_url`: the index stays a local file) and never writes it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import Engine, create_engine, text

from ..datalog import Database, DatalogError
from ..forget.excise import EXCISE
from ..private import FILE_MODE
from ..rows import dialect
from ..writes.facts import SCHEMA
from . import replay as index_replay

LINK = "index.sqlite"
Progress = Callable[[int, int], None]  # (applied so far, total to apply)


def _secure(db: Database) -> Database:
    """Deleted facts leave no bytes in the index file's free pages (store/forget/)."""
    db._st.conn.execute("PRAGMA secure_delete=ON")
    return db


def _is_excision(facts: Any) -> bool:
    return bool(facts) and isinstance(facts[-1], dict) and EXCISE in facts[-1]


def _parts(chunk: list[tuple[int, Any]]) -> list[list[tuple[int, Any]]]:
    """The chunk in runs applied together; each delete's batch alone (it reads the index first)."""
    parts: list[list[tuple[int, Any]]] = []
    for tx_id, facts in chunk:
        if _is_excision(facts) or not parts or _is_excision(parts[-1][0][1]):
            parts.append([])
        parts[-1].append((tx_id, facts))
    return parts


def _retractions(db: Database, facts: list[Any]) -> list[Any]:
    """A delete's batch as tx data: its tombstone maps, and a retraction of every datom the index
    holds of each excised entity (its identity kept for sessions and heads: facts that stay
    refer to them). An entity the index never had (a rebuild from the excised log) is skipped."""
    out = [item for item in facts if not (isinstance(item, dict) and EXCISE in item)]
    for attr, value, keep in facts[-1][EXCISE]:
        for datom in db.datoms("eavt", [attr, value]):
            if not (keep and datom.a == attr):
                out.append(["db/retract", datom.e, datom.a, datom.v])
    return out


class Index:
    def __init__(self, root: str | os.PathLike[str], chunk: int = 2000, *, database_url: str = "") -> None:
        self.root = Path(root)
        self.link = self.root / LINK
        self.chunk = chunk
        self._db: Database | None = None
        self._db_target: str | None = None
        url = dialect.database_url(database_url)
        if url is None:
            self._store: Engine = create_engine(f"sqlite:///file:{self.root / 'store.sqlite'}?mode=ro&uri=true")
        else:
            from ..rows.schema import open_postgres_engine

            self._store = open_postgres_engine(url, readonly=True)

    @classmethod
    def open(cls, root: str | os.PathLike[str], chunk: int = 2000, *, create: bool = True,
             database_url: str = "") -> Index:
        """The index of the store at `root` (its database: store.sqlite there, or the PostgreSQL
        database `database_url`); made (empty) if there is none, unless `create=False` (a
        read-only caller: `status` then reports everything as lag)."""
        index = cls(root, chunk, database_url=database_url)
        if create and not index.exists():
            index._swap_to(index._new_generation())
        return index

    def exists(self) -> bool:
        return self.link.exists()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._store.dispose()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the current generation -------------------------------------------------------
    def database(self) -> Database:
        """The Database of the current generation (re-opened after a rebuild swapped it)."""
        target = os.readlink(self.link)
        if self._db is None or self._db_target != target:
            if self._db is not None:
                self._db.close()
            self._db = _secure(Database.open(self.root / target))
            self._db_target = target
        return self._db

    def _new_generation(self) -> Path:
        stems = [p.stem.split("-", 1)[1] for p in self.root.glob("index-*.sqlite")]
        numbers = [int(stem) for stem in stems if stem.isdigit()]
        path = self.root / f"index-{max(numbers, default=0) + 1:06d}.sqlite"
        Database.open(path, SCHEMA).close()
        return path

    def _swap_to(self, path: Path) -> None:
        temp = self.root / f".{LINK}.{os.getpid()}"
        if temp.is_symlink():
            temp.unlink()
        os.symlink(path.name, temp)
        os.replace(temp, self.link)  # atomic: readers see the old generation or the new one
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- status -------------------------------------------------------------------------
    def watermark(self, db: Database | None = None) -> int:
        return int((db or self.database()).get_meta("watermark") or 0)

    def quarantined(self, db: Database | None = None) -> list[dict[str, Any]]:
        return json.loads((db or self.database()).get_meta("quarantined") or "[]")

    def store_head(self) -> int:
        with self._store.connect() as conn:
            return conn.execute(text("SELECT coalesce(max(tx_id), 0) FROM tx")).scalar_one()

    def status(self) -> dict[str, Any]:
        if not self.exists():
            head = self.store_head()
            return {"watermark": 0, "store_tx": head, "lag": head, "quarantined": [], "file": None}
        db = self.database()
        watermark, head = self.watermark(db), self.store_head()
        return {"watermark": watermark, "store_tx": head, "lag": head - watermark,
                "quarantined": self.quarantined(db), "file": self._db_target}

    # -- applying batches ---------------------------------------------------------------
    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One index writer at a time (catch-ups from notifications and beat may overlap)."""
        fd = os.open(self.root / "index.lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _batches(self, after: int) -> Iterator[list[tuple[int, Any]]]:
        while True:
            with self._store.connect() as conn:
                rows = conn.execute(text("SELECT tx_id, facts FROM tx WHERE tx_id > :after ORDER BY tx_id LIMIT :n"),
                                    {"after": after, "n": self.chunk}).all()
            if not rows:
                return
            yield [(tx_id, msgspec.json.decode(facts)) for tx_id, facts in rows]
            after = rows[-1][0]

    def _apply(self, db: Database, progress: Progress | None) -> dict[str, Any]:
        start, applied, quarantined = time.perf_counter(), 0, []
        watermark = self.watermark(db)
        total = max(0, self.store_head() - watermark)
        excised = False
        for chunk in self._batches(watermark):
            for part in _parts(chunk):
                if _is_excision(part[0][1]):  # a session delete: retract what the index holds of it
                    excised = True
                    part = [(part[0][0], _retractions(db, part[0][1]))]
                self._transact(db, part, quarantined)
            applied += len(chunk)
            if progress is not None:
                progress(applied, total)
        if excised:
            self._erase_old_bytes(db)
        return {"applied": applied, "watermark": self.watermark(db), "quarantined": quarantined,
                "seconds": round(time.perf_counter() - start, 3)}

    def _transact(self, db: Database, chunk: list[tuple[int, Any]], quarantined: list[dict[str, Any]]) -> None:
        last = chunk[-1][0]
        try:
            db.transact_many([facts for _, facts in chunk], meta={"watermark": str(last)})
        except DatalogError:
            # find the bad batch(es): apply one by one, quarantine what fails, go on
            for tx_id, facts in chunk:
                try:
                    db.transact_many([facts], meta={"watermark": str(tx_id)})
                except DatalogError as exc:
                    entry = {"tx_id": tx_id, "error": str(exc)}
                    quarantined.append(entry)
                    known = self.quarantined(db) + [entry]
                    db.transact_many([], meta={"watermark": str(tx_id), "quarantined": json.dumps(known)})

    def _erase_old_bytes(self, db: Database) -> None:
        """After a delete was applied: no old copy of its facts may stay on disk. Freed pages are
        zeroed (secure_delete), the WAL is truncated, and older generations (built before the
        delete, kept for readers of a rebuild) are removed."""
        conn = db._st.conn
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        keep = {os.readlink(self.link), Path(db.path).name}  # the current one, and one being rebuilt
        for old in self.root.glob("index-*.sqlite"):
            if old.name not in keep:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{old}{suffix}").unlink(missing_ok=True)

    def catch_up(self, progress: Progress | None = None) -> dict[str, Any]:
        """Apply every batch committed since the watermark."""
        with self._exclusive():
            return self._apply(self.database(), progress)

    def rebuild(self, progress: Progress | None = None) -> dict[str, Any]:
        """Build a fresh generation from the whole tx log and swap it in atomically."""
        with self._exclusive():
            path = self._new_generation()
            with _secure(Database.open(path)) as fresh:
                result = self._apply(fresh, progress)
            old = [p for p in self.root.glob("index-*.sqlite") if p != path]
            self._swap_to(path)
        for previous in sorted(old)[:-1]:  # keep the generation just replaced for readers still on it
            for suffix in ("", "-wal", "-shm"):
                Path(f"{previous}{suffix}").unlink(missing_ok=True)
        return {**result, "file": path.name}

    def wait_for(self, tx_id: int, timeout: float = 10.0, poll: float = 0.02) -> bool:
        """Wait until the index covers `tx_id` (a receipt's tx id): read-your-writes."""
        deadline = time.monotonic() + timeout
        while self.watermark() < tx_id:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def mismatches(self, batches: Iterable[tuple[int, list[dict[str, Any]]]]) -> Iterator[dict[str, Any]]:
        """Where the index disagrees with the store for the entities of these batches.

        Only meaningful once the index has caught up (a lagging index is reported as lag)."""
        db = self.database()
        if self.watermark(db) != self.store_head():
            return
        with self._store.connect() as conn:
            yield from index_replay.mismatches(conn, db, batches)

    # -- reading ------------------------------------------------------------------------
    def q(self, query: Any, *inputs: Any) -> Any:
        return self.database().q(query, *inputs)

    def pull(self, pattern: Any, eid: Any) -> Any:
        return self.database().pull(pattern, eid)

    def pull_many(self, pattern: Any, eids: Any) -> Any:
        return self.database().pull_many(pattern, eids)
