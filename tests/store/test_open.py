"""Opening a store root: read-only opens create and migrate nothing; files that are not a
sessiondb store are reported (never adopted), on real files."""

from __future__ import annotations

import os
import sqlite3

import pytest
from helpers import message, started, write

from sessiondb.store import NoStoreError, NotAStoreError, ReadOnlyStoreError, SchemaVersionError, Store
from sessiondb.store.rows.schema import SCHEMA_VERSION


def listing(top) -> list[tuple[str, int, int]]:
    return sorted((str(p.relative_to(top)), p.stat().st_size, p.stat().st_mtime_ns) for p in top.rglob("*"))


def test_a_read_only_store_reads_and_refuses_writes(tmp_path):
    with Store.open(tmp_path / "st") as store:
        store.commit(started("s"))
        store.commit(write("s", message("hi")))
    db = (tmp_path / "st" / "store.sqlite").read_bytes()
    with Store.open_readonly(tmp_path / "st") as store:
        assert store.readonly and [m["message_id"] for m in store.message_records("s")] == [1]
        with pytest.raises(ReadOnlyStoreError, match="opened read-only"):
            store.commit(write("s", message("more")))
    assert (tmp_path / "st" / "store.sqlite").read_bytes() == db


@pytest.mark.parametrize("readonly", [True, False])
def test_a_file_that_is_not_sqlite_is_reported_never_overwritten(tmp_path, readonly):
    root = tmp_path / "st"
    root.mkdir()
    (root / "store.sqlite").write_text("notes\n")
    before = listing(tmp_path)
    with pytest.raises(NotAStoreError, match=r"store.sqlite is not a sessiondb store \(file is not a database\)"):
        Store.open(root, readonly=readonly)
    assert listing(tmp_path) == before


@pytest.mark.parametrize("readonly", [True, False])
def test_another_programs_database_is_reported_never_migrated(tmp_path, readonly):
    root = tmp_path / "st"
    root.mkdir()
    with sqlite3.connect(root / "store.sqlite") as db:
        db.execute("CREATE TABLE users (name TEXT)")
    before = listing(tmp_path)
    with pytest.raises(NotAStoreError, match="another program, with tables users") as caught:
        Store.open(root, readonly=readonly)
    assert caught.value.path == str(root / "store.sqlite")
    assert listing(tmp_path) == before
    with sqlite3.connect(root / "store.sqlite") as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]


def test_read_only_refuses_a_missing_root_an_empty_database_and_another_version(tmp_path):
    with pytest.raises(NoStoreError, match="no such directory"):
        Store.open(tmp_path / "nope", readonly=True)
    assert not (tmp_path / "nope").exists()
    (tmp_path / "bare").mkdir()
    with pytest.raises(NoStoreError, match="no store.sqlite"):
        Store.open(tmp_path / "bare", readonly=True)
    assert os.listdir(tmp_path / "bare") == []
    (tmp_path / "bare" / "store.sqlite").write_bytes(b"")
    with pytest.raises(NotAStoreError, match="an empty SQLite database"):
        Store.open(tmp_path / "bare", readonly=True)
    assert os.listdir(tmp_path / "bare") == ["store.sqlite"]
    Store.open(tmp_path / "bare").close()  # a writable open makes a store of an empty file
    with sqlite3.connect(tmp_path / "bare" / "store.sqlite") as db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with pytest.raises(SchemaVersionError, match="version 1, older .* open it for writing once") as caught:
        Store.open(tmp_path / "bare", readonly=True)
    assert (caught.value.found, caught.value.supported) == (1, SCHEMA_VERSION)
