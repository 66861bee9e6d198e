"""The writer lock of a PostgreSQL store: a session-level advisory lock, and the fencing check.

Whoever holds the advisory lock `pg_try_advisory_lock(KEY)` in the store's database is THE
writer of that store, on whatever machine it runs. The lock is held on a dedicated session
(its own connection, autocommit, idle), never on the connection commits run on; PostgreSQL
drops it when that session ends: the process died (`kill -9`: the kernel closes its socket),
its backend was terminated (`pg_terminate_backend`), or TCP keepalives found its machine gone
(the session asks for keepalives after 5 s idle). A standby polls until it gets the lock.

Fencing: a writer that lost its lock must not commit. Inside each group's transaction,
`fence` checks on the writer's own write connection that the lock session still holds the
lock (`pg_locks` for its backend pid) and that no other writer took over since (the
`writer_generation` row of `meta`: bumped by each new holder's first transaction, read
`FOR SHARE` by every later one, so a new holder's bump waits for an old holder's transaction
in flight, and an old holder's next transaction sees the new generation). Either check
failing raises `WriterFencedError`: the transaction rolls back and the lock is given up.

Owns only the lock session and these checks; it never touches the store's other rows, and
never shows the URL's password.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import URL

from .errors import WriterFencedError
from .rows.dialect import shown

#: the advisory lock's key (two int4: shown in pg_locks as classid, objid with objsubid 2)
KEY = (0x5E55_10DB, 1)
APP_PREFIX = "sessiondb-writer"

_HELD_SQL = ("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = %s AND granted"
             " AND classid = %s AND objid = %s AND objsubid = 2)")
_BUMP_SQL = ("INSERT INTO meta (key, value) VALUES ('writer_generation', '1') ON CONFLICT (key) DO UPDATE"
             " SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS VARCHAR) RETURNING value")
_CHECK_SQL = ("SELECT m.value, EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = %s"
              " AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 2)"
              " FROM meta m WHERE m.key = 'writer_generation' FOR SHARE OF m")
_HOLDER_SQL = ("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
               " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s"
               " AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")

#: the AdvisoryLock objects of THIS process that hold their lock, by database (URL without password)
_held: dict[str, AdvisoryLock] = {}


def connect(url: URL, **extra: Any) -> Any:
    """A psycopg connection (autocommit) from a SQLAlchemy URL, with the URL's own parameters
    and `extra` on top (`options`, server settings, are added to the URL's, not put instead)."""
    import psycopg

    params: dict[str, Any] = {"connect_timeout": 10}
    params.update({k: v for k, v in url.query.items() if isinstance(v, str)})
    params.update(host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database)
    for key, value in extra.items():
        params[key] = f"{params[key]} {value}" if key == "options" and params.get(key) else value
    return psycopg.connect(autocommit=True, **{k: v for k, v in params.items() if v is not None})


class AdvisoryLock:
    """The writer lock of the PostgreSQL store at `url` (the same interface as `FileLock`)."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.name = shown(url)
        self._conn: Any = None
        self._pid = 0  # the process that took it: a forked child inherits the socket, not the role
        self.backend_pid: int | None = None  # the lock session's backend
        self._generation: str | None = None  # ours, once a fenced transaction of ours committed
        self._pending: str | None = None  # bumped by the transaction in progress

    @property
    def held(self) -> bool:
        return self._pid == os.getpid() and _held.get(self.name) is self

    def held_in_process(self) -> bool:
        lock = _held.get(self.name)
        return lock is not None and lock.held

    def _session(self) -> Any:
        if self._conn is None or self._conn.closed or self._pid != os.getpid():
            self._conn = connect(self.url, application_name=self._app_name(),
                                 keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
                                 options="-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2"
                                         " -c tcp_keepalives_count=3")
            self._pid = os.getpid()
            self.backend_pid = self._conn.info.backend_pid
        return self._conn

    @staticmethod
    def _app_name() -> str:
        """How the lock session names its holder (`holder_pid` reads it back)."""
        return f"{APP_PREFIX} pid={os.getpid()} host={socket.gethostname()}"[:63]

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it (a server that cannot be reached raises psycopg's error)."""
        if self.held:
            return True
        import psycopg

        for attempt in (1, 2):
            try:
                got = self._session().execute("SELECT pg_try_advisory_lock(%s, %s)", KEY).fetchone()[0]
                break
            except psycopg.OperationalError:
                self._close()  # a session cut since the last try: once more on a new one
                if attempt == 2:
                    raise
        if not got:
            return False
        self._generation = self._pending = None  # the first fenced transaction bumps the generation
        _held[self.name] = self
        return True

    def acquire(self, poll_s: float = 0.2, on_wait: Callable[[int | None], None] | None = None) -> None:
        """Block until the lock is ours; `on_wait(holder_pid)` is called once if we have to wait."""
        waited = False
        while not self.try_acquire():
            if not waited and on_wait is not None:
                on_wait(self.holder_pid())
            waited = True
            time.sleep(poll_s)

    def release(self) -> None:
        """Give the lock back (the session is kept for the next take)."""
        if not self.held:
            return
        _held.pop(self.name, None)
        try:
            self._conn.execute("SELECT pg_advisory_unlock(%s, %s)", KEY)
        except Exception:  # noqa: BLE001 - a session already gone holds nothing
            self._close()

    def close(self) -> None:
        if self.held:
            _held.pop(self.name, None)
        self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken session
                pass

    def holder_pid(self) -> int | None:
        """The pid of the writer holding the lock (from its session's application name), or None."""
        try:
            row = self._session().execute(_HOLDER_SQL, KEY).fetchone()
        except Exception:  # noqa: BLE001 - only for messages
            return None
        if row is None or not row[0] or not row[0].startswith(APP_PREFIX):
            return None
        for part in row[0].split():
            if part.startswith("pid=") and part[4:].isdigit():
                return int(part[4:])
        return None

    # -- fencing ----------------------------------------------------------------------------
    def fence(self, cursor: Any) -> None:
        """Inside a group's transaction (on its DBAPI cursor): raise WriterFencedError unless we
        still hold the lock and are still the latest holder. Call `committed()` after COMMIT."""
        if not self.held:
            raise WriterFencedError(self.name, "the writer lock is not held")
        key = (self.backend_pid, *KEY)
        if self._generation is None:
            self._pending = cursor.execute(_BUMP_SQL).fetchone()[0]
            holds = cursor.execute(_HELD_SQL, key).fetchone()[0]
        else:
            row = cursor.execute(_CHECK_SQL, key).fetchone()
            if row is None or row[0] != self._generation:
                self._lost()
                raise WriterFencedError(self.name, "another writer took over")
            holds = row[1]
        if not holds:
            self._lost()
            raise WriterFencedError(self.name, "the writer lock's session is gone (cut, or the server restarted)")

    def committed(self) -> None:
        if self._pending is not None:
            self._generation, self._pending = self._pending, None

    def _lost(self) -> None:
        _held.pop(self.name, None)
        self._generation = self._pending = None
        self._close()


def held_here(url: URL) -> AdvisoryLock | None:
    """The AdvisoryLock through which this process holds the writer lock of `url`, or None."""
    lock = _held.get(shown(url))
    return lock if lock is not None and lock.held else None
