"""Fixtures for integrity tests: a store with realistic traffic (`busy`), and `kit`: ways to damage it for real.

(Test modules get the helpers through the `kit` fixture: with --import-mode=importlib a
`conftest` import would find tests/conftest.py, not this file.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from sessiondb.ops.demo import agent_session, fork_and_invoke
from sessiondb.store import Store
from sessiondb.store.settings import Settings


@pytest.fixture
def store(tmp_path: Path):
    """A store whose payloads are all blob files (`inline_max_bytes=0`): these tests damage
    files on disk. The inline tier's scans and checks: tests/store/test_inline_blobs.py."""
    root = tmp_path / "store"
    with Store.open(root, Settings.from_env(root=str(root), inline_max_bytes=0)) as s:
        yield s


@pytest.fixture
def busy(store: Store) -> Store:
    """A store with two agents (turns, evals, calls, snapshots, heads, a resume), a fork and an invocation."""
    for w in agent_session("a", 3):
        store.commit(w)
    for w in agent_session("p", 2, seed=1):
        store.commit(w)
    for w in fork_and_invoke("p", "f", "c"):
        store.commit(w)
    return store


def blob_ids(store: Store) -> list[str]:
    return sql(store, "SELECT blob_id FROM blobs ORDER BY blob_id")


def sql(store: Store, query: str, **params: object) -> list:
    with store.engine.connect() as conn, conn.begin():
        rows = conn.execute(text(query), params).all()
    return [r[0] if len(r) == 1 else tuple(r) for r in rows]


def execute(store: Store, statement: str, **params: object) -> None:
    with store.engine.connect() as conn:
        conn.info["begin"] = "BEGIN IMMEDIATE"
        with conn.begin():
            conn.execute(text(statement), params)


def flip_byte(path: Path, at: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def make_old(path: Path, seconds: float = 24 * 3600) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


class Kit:
    blob_ids = staticmethod(blob_ids)
    sql = staticmethod(sql)
    execute = staticmethod(execute)
    flip_byte = staticmethod(flip_byte)
    make_old = staticmethod(make_old)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
