"""What differs between the two canonical backends, SQLite and PostgreSQL, in one place.

The store's SQL is written once; the few things the two databases spell differently are
asked of the `Dialect` of a connection: the DBAPI placeholder, "insert or replace" (SQLite's
`INSERT OR REPLACE`, PostgreSQL's `INSERT ... ON CONFLICT (key) DO UPDATE`), how a write
transaction begins (SQLite: `BEGIN IMMEDIATE`, taking the file's write lock at once), how a
schema change is serialized between processes, the tables and columns that exist, and what
a backend is called in messages. It also turns `SESSIONDB_DATABASE_URL` into the URL the
engine opens (`database_url`) and shows a URL without its password (`shown`).

Owns only these spellings; it never decides what to read or write, and never logs or
returns a password.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..errors import DatabaseUrlError

#: the schemes `SESSIONDB_DATABASE_URL` accepts; all of them open with psycopg 3
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")

#: the key of the schema lock (`pg_advisory_xact_lock`) taken while a PostgreSQL store is
#: created or migrated, so two processes opening a fresh database do not both create it
_SCHEMA_LOCK = (0x5E55_10DB, 0)


def _driver_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
    try:
        import psycopg
    except ImportError:  # the postgres extra is not installed: only SQLite stores
        return errors
    return (*errors, psycopg.Error)


#: what a DBAPI cursor raises on either backend (for code that runs SQL on the raw cursor)
DRIVER_ERRORS = _driver_errors()


@dataclass(frozen=True)
class Dialect:
    name: str  # "sqlite" | "postgresql"
    label: str  # the backend's name in messages
    mark: str  # the DBAPI placeholder of positional parameters
    write_begin: str | None  # the statement that begins a write transaction (None: the driver's own)
    false: str  # an always-false condition

    def sql(self, qmark_sql: str) -> str:
        """SQL written with `?` placeholders, in this dialect's (the SQL must hold no other `?` or `%`)."""
        return qmark_sql if self.mark == "?" else qmark_sql.replace("?", self.mark)

    @property
    def is_sqlite(self) -> bool:
        return self.name == "sqlite"

    def replace(self, table: Table) -> tuple[str, str]:
        """(verb, tail) of an insert that replaces the row with the same primary key."""
        return _replace(self.name, table)

    def table_names(self, conn: Connection) -> set[str]:
        if self.is_sqlite:
            return {name for (name,) in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
        return set(inspect(conn).get_table_names())

    def column_names(self, conn: Connection, table: str) -> set[str]:
        if self.is_sqlite:
            return {row[1] for row in conn.execute(text(f"PRAGMA table_info({table})"))}
        return {column["name"] for column in inspect(conn).get_columns(table)}

    def lock_schema(self, conn: Connection) -> None:
        """Serialize creating/migrating the schema with other processes, to the transaction's end
        (SQLite: `BEGIN IMMEDIATE` did already)."""
        if not self.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": _SCHEMA_LOCK[0], "b": _SCHEMA_LOCK[1]})


SQLITE = Dialect("sqlite", "SQLite", "?", "BEGIN IMMEDIATE", "0")
POSTGRESQL = Dialect("postgresql", "PostgreSQL", "%s", None, "FALSE")


def of(conn: Connection | Any) -> Dialect:
    """The Dialect of a connection or engine."""
    return SQLITE if conn.dialect.name == "sqlite" else POSTGRESQL


@cache
def _replace(name: str, table: Table) -> tuple[str, str]:
    if name == "sqlite":
        return "INSERT OR REPLACE", ""
    keys = [c.name for c in table.primary_key.columns]
    rest = [c.name for c in table.columns if c.name not in keys]
    update = ", ".join(f"{c} = excluded.{c}" for c in rest)
    return "INSERT", f" ON CONFLICT ({', '.join(keys)}) DO " + (f"UPDATE SET {update}" if rest else "NOTHING")


def database_url(setting: str) -> URL | None:
    """`SESSIONDB_DATABASE_URL` as the URL to open: None for the default (SQLite, store.sqlite
    in the store root), else a PostgreSQL URL on the psycopg 3 driver.

    Raises DatabaseUrlError for anything else (the message never shows the password)."""
    if not setting.strip():
        return None
    try:
        url = make_url(setting.strip())
    except ArgumentError:
        raise DatabaseUrlError("(unreadable)", "not a database URL, e.g. postgresql://user@host:5432/db") from None
    if url.drivername not in POSTGRES_SCHEMES:
        raise DatabaseUrlError(shown(url), "only PostgreSQL URLs (postgresql://...) are supported; leave it empty"
                                           " for SQLite (store.sqlite in the store root)")
    if not url.database:
        raise DatabaseUrlError(shown(url), "it names no database (postgresql://user@host:5432/DATABASE)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise DatabaseUrlError(shown(url), "the PostgreSQL driver is not installed: pip install"
                                           " 'sessiondb[postgres]'") from None
    return url.set(drivername="postgresql+psycopg")


def shown(url: URL | str | Path) -> str:
    """A database URL (or a file path) as it may be printed or logged: the password masked."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    return str(url)


def shown_setting(setting: str) -> str:
    """The `database_url` setting as it may be shown (its password masked; unreadable: a placeholder)."""
    if not setting.strip():
        return setting
    try:
        return shown(make_url(setting.strip()))
    except ArgumentError:
        return "(unreadable)"
