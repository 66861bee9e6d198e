"""The hook for the derived Datalog index: lag and replay disagreement (`index/lag`, `index/mismatch`).

The sessiondb index (store/index.py) plugs in through `IndexProbe`: its watermark, the
batches it quarantined, and (when it offers one) a comparison of its facts with the store's
transaction batches. When no index is given the consistency check skips these checks. This module owns choosing which
batches to compare (all, or a deterministic sample) and turning answers into findings;
the comparison itself belongs to the index. Read-only.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec
from sqlalchemy import Connection, func, select

from ...rows import schema
from ..findings import Report


@runtime_checkable
class IndexProbe(Protocol):
    """What the consistency check asks of the Datalog index (store/index.py's `Index` fits as is).

    Required: `watermark()`. Used when present:
      - `quarantined() -> [{"tx_id": ..., "error": ...}, ...]`: batches the indexer could not apply;
      - `mismatches(batches) -> iterable of mappings`: compare the index with these
        `(tx_id, facts)` batches of the store and yield one mapping per disagreement, e.g.
        `{"tx_id", "entity", "attr", "expected", "actual"}`."""

    def watermark(self) -> int:
        """The last tx id applied to the index (0 when empty)."""
        ...


def check(conn: Connection, index: IndexProbe, report: Report, *, max_lag: int = 0,
          sample: int | None = 200, seed: int = 0) -> None:
    """`sample`: compare this many batches (None: every batch up to the watermark)."""
    last_tx = conn.execute(select(func.coalesce(func.max(schema.tx.c.tx_id), 0))).scalar_one()
    watermark = index.watermark()
    report.counts["index_watermark"] = watermark
    report.counts["store_last_tx"] = last_tx
    if watermark > last_tx:
        report.add("index/mismatch", f"the index is at tx {watermark} but the store's last tx is {last_tx}: it was"
                   " built from another store or a lost write; rebuild it", watermark=watermark, last_tx=last_tx)
        return
    if last_tx - watermark > max_lag:
        report.add("index/lag", f"the index is {last_tx - watermark} batches behind the store (tx {watermark} of"
                   f" {last_tx})", watermark=watermark, last_tx=last_tx, lag=last_tx - watermark)
    quarantined = getattr(index, "quarantined", None)
    for entry in quarantined() if callable(quarantined) else []:
        data = dict(entry)
        report.add("index/mismatch", f"tx {data.get('tx_id')} is not in the index: the indexer quarantined it"
                   f" ({data.get('error')})", reason="quarantined", **data)
    mismatches = getattr(index, "mismatches", None)
    if not callable(mismatches):
        report.counts["index_replay_skipped"] = 1  # this index cannot compare itself with a replay
        return
    tx_ids = _choose(conn, watermark, sample, seed)
    report.counts["index_batches_compared"] = len(tx_ids)
    for diff in mismatches(_batches(conn, tx_ids)):
        data = dict(diff)
        report.add("index/mismatch", f"index disagrees with tx {data.get('tx_id')}: {data}", **data)


def _choose(conn: Connection, watermark: int, sample: int | None, seed: int) -> list[int]:
    ids = list(conn.execute(select(schema.tx.c.tx_id).where(schema.tx.c.tx_id <= watermark)
                            .order_by(schema.tx.c.tx_id)).scalars())
    if sample is None or len(ids) <= sample:
        return ids
    return sorted(random.Random(seed).sample(ids, sample))


def _batches(conn: Connection, tx_ids: Sequence[int]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    for start in range(0, len(tx_ids), 500):
        chunk = tx_ids[start : start + 500]
        rows = conn.execute(select(schema.tx.c.tx_id, schema.tx.c.facts).where(schema.tx.c.tx_id.in_(chunk))
                            .order_by(schema.tx.c.tx_id))
        for tx_id, facts in rows:
            yield tx_id, msgspec.json.decode(facts)
