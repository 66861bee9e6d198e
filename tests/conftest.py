"""Shared fixtures: real store roots on disk (SQLite files and blob directories), no mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessiondb.store import Store


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "store") as s:
        yield s
