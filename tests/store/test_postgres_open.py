"""Opening a PostgreSQL store (`SESSIONDB_DATABASE_URL`), and reading it: the URL is checked and
never shown with its password, a fresh database starts at the current schema version, another
program's database is refused, and a reader reads each view in one REPEATABLE READ, READ ONLY
snapshot that never blocks the writer."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from sessiondb.store import NotAStoreError, ReadOnlyStoreError, Settings, Store
from sessiondb.store.errors import DatabaseUrlError
from sessiondb.store.rows.schema import SCHEMA_VERSION


def settings(root, url: str) -> Settings:
    return Settings.from_env(root=str(root), database_url=url)


@pytest.mark.parametrize(("url", "why"), [
    ("mysql://u:secret@h/db", "only PostgreSQL URLs"),
    ("postgresql://u:secret@h", "names no database"),
    ("not a url at all", "not a database URL"),
])
def test_a_bad_database_url_is_one_clear_error_without_the_password(tmp_path, url, why):
    with pytest.raises(DatabaseUrlError, match=why) as caught:
        Store.open(tmp_path / "s", settings(tmp_path / "s", url))
    assert "secret" not in str(caught.value)
    assert not (tmp_path / "s").exists()  # nothing was created


def test_a_fresh_database_starts_at_the_current_version_and_the_password_is_never_shown(tmp_path, pg_database_url):
    password = make_url(pg_database_url).password
    with Store.open(tmp_path / "s", settings(tmp_path / "s", pg_database_url)) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert password not in store.database and "***" in store.database
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar() \
                == str(SCHEMA_VERSION)
        assert not (tmp_path / "s" / "store.sqlite").exists()  # the root keeps only blob files
    with Store.open(tmp_path / "other-root", settings(tmp_path / "other-root", pg_database_url)) as again:
        assert again.schema_version == SCHEMA_VERSION  # opened as it is: nothing to migrate


def test_another_programs_database_is_refused_and_left_alone(tmp_path, pg_database_url):
    Store.open(tmp_path / "s", settings(tmp_path / "s", pg_database_url)).close()
    with Store.open(tmp_path / "s", settings(tmp_path / "s", pg_database_url)) as store, \
            store.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA foreign_app"))
        conn.execute(text("CREATE TABLE foreign_app.accounts (id int)"))
    foreign = pg_database_url + "?options=-csearch_path%3Dforeign_app"
    try:
        with pytest.raises(NotAStoreError, match="a PostgreSQL database of another program, with tables accounts"):
            Store.open(tmp_path / "t", settings(tmp_path / "t", foreign))
    finally:
        with Store.open(tmp_path / "s", settings(tmp_path / "s", pg_database_url)) as store, \
                store.engine.begin() as conn:
            tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'foreign_app'")).all()
            conn.execute(text("DROP SCHEMA foreign_app CASCADE"))
    assert tables == [("accounts",)]  # no sessiondb table was added to it


def test_a_reader_reads_one_snapshot_read_only_and_never_blocks_the_writer(tmp_path, pg_database_url):
    root = tmp_path / "s"
    with Store.open(root, settings(root, pg_database_url)) as writer, \
            Store.open(root, settings(root, pg_database_url), readonly=True) as reader:
        writer.commit({"write_id": "w0", "session": "s", "events": [{"type": "session/started"},
                                                                    {"type": "message/added", "role": "user",
                                                                     "content": "one"}]})
        assert [m["content"] for m in reader.message_records("s", include_content=True)] == ["one"]
        with pytest.raises(ReadOnlyStoreError):
            reader.commit({"write_id": "w1", "session": "s", "events": []})
        # the connection every view of the reader runs on: one snapshot, read-only
        with reader._read() as conn, conn.begin():
            assert conn.execute(text("SHOW transaction_isolation")).scalar() == "repeatable read"
            assert conn.execute(text("SHOW transaction_read_only")).scalar() == "on"
            before = conn.execute(text("SELECT count(*) FROM messages")).scalar()
            # the writer commits while the read transaction is open: it is not blocked
            writer.commit({"write_id": "w2", "session": "s", "events": [{"type": "message/added", "role": "user",
                                                                         "content": "two"}]})
            assert conn.execute(text("SELECT count(*) FROM messages")).scalar() == before == 1
        assert [m["content"] for m in reader.message_records("s", include_content=True)] == ["one", "two"]
        with pytest.raises(Exception, match="read-only transaction"), reader.engine.begin() as conn:
            conn.execute(text("DELETE FROM messages"))  # the reader's sessions refuse writes themselves
        assert len(writer.view("s")["messages"]) == 2


def test_the_settings_never_show_the_database_password():
    shown = repr(Settings(database_url="postgresql://u:s3cr3t@db.internal/sessions"))
    assert "s3cr3t" not in shown and "postgresql://u:***@db.internal/sessions" in shown


def test_the_urls_own_parameters_are_kept_by_every_session(tmp_path, pg_database_url):
    url = pg_database_url + "?options=-cstatement_timeout%3D600000&application_name=mine"
    with Store.open(tmp_path / "s", settings(tmp_path / "s", url)) as store:
        store.commit({"write_id": "w", "session": "s", "events": [{"type": "session/started"}]})  # + the lock session
        with store.engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "10min"
            assert conn.execute(text("SHOW application_name")).scalar() == "mine"
        assert store.view("s")["session"]["session_id"] == "s"
