"""The index hook of the consistency check: lag behind the store, and facts that disagree with a replay.

The Datalog index plugs in through `IndexProbe`. These tests drive the hook with a small but
real derived index — the store's transaction batches applied to (identity, attribute, value)
rows in their own SQLite file, with a watermark — so lag and disagreement are made for real.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import text

from sessiondb.store import Store
from sessiondb.store.integrity import IndexProbe, check_consistency
from sessiondb.store.writes.facts import IDENTITY

IDENTITIES = set(IDENTITY.values())


def _identity(entity: dict[str, Any]) -> str:
    [attr] = [a for a in entity if a in IDENTITIES]
    return f"{attr}={entity[attr]}"


class FactIndex:
    """Last-writer-wins facts per (entity identity, attribute), plus the last applied tx id."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS facts (e TEXT, a TEXT, v TEXT, PRIMARY KEY (e, a))")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (watermark INTEGER)")
        self.db.execute("CREATE TABLE IF NOT EXISTS quarantine (tx_id INTEGER, error TEXT)")
        if self.db.execute("SELECT count(*) FROM meta").fetchone()[0] == 0:
            self.db.execute("INSERT INTO meta VALUES (0)")
        self.db.commit()

    def catch_up(self, store: Store, upto: int | None = None, refuse: frozenset[int] = frozenset()) -> None:
        """Apply the store's batches after the watermark; a batch in `refuse` is quarantined instead."""
        with store.engine.connect() as conn, conn.begin():
            rows = conn.execute(text("SELECT tx_id, facts FROM tx WHERE tx_id > :w ORDER BY tx_id"),
                                {"w": self.watermark()}).all()
        for tx_id, facts in rows:
            if upto is not None and tx_id > upto:
                break
            with self.db:
                if tx_id in refuse:
                    self.db.execute("INSERT INTO quarantine VALUES (?, 'refused by the test')", (tx_id,))
                    self.db.execute("UPDATE meta SET watermark = ?", (tx_id,))
                    continue
                for e, a, v in _facts(msgspec.json.decode(facts)):
                    self.db.execute("INSERT OR REPLACE INTO facts VALUES (?, ?, ?)", (e, a, v))
                self.db.execute("UPDATE meta SET watermark = ?", (tx_id,))

    def watermark(self) -> int:
        return self.db.execute("SELECT watermark FROM meta").fetchone()[0]

    def quarantined(self) -> list[dict[str, Any]]:
        return [{"tx_id": t, "error": e} for t, e in self.db.execute("SELECT tx_id, error FROM quarantine")]

    def mismatches(self, batches: Iterable[tuple[int, list[dict[str, Any]]]]) -> Iterator[dict[str, Any]]:
        replayed: dict[tuple[str, str], tuple[int, str]] = {}
        for tx_id, facts in batches:
            for e, a, v in _facts(facts):
                replayed[(e, a)] = (tx_id, v)
        for (e, a), (tx_id, expected) in sorted(replayed.items()):
            row = self.db.execute("SELECT v FROM facts WHERE e = ? AND a = ?", (e, a)).fetchone()
            actual = row[0] if row else None
            if actual != expected:
                yield {"tx_id": tx_id, "entity": e, "attr": a, "expected": expected, "actual": actual}


def _facts(batch: list[dict[str, Any]]) -> Iterator[tuple[str, str, str]]:
    for entity in batch:
        e = _identity(entity)
        for a, v in entity.items():
            yield e, a, json.dumps(v, sort_keys=True)


def test_without_an_index_the_index_checks_are_skipped(busy):
    report = check_consistency(busy, index=None)
    assert report.counts["index_skipped"] == 1 and not report.of_type("index/lag")


def test_an_index_that_is_caught_up_and_agrees_is_clean(busy, tmp_path):
    index = FactIndex(tmp_path / "index.sqlite")
    index.catch_up(busy)
    assert isinstance(index, IndexProbe)
    report = check_consistency(busy, index=index, index_sample=None)
    assert report.findings == []
    assert report.counts["index_batches_compared"] == report.counts["store_last_tx"] == index.watermark()


def test_an_index_behind_the_store_is_lagging(busy, tmp_path):
    index = FactIndex(tmp_path / "index.sqlite")
    last = check_consistency(busy, only=["index"], index=FactIndex(tmp_path / "probe.sqlite")).counts["store_last_tx"]
    index.catch_up(busy, upto=last - 2)
    report = check_consistency(busy, index=index, index_sample=None)
    [lag] = report.findings
    assert lag.type == "index/lag" and lag.data == {"watermark": last - 2, "last_tx": last, "lag": 2}
    assert report.ok  # lag is a warning: the indexer catches up
    assert check_consistency(busy, index=index, max_index_lag=5).findings == []


def test_index_facts_that_disagree_with_a_replay_are_a_mismatch(busy, tmp_path):
    index = FactIndex(tmp_path / "index.sqlite")
    index.catch_up(busy)
    with index.db:
        index.db.execute("UPDATE facts SET v = '\"hacked\"' WHERE e = 'session/id=a' AND a = 'session/title'")
    report = check_consistency(busy, index=index, index_sample=None)
    [finding] = report.findings
    assert finding.type == "index/mismatch" and not report.ok
    assert finding.data["entity"] == "session/id=a" and finding.data["actual"] == '"hacked"'


def test_an_index_ahead_of_the_store_is_a_mismatch(busy, tmp_path):
    index = FactIndex(tmp_path / "index.sqlite")
    index.catch_up(busy)
    with index.db:
        index.db.execute("UPDATE meta SET watermark = watermark + 10")
    [finding] = check_consistency(busy, index=index).findings
    assert finding.type == "index/mismatch" and "another store" in finding.message


def test_batches_the_indexer_quarantined_are_a_mismatch(busy, tmp_path):
    index = FactIndex(tmp_path / "index.sqlite")
    index.catch_up(busy, refuse=frozenset({3}))
    findings = check_consistency(busy, index=index, index_sample=None).findings
    quarantined = [f for f in findings if f.data.get("reason") == "quarantined"]
    assert [(f.type, f.data["tx_id"]) for f in quarantined] == [("index/mismatch", 3)]


class WatermarkOnly:
    """An index that can only say how far it got (like a bare `store.index.Index`)."""

    def __init__(self, watermark: int) -> None:
        self._watermark = watermark

    def watermark(self) -> int:
        return self._watermark


def test_an_index_that_cannot_replay_is_still_checked_for_lag(busy):
    report = check_consistency(busy, index=WatermarkOnly(1))
    assert [f.type for f in report.findings] == ["index/lag"]
    assert report.counts["index_replay_skipped"] == 1
