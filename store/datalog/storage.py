"""The datoms file: one SQLite file holding datoms, attribute ids and metadata.

Owns: DDL, value encoding, index range scans and bulk writes of datoms.
Layout (current state only, like DataScript; no history):
  * ``datoms(e, a, v, tx)`` is a WITHOUT ROWID table keyed by (e, a, v): that
    primary key *is* EAVT.
  * ``datoms_avet(a, v)``: a secondary index of a WITHOUT ROWID table carries the
    primary key, so it holds (a, v, e) and covers AVET, AEVT-style attribute scans,
    and VAET for ref attributes (reverse lookups always name the attribute here).
    One secondary B-tree instead of three keeps bulk apply fast.
Values keep their Python type: str/int/float are stored natively; other types are
tagged BLOBs so that they never compare equal to strings or numbers.
Must never: interpret tx data or queries.
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from edn_format import Keyword

from ..private import create_private_file
from . import edn
from .errors import TransactError

FORMAT_VERSION = "1"
TX0 = 536870912  # DataScript's tx0: tx ids never collide with entity ids in practice
_CHUNK = 900  # stay under SQLite's default 999 host-parameter limit (older builds)

_DDL = [
    "CREATE TABLE IF NOT EXISTS datoms (e INTEGER NOT NULL, a INTEGER NOT NULL, v NOT NULL,"
    " tx INTEGER NOT NULL, PRIMARY KEY (e, a, v)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS datoms_avet ON datoms (a, v)",
    "CREATE TABLE IF NOT EXISTS attrs (id INTEGER PRIMARY KEY, ident TEXT NOT NULL UNIQUE,"
    " n INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]


def encode(v: Any) -> Any:
    """Python value -> SQLite value. Raises TransactError for unsupported types."""
    t = type(v)
    if t is str or t is int or t is float:
        if t is int and not -(2**63) <= v < 2**63:
            raise TransactError(f"integer {v} does not fit in 64 bits")
        return v
    if t is bool:
        return b"b1" if v else b"b0"
    if t is Keyword:
        return b"k" + v.name.encode()
    if t is bytes:
        return b"y" + v
    if t is uuid.UUID:
        return b"u" + v.bytes
    if t is _dt.datetime:
        return b"t" + v.isoformat().encode()
    if isinstance(v, str):
        return str(v)
    raise TransactError(f"unsupported value type {t.__name__}: {edn.fmt(v)}")


def decode(v: Any) -> Any:
    if type(v) is not bytes:
        return v
    tag, body = v[:1], v[1:]
    if tag == b"k":
        return Keyword(body.decode())
    if tag == b"b":
        return body == b"1"
    if tag == b"y":
        return bytes(body)
    if tag == b"u":
        return uuid.UUID(bytes=bytes(body))
    if tag == b"t":
        return _dt.datetime.fromisoformat(body.decode())
    return v


def decode_many(vs: list[Any]) -> list[Any]:
    if any(type(v) is bytes for v in vs):
        return [decode(v) for v in vs]
    return vs


class Storage:
    """Owns the SQLAlchemy engine and the DBAPI connection used for hot paths."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            create_private_file(path)  # 0600 before SQLite opens it: its -wal/-shm follow its mode
        url = "sqlite://" if path == ":memory:" else f"sqlite:///{path}"
        self.engine = sa.create_engine(url, poolclass=sa.pool.StaticPool if path == ":memory:" else None)
        with self.engine.begin() as conn:
            for stmt in _DDL:
                conn.exec_driver_sql(stmt)
        # Hot loops (executemany inserts, index range scans) go through the DBAPI
        # connection: measured ~3x faster than Core statements per row.
        self._proxy = self.engine.raw_connection()
        self.conn: sqlite3.Connection = self._proxy.driver_connection
        self.conn.isolation_level = None  # explicit BEGIN/COMMIT below
        if path != ":memory:":
            self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA cache_size=-131072")
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self.attr_ids: dict[str, int] = {}
        self.attr_names: dict[int, str] = {}
        self.attr_counts: dict[int, int] = {}
        self.meta: dict[str, str] = {}
        self._dirty_meta: set[str] = set()
        self._dirty_counts: set[int] = set()
        self._version = -1
        self.refresh(force=True)

    # -- lifecycle -------------------------------------------------------
    def close(self) -> None:
        try:
            self._proxy.close()
        finally:
            self.engine.dispose()

    def refresh(self, force: bool = False) -> None:
        """Reload cached attribute ids/counts and meta when another connection wrote."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if not force and version == self._version:
            return
        self._version = version
        self.attr_ids = {}
        self.attr_names = {}
        self.attr_counts = {}
        for i, ident, n in self.conn.execute("SELECT id, ident, n FROM attrs"):
            self.attr_ids[ident] = i
            self.attr_names[i] = ident
            self.attr_counts[i] = n
        self.meta = dict(self.conn.execute("SELECT key, value FROM meta"))

    def begin(self, write: bool) -> None:
        self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def commit(self) -> None:
        self._flush()
        self.conn.execute("COMMIT")
        self._version = self.conn.execute("PRAGMA data_version").fetchone()[0]

    def rollback(self) -> None:
        self._dirty_meta.clear()
        self._dirty_counts.clear()
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.refresh(force=True)

    # -- metadata --------------------------------------------------------
    def set_meta(self, key: str, value: str) -> None:
        # buffered until commit: bulk apply changes max_eid/max_tx once per tx
        self.meta[key] = value
        self._dirty_meta.add(key)

    def attr_id(self, ident: str, create: bool = False) -> int | None:
        i = self.attr_ids.get(ident)
        if i is None and create:
            cur = self.conn.execute("INSERT INTO attrs(ident, n) VALUES (?, 0)", (ident,))
            i = cur.lastrowid
            self.attr_ids[ident] = i
            self.attr_names[i] = ident
            self.attr_counts[i] = 0
        return i

    def save_counts(self, changed: Iterable[int]) -> None:
        self._dirty_counts.update(changed)  # written once at commit

    def _flush(self) -> None:
        if self._dirty_meta:
            self.conn.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [(k, self.meta[k]) for k in self._dirty_meta]
            )
            self._dirty_meta.clear()
        if self._dirty_counts:
            self.conn.executemany(
                "UPDATE attrs SET n = ? WHERE id = ?", [(self.attr_counts[a], a) for a in self._dirty_counts]
            )
            self._dirty_counts.clear()

    def count(self, a: int) -> int:
        return self.attr_counts.get(a, 0)

    # -- writes ----------------------------------------------------------
    def insert(self, rows: Sequence[tuple[int, int, Any, int]]) -> None:
        self.conn.executemany("INSERT INTO datoms(e, a, v, tx) VALUES (?, ?, ?, ?)", rows)

    def delete(self, e: int, a: int, v: Any) -> bool:
        cur = self.conn.execute("DELETE FROM datoms WHERE e = ? AND a = ? AND v = ?", (e, a, v))
        return cur.rowcount > 0

    # -- reads (raw, encoded values) ---------------------------------------
    def values(self, e: int, a: int) -> list[Any]:
        return [r[0] for r in self.conn.execute("SELECT v FROM datoms WHERE e = ? AND a = ?", (e, a))]

    def exists(self, e: int, a: int, v: Any) -> bool:
        sql = "SELECT 1 FROM datoms WHERE e = ? AND a = ? AND v = ?"
        return self.conn.execute(sql, (e, a, v)).fetchone() is not None

    def entity_with(self, a: int, v: Any) -> int | None:
        row = self.conn.execute("SELECT e FROM datoms WHERE a = ? AND v = ? LIMIT 1", (a, v)).fetchone()
        return row[0] if row else None

    def entities_with(self, a: int, vs: Sequence[Any]) -> dict[Any, int]:
        """AVET: map each value in ``vs`` to the entity holding it (unique attributes)."""
        out: dict[Any, int] = {}
        for i in range(0, len(vs), _CHUNK):
            chunk = vs[i : i + _CHUNK]
            sql = f"SELECT v, e FROM datoms WHERE a = ? AND v IN ({','.join('?' * len(chunk))})"
            out.update(self.conn.execute(sql, (a, *chunk)))
        return out

    def entities_with_any(self, aids: Sequence[int], vs: Sequence[Any]) -> list[tuple[int, Any, int]]:
        """AVET probe for several unique attributes at once: one query per transaction."""
        out: list[tuple[int, Any, int]] = []
        vs = list(dict.fromkeys(vs))
        alist = ",".join("?" * len(aids))
        step = _CHUNK - len(aids)
        for i in range(0, len(vs), step):
            chunk = vs[i : i + step]
            sql = f"SELECT a, v, e FROM datoms WHERE a IN ({alist}) AND v IN ({','.join('?' * len(chunk))})"
            out.extend(self.conn.execute(sql, (*aids, *chunk)))
        return out

    def estimate(self, a: int | None, v: Any) -> int:
        if a is None:
            return self.count_all()
        sql = "SELECT count(*) FROM (SELECT 1 FROM datoms WHERE a = ? AND v = ? LIMIT 1000)"
        return self.conn.execute(sql, (a, v)).fetchone()[0]

    def count_all(self) -> int:
        return sum(self.attr_counts.values())

    def entity_datoms(self, e: int) -> list[tuple[int, Any]]:
        return self.conn.execute("SELECT a, v FROM datoms WHERE e = ?", (e,)).fetchall()

    def scan(
        self,
        a: int | None,
        e: int | None = None,
        v: Any = None,
        es: Sequence[int] | None = None,
        vs: Sequence[Any] | None = None,
    ) -> list[tuple[int, int, Any]]:
        """Index range scan returning (e, a, v) rows; ``es``/``vs`` restrict by IN lists."""
        where: list[str] = []
        params: list[Any] = []
        if a is not None:
            where.append("a = ?")
            params.append(a)
        if e is not None:
            where.append("e = ?")
            params.append(e)
        if v is not None:
            where.append("v = ?")
            params.append(v)
        base = "SELECT e, a, v FROM datoms"
        if es is not None or vs is not None:
            col, items = ("e", es) if es is not None else ("v", vs)
            items = list(items)
            out: list[tuple[int, int, Any]] = []
            for i in range(0, len(items), _CHUNK):
                chunk = items[i : i + _CHUNK]
                cond = " AND ".join([*where, f"{col} IN ({','.join('?' * len(chunk))})"])
                out.extend(self.conn.execute(f"{base} WHERE {cond}", (*params, *chunk)))
            return out
        sql = f"{base} WHERE {' AND '.join(where)}" if where else base
        return self.conn.execute(sql, params).fetchall()

    def scan_av(self, a: int) -> list[tuple[int, Any]]:
        """Every (e, v) of one attribute, from the AVET index (no table lookups)."""
        return self.conn.execute("SELECT e, v FROM datoms INDEXED BY datoms_avet WHERE a = ?", (a,)).fetchall()
