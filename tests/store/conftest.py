"""The store's tests on both canonical backends: SQLite (store.sqlite in a tmp root) and the
suite's real PostgreSQL server (`postgres_server`, one database for these tests, emptied with
TRUNCATE before each test: cheaper than a database per test).

A test that takes `store`, `open_store` or `backend` runs once per backend. A test that is
about SQLite itself (its file, its pragmas, an old store.sqlite to migrate) is marked
`@pytest.mark.sqlite_only("why")` and runs on SQLite alone; so does everything under the
directories of `SQLITE_ONLY_DIRS`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fleet_fixtures.postgres import postgres_server  # noqa: F401 - a fixture

from sessiondb.store import Settings, Store
from sessiondb.store.rows import schema

BACKENDS = ("sqlite", "postgres")
#: test directories (under tests/store) not on PostgreSQL yet, and why
SQLITE_ONLY_DIRS = {
    "integrity": "the integrity scans read store.sqlite directly (PostgreSQL: not yet, docs/postgres.md)",
    "datalog": "the Datalog index is a local SQLite file on every backend",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only(reason): a store test that runs on SQLite alone")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    here = Path(str(metafunc.definition.fspath)).resolve().relative_to(Path(__file__).parent.resolve())
    only = metafunc.definition.get_closest_marker("sqlite_only") or (here.parts[0] in SQLITE_ONLY_DIRS)
    metafunc.parametrize("backend", ["sqlite"] if only else list(BACKENDS), indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def store_database(postgres_server):  # noqa: F811 - the fixture imported above
    """The URL of the PostgreSQL database the store tests use (created once)."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=postgres_server.port, user=postgres_server.USER,
                         password=postgres_server.password, dbname="postgres", autocommit=True) as conn:
        conn.execute('CREATE DATABASE "store_tests"')
    return postgres_server.url.rsplit("/", 1)[0] + "/store_tests"


def empty_database(url: str) -> None:
    """Every row of every store table gone (the schema kept, at its version)."""
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database,
                         autocommit=True) as conn:
        present = {name for (name,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        tables = [t.name for t in schema.metadata.sorted_tables if t.name in present and t.name != "meta"]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
        if "meta" in present:
            conn.execute("DELETE FROM meta WHERE key <> 'schema_version'")


@pytest.fixture
def pg_database_url(store_database: str) -> str:
    """The test PostgreSQL database, emptied (for tests of the PostgreSQL backend alone)."""
    empty_database(store_database)
    return store_database


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """The backend's `database_url` setting: "" (SQLite) or the emptied test database."""
    return "" if backend == "sqlite" else request.getfixturevalue("pg_database_url")


@pytest.fixture
def reset_database(database_url: str):
    """`reset_database()`: empty the test database again (PostgreSQL; SQLite: nothing to do),
    for tests that open a fresh store many times (hypothesis examples)."""
    return (lambda: empty_database(database_url)) if database_url else (lambda: None)


@pytest.fixture
def open_store(database_url: str, tmp_path: Path):
    """`open_store(root=None, readonly=False, **settings)`: a Store on the test's backend (closed after)."""
    opened: list[Store] = []

    def open_(root: str | Path | None = None, readonly: bool = False, **settings: object) -> Store:
        root = Path(root) if root is not None else tmp_path / "store"
        store = Store.open(root, Settings.from_env(root=str(root), database_url=database_url, **settings),
                           readonly=readonly)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store):
    return open_store()
