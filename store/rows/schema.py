"""The schema of the canonical store (store.sqlite, or a PostgreSQL database), the engines
that open it, and forward-only migrations.

Owns table definitions, indexes, pragmas and the schema version; what the two backends spell
differently is asked of `dialect.py`. On PostgreSQL a fresh database is created at the
current version by the same migrations (the first one creates every table of `metadata`). Every lookup the views
and the write path make is backed by a primary key or an index declared here; nothing
scans a whole table. Times are ISO-8601 UTC strings (they sort as text). This module never
decides what a write means: that is `commit.py` and `events.py`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.pool import QueuePool

from ..errors import NotAStoreError, SchemaVersionError
from . import dialect

metadata = MetaData()
S = String  # SQLite ignores lengths; keep the declarations short
#: a 64-bit row id: BIGINT in general (PostgreSQL), but INTEGER on SQLite, where only an
#: `INTEGER PRIMARY KEY` is the rowid itself (append-ordered, no second B-tree)
ID = BigInteger().with_variant(Integer, "sqlite")


def _t(name: str, *cols: Column, without_rowid: bool = True, **kw: object) -> Table:
    return Table(name, metadata, *cols, sqlite_with_rowid=not without_rowid, **kw)


meta = _t("meta", Column("key", S, primary_key=True), Column("value", S, nullable=False))

sessions = _t(
    "sessions",
    Column("session_id", S, primary_key=True),
    Column("title", S),
    Column("status", S, nullable=False),
    Column("kind", S, nullable=False),
    Column("origin", S, nullable=False),
    Column("parent", S),
    Column("created_at", S, nullable=False),
    Column("updated_at", S, nullable=False),
    Column("ended_at", S),
    Column("current_head", S),
    Column("error_blob", S),
    # Membership of the current branch: {session: [[lo, hi], ...]} over event ids. It is the
    # current head's state plus every event appended since the ref last moved.
    Column("branch", S, nullable=False),
)

counters = _t(
    "counters",
    Column("session_id", S, primary_key=True),
    Column("kind", S, primary_key=True),
    Column("value", Integer, nullable=False),
)

events = _t(
    "events",
    Column("session_id", S, primary_key=True),
    Column("event_id", Integer, primary_key=True),
    Column("type", S, nullable=False),
    Column("at", S, nullable=False),
    Column("write_id", S, nullable=False),
    Column("tx_id", Integer, nullable=False),
    Column("entity", S),
    Column("entity_id", S),
    Column("status", S),
    Column("meta_blob", S),
)


def _entity(name: str, id_col: str, *cols: Column) -> Table:
    """A per-session entity table keyed by (session, id), findable by its creating event."""
    table = _t(
        name,
        Column("session_id", S, primary_key=True),
        Column(id_col, Integer, primary_key=True),
        Column("event_id", Integer, nullable=False),
        *cols,
    )
    Index(f"ix_{name}_event", table.c.session_id, table.c.event_id)
    return table


messages = _entity(
    "messages",
    "message_id",
    Column("role", S, nullable=False),
    Column("content_blob", S, nullable=False),
    Column("chars", Integer, nullable=False),
    Column("turn_id", Integer),
    Column("call_id", Integer),
    Column("at", S, nullable=False),
)

turns = _entity(
    "turns",
    "turn_id",
    Column("status", S, nullable=False),
    Column("head_before", S),
    Column("head_after", S),
    Column("final_blob", S),
    Column("final_preview", S),
    Column("started_at", S, nullable=False),
    Column("ended_at", S),
)

evals = _entity(
    "evals",
    "eval_id",
    Column("turn_id", Integer),
    Column("message_id", Integer),
    Column("status", S, nullable=False),
    Column("code_blob", S, nullable=False),
    Column("result_blob", S),
    Column("error_blob", S),
    Column("final_blob", S),
    Column("at", S, nullable=False),
)

calls = _entity(
    "calls",
    "call_id",
    Column("turn_id", Integer),
    Column("eval_id", Integer),
    Column("call_type", S, nullable=False),
    Column("status", S, nullable=False),
    Column("model", S),
    Column("provider", S),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cost", Float),
    Column("request_blob", S),
    Column("response_blob", S),
    Column("result_blob", S),
    Column("error_blob", S),
    Column("child_session", S),
    Column("started_at", S, nullable=False),
    Column("ended_at", S),
)

snapshots = _entity(
    "snapshots",
    "snapshot_id",
    Column("turn_id", Integer),
    Column("vars_blob", S, nullable=False),
    Column("var_count", Integer),
    Column("at", S, nullable=False),
)

heads = _t(
    "heads",
    Column("head_id", S, primary_key=True),
    Column("session_id", S, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("event_id", Integer, nullable=False),
    Column("basis", S),
    Column("kind", S, nullable=False),
    Column("state_blob", S, nullable=False),
    Column("runtime_blob", S),
    Column("final_blob", S),
    Column("snapshot_id", Integer),
    Column("turn_id", Integer),
    Column("fingerprint", S),
    Column("at", S, nullable=False),
)
Index("ix_heads_session_seq", heads.c.session_id, heads.c.seq, unique=True)
Index("ix_heads_session_event", heads.c.session_id, heads.c.event_id)

invocations = _t(
    "invocations",
    Column("invocation_id", S, primary_key=True),
    Column("caller_session", S, nullable=False),
    Column("event_id", Integer, nullable=False),
    Column("callee_session", S, nullable=False),
    Column("invocation_type", S, nullable=False),
    Column("status", S, nullable=False),
    Column("caller_head_before", S),
    Column("caller_head_after", S),
    Column("callee_head_before", S),
    Column("callee_head_after", S),
    Column("input_blob", S),
    Column("final_blob", S),
    Column("error_blob", S),
    Column("started_at", S, nullable=False),
    Column("ended_at", S),
)
Index("ix_invocations_caller", invocations.c.caller_session, invocations.c.event_id)
Index("ix_invocations_callee", invocations.c.callee_session)

derivations = _t(
    "derivations",
    Column("derivation_id", S, primary_key=True),
    Column("kind", S, nullable=False),
    Column("target_session", S, nullable=False),
    Column("source_session", S, nullable=False),
    Column("source_head", S),
    Column("event_id", Integer, nullable=False),
    Column("at", S, nullable=False),
)
Index("ix_derivations_target", derivations.c.target_session)
Index("ix_derivations_source", derivations.c.source_session)
Index("ix_derivations_source_head", derivations.c.source_head)

aliases = _t(
    "aliases",
    Column("name", S, primary_key=True),
    Column("session_id", S, nullable=False),
    Column("at", S, nullable=False),
)
Index("ix_aliases_session", aliases.c.session_id)

blobs = _t(
    "blobs",
    Column("blob_id", S, primary_key=True),
    Column("size", Integer, nullable=False),
    Column("kind", S, nullable=False),
    Column("media_type", S, nullable=False),
    Column("created_at", S, nullable=False),
    # 'ok', or 'quarantined' once a scan found the file corrupt (a re-write clears it)
    Column("status", S, nullable=False, server_default="ok"),
    # v4, the tier: the `blob_bytes` row holding the bytes (inline), or NULL: a blob file
    Column("bytes_id", ID),
)

# -- inline payloads (v4) ---------------------------------------------------------------------

# The bytes of inline blobs, in insertion order: new rows append to the end of the B-tree
# (a table keyed by the 32-byte hash would insert at random places: half the write rate).
# The hash index is `blobs.blob_id`; `blobs.bytes_id` points here.
blob_bytes = _t(
    "blob_bytes",
    Column("bytes_id", ID, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
    without_rowid=False,
)

# inline bytes a scan found corrupt, moved out of `blob_bytes` (never deleted)
blob_quarantine = _t(
    "blob_quarantine",
    Column("quarantine_id", ID, primary_key=True, autoincrement=True),
    Column("blob_id", S, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("quarantined_at", S, nullable=False),
    without_rowid=False,
)

writes = _t(
    "writes",
    Column("write_id", S, primary_key=True),
    Column("session_id", S, nullable=False),
    Column("tx_id", Integer, nullable=False),
    Column("receipt", LargeBinary, nullable=False),
    Column("committed_at", S, nullable=False),
    # blake3 of the canonical JSON of the write's {"session", "events"} (v3): the same write id
    # re-sent with other content is a conflict, not a duplicate. NULL (before v3): unknown.
    Column("digest", S),
)

rejected_writes = _t(
    "rejected_writes",
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("write_id", S),
    Column("session_id", S),
    Column("error_type", S, nullable=False),
    Column("message", S, nullable=False),
    Column("event_index", Integer),
    Column("field", S),
    Column("error", LargeBinary, nullable=False),
    Column("at", S, nullable=False),
    without_rowid=False,
)
Index("ix_rejected_write_id", rejected_writes.c.write_id)

tx = _t(
    "tx",
    Column("tx_id", Integer, primary_key=True, autoincrement=False),
    Column("write_id", S, nullable=False),
    Column("session_id", S, nullable=False),
    Column("at", S, nullable=False),
    # The Datalog facts of this write: canonical JSON of a list of entity maps.
    Column("facts", LargeBinary, nullable=False),
    without_rowid=False,
)

#: each per-session id kind whose high-water mark `counters` keeps -> (table, id column)
ID_KINDS: dict[str, tuple[Table, str]] = {
    "event": (events, "event_id"),
    "message": (messages, "message_id"),
    "turn": (turns, "turn_id"),
    "eval": (evals, "eval_id"),
    "call": (calls, "call_id"),
    "snapshot": (snapshots, "snapshot_id"),
    "head": (heads, "seq"),
}

# -- integrity (v2) -------------------------------------------------------------------------

# incremental blob scans find "blobs added since the last scan" by creation time
Index("ix_blobs_created", blobs.c.created_at)

integrity_reports = _t(
    "integrity_reports",
    Column("report_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", S, nullable=False),  # blob-scan/full | blob-scan/incremental | consistency
    Column("partition", S, nullable=False),
    Column("status", S, nullable=False),  # completed | interrupted
    Column("started_at", S, nullable=False),
    Column("finished_at", S),
    Column("ok", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("warnings", Integer, nullable=False),
    Column("counts", S, nullable=False),  # JSON object
    Column("findings", LargeBinary, nullable=False),  # JSON list of findings
    without_rowid=False,
)
Index("ix_integrity_reports_kind", integrity_reports.c.kind, integrity_reports.c.report_id)

# where each blob scan (per mode and partition) stands, so a crashed scan resumes
integrity_progress = _t(
    "integrity_progress",
    Column("scan_key", S, primary_key=True),  # "<kind>:<partition>"
    Column("run_started_at", S),  # the run in progress (None: no run in progress)
    Column("cursor", S),  # the last top-level blob directory the run in progress has finished
    Column("partial", LargeBinary),  # JSON: the run's report so far, its plan, its pending orphans
    Column("new_since", S),  # incremental: blobs created after this are "new"
    Column("roll_cursor", S),  # incremental: the rolling re-hash has covered ids up to here
    Column("roll_started_at", S),  # incremental: when the current rolling cycle began
    Column("updated_at", S, nullable=False),
)

# -- forgetting (v5) -------------------------------------------------------------------------

# what remains of a deleted session: its id (never reused), when, why, and how much went
tombstones = _t(
    "tombstones",
    Column("session_id", S, primary_key=True),
    Column("deleted_at", S, nullable=False),
    Column("reason", S),
    Column("write_id", S, nullable=False),  # the delete's write id (its receipt is in `writes`)
    Column("tx_id", Integer, nullable=False),  # the delete's tx batch (it retracts the facts)
    Column("mode", S, nullable=False),  # plain | cascade | detach
    Column("counts", S, nullable=False),  # JSON object: rows removed per table, payloads, bytes
    Column("bytes_freed", Integer, nullable=False),
)
# a session's tx batches, found without scanning the log (the delete excises them)
Index("ix_tx_session", tx.c.session_id)

# -- versions -------------------------------------------------------------------------------


def _v1(conn: Connection) -> None:
    metadata.create_all(conn)


def _v2(conn: Connection) -> None:
    """Integrity: scan history, scan progress, and an index on blobs.created_at."""
    metadata.create_all(conn, tables=[integrity_reports, integrity_progress])
    for index in blobs.indexes:
        index.create(conn, checkfirst=True)


def _v3(conn: Connection) -> None:
    """Write-id conflicts: the content digest of each committed write (NULL for older rows)."""
    columns = dialect.of(conn).column_names(conn, "writes")
    if "digest" not in columns:  # a v1 store created by this sessiondb's `_v1` already has it
        conn.execute(text("ALTER TABLE writes ADD COLUMN digest VARCHAR"))


def _v4(conn: Connection) -> None:
    """Inline payloads: `blob_bytes`, `blob_quarantine` and the tier of each blob
    (`blobs.bytes_id`, NULL: a file). Existing blobs stay files (`sessiondb blobs pack`)."""
    metadata.create_all(conn, tables=[blob_bytes, blob_quarantine])
    columns = dialect.of(conn).column_names(conn, "blobs")
    if "bytes_id" not in columns:  # a v1 store created by this sessiondb's `_v1` already has it
        conn.execute(text("ALTER TABLE blobs ADD COLUMN bytes_id BIGINT"))


def _v5(conn: Connection) -> None:
    """Forgetting: `tombstones` of deleted sessions and an index of tx batches by session."""
    metadata.create_all(conn, tables=[tombstones])
    for index in tx.indexes:
        index.create(conn, checkfirst=True)


#: forward-only: MIGRATIONS[n] takes a store from version n to n + 1, in place
MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5]
SCHEMA_VERSION = len(MIGRATIONS)


def open_engine(path: Path, synchronous: str = "FULL", busy_timeout_ms: int = 10_000, *,
                readonly: bool = False) -> Engine:
    """An engine on store.sqlite with WAL, the chosen `synchronous`, and explicit BEGINs.

    pysqlite's own implicit transaction handling would break savepoints, so autocommit is
    turned off at the driver and SQLAlchemy's `begin` emits BEGIN itself (the recipe from
    SQLAlchemy's SQLite dialect documentation). `readonly`: SQLite opens the file with
    `mode=ro` (it cannot create, change or migrate it; a missing file is an error, never
    a new database) and the journal mode is left as it is."""
    if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
        raise ValueError(f"sqlite_synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
    if readonly:
        uri = f"file:{quote(str(path.absolute()))}?mode=ro"
        engine = create_engine("sqlite://", poolclass=QueuePool, pool_size=8, max_overflow=8,
                               creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))
    else:
        engine = create_engine(f"sqlite:///{path}", pool_size=8, max_overflow=8)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if readonly:
            cur.execute("PRAGMA query_only=1")
        else:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
            cur.execute("PRAGMA secure_delete=ON")  # deleted rows leave no bytes in free pages (forget/)
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA cache_size=-65536")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql(conn.info.pop("begin", "BEGIN"))

    return engine


def open_postgres_engine(url: URL, *, readonly: bool = False) -> Engine:
    """An engine on a PostgreSQL store (psycopg 3). `readonly`: every session of it is read-only
    (`default_transaction_read_only`), whatever the role may do."""
    args: dict[str, object] = {"application_name": "sessiondb", "connect_timeout": 10}
    args = {k: v for k, v in args.items() if k not in url.query}  # the URL's own parameters win
    if readonly:
        given = url.query.get("options", "")
        args["options"] = f"{given if isinstance(given, str) else ' '.join(given)} -c default_transaction_read_only=on"
    # (and the driver's own flag: SQLAlchemy resets a pooled connection's `read_only` to False)
    return create_engine(url, pool_size=8, max_overflow=8, hide_parameters=True, connect_args=args,
                         execution_options={"postgresql_readonly": True} if readonly else {})


def found_version(conn: Connection, path: Path | str, *, empty_ok: bool) -> int:
    """The schema version of the open store (0: a new, empty database, if `empty_ok`).

    Raises NotAStoreError for a file that is not SQLite, an empty database (unless
    `empty_ok`) and another program's database (tables, but not sessiondb's `meta`): a
    writer must never add sessiondb's tables to someone else's database."""
    backend = dialect.of(conn)
    tables = backend.table_names(conn)
    if not tables:
        if empty_ok:
            return 0
        raise NotAStoreError(str(path), f"an empty {backend.label} database: no sessiondb tables")
    row = conn.execute(text("SELECT value FROM meta WHERE key='schema_version'")).first() if "meta" in tables else None
    if row is None:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise NotAStoreError(str(path), f"a {backend.label} database of another program, with tables {shown}")
    return int(row[0])


@contextmanager
def not_a_database_is_reported(path: Path | str, engine: Engine | None = None) -> Iterator[None]:
    """SQLite's own refusal of a file ("file is not a database", "database disk image is
    malformed") as a NotAStoreError. OperationalError (busy, disk I/O, ...) is not about
    what the file is, and passes through; so does everything PostgreSQL says."""
    try:
        yield
    except DatabaseError as exc:
        if isinstance(exc, OperationalError) or (engine is not None and not dialect.of(engine).is_sqlite):
            raise
        raise NotAStoreError(str(path), str(exc.orig)) from None


def check_readable(engine: Engine, path: Path | str, root: str) -> int:
    """The version of a store opened read-only; refuses anything it could not read as it is."""
    with not_a_database_is_reported(path, engine), engine.connect() as conn, conn.begin():
        found = found_version(conn, path, empty_ok=False)
    if found != SCHEMA_VERSION:
        raise SchemaVersionError(root, found, SCHEMA_VERSION)
    return found


def check_adoptable(path: Path) -> None:
    """Before a writable open: an existing store.sqlite must be SQLite and empty or sessiondb's.

    Read through a read-only engine, because the writable one's first connection switches
    the file to WAL, which would already change another program's database."""
    if not path.exists():
        return
    probe = open_engine(path, readonly=True)
    try:
        with not_a_database_is_reported(path), probe.connect() as conn, conn.begin():
            found_version(conn, path, empty_ok=True)
    finally:
        probe.dispose()


def migrate(engine: Engine, root: str, path: Path | str | None = None) -> int:
    """Bring the schema to SCHEMA_VERSION; refuse a store written by a newer sessiondb, and
    a database that is not a sessiondb store (`found_version`)."""
    path = path or Path(root) / "store.sqlite"
    backend = dialect.of(engine)
    with not_a_database_is_reported(path, engine), engine.connect() as conn:
        if backend.write_begin:
            conn.info["begin"] = backend.write_begin
        with conn.begin():
            backend.lock_schema(conn)
            found = found_version(conn, path, empty_ok=True)
            if found > SCHEMA_VERSION:
                raise SchemaVersionError(root, found, SCHEMA_VERSION)
            for version in range(found, SCHEMA_VERSION):
                MIGRATIONS[version](conn)
            if found != SCHEMA_VERSION:
                verb, tail = backend.replace(meta)
                conn.execute(
                    text(f"{verb} INTO meta(key, value) VALUES ('schema_version', :v){tail}"),
                    {"v": str(SCHEMA_VERSION)},
                )
    return SCHEMA_VERSION
