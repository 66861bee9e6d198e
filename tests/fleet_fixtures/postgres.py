"""A real PostgreSQL server for the tests: `postgres_server` (one per test session).

Started by `sessiondb.ops.postgres_server.EmbeddedPostgres` in a fresh directory under the
system temp dir (as root the server runs as `postgres`, which must be able to reach it; a
pytest tmp_path under /tmp/pytest-of-root is not), removed at the end.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest

from sessiondb.ops.postgres_server import EmbeddedPostgres


@pytest.fixture(scope="session")
def postgres_server():
    directory = tempfile.mkdtemp(prefix="sessiondb-pg-")
    server = EmbeddedPostgres(directory).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
