"""Fixtures for the Datalog engine tests: real SQLite files in tmp_path, DataScript via node."""

from __future__ import annotations

import pytest

from sessiondb.ops.datascript import reference
from sessiondb.store.datalog import Database


@pytest.fixture
def open_db(tmp_path):
    """Open a fresh database file with a schema; closes them all at teardown."""
    opened: list[Database] = []

    def _open(schema=None, name: str = "db.sqlite") -> Database:
        db = Database.open(tmp_path / name, schema)
        opened.append(db)
        return db

    yield _open
    for db in opened:
        db.close()


@pytest.fixture(scope="session")
def datascript():
    """The reference runner; runs ``npm ci`` once when node_modules is missing."""
    if not reference.ensure_node_modules():
        pytest.skip("node/npm not installed: DataScript differential tests need them")
    return reference.run
