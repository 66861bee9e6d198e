"""The suite's own PostgreSQL server (ops/postgres_server.py), which the PostgreSQL backend is
tested against: a real server on 127.0.0.1 only, nobody in without the password, and what it
committed survives a crash (kill -9 of the postmaster and its backends).
"""

from __future__ import annotations

import shutil
import socket
import tempfile

import psycopg
import pytest
import sqlalchemy as sa
from fleet_fixtures.postgres import postgres_server  # noqa: F401 - a fixture

from sessiondb.ops.postgres_server import EmbeddedPostgres


def test_it_answers_with_its_password_only_and_on_loopback_only(postgres_server):  # noqa: F811
    engine = sa.create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW listen_addresses")).scalar() == "127.0.0.1"
            assert conn.execute(sa.text("SHOW synchronous_commit")).scalar() == "on"
            assert conn.execute(sa.text("SELECT current_database()")).scalar() == "sessiondb"
    finally:
        engine.dispose()
    for password in ("", "wrong"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host="127.0.0.1", port=postgres_server.port, user="sessiondb", password=password,
                            dbname="sessiondb", connect_timeout=5)
    # no other address of this machine reaches it
    others = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
    for address in others:
        with socket.socket() as sock, pytest.raises(OSError):
            sock.settimeout(2)
            sock.connect((address, postgres_server.port))


def test_a_committed_row_survives_kill_9_and_a_restart_on_the_same_port():
    directory = tempfile.mkdtemp(prefix="sessiondb-pg-")
    server = EmbeddedPostgres(directory).start()
    try:
        engine = sa.create_engine(server.url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (x int)"))
            conn.execute(sa.text("INSERT INTO t VALUES (42)"))
        engine.dispose()
        server.kill()
        server.start()  # crash recovery from the WAL
        engine = sa.create_engine(server.url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT x FROM t")).scalars().all() == [42]
        engine.dispose()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
