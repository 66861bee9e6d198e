"""Prometheus gauges that Flower lacks, served on Flower's own `/metrics`.

Flower exports task and worker metrics from Celery events. This collector adds, read
from Redis at scrape time: the depth of every sessiondb queue, the writer's group-commit
counters (`workers.stats`: groups, writes, committed, duplicate and rejected writes, refused messages,
commit time) and its last group's size and latency; and, when the Flower process can see
the store root, the index lag and quarantined batches (`store.index`). Registered in the
default prometheus_client registry of the Flower process. Must never write anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import redis
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily

from sessiondb.store.index import LINK, Index
from sessiondb.tasks.routing import QUEUES
from sessiondb.workers import stats

COUNTERS = {
    "groups": "group commits done by the writer",
    "writes": "writes handled by the writer (committed + duplicate + rejected)",
    "committed": "writes committed (new: a re-sent write id counts as duplicate)",
    "duplicate": "re-sent writes whose write id was already applied (their stored receipt returned, nothing written)",
    "rejected": "writes rejected (rejection receipts; also in the store's dead letters)",
    "refused": "broker messages refused (pickle or other disallowed content)",
    "commit_seconds_total": "seconds spent in group commits",
}
GAUGES = {
    "last_group_size": "writes in the last group commit",
    "last_group_messages": "broker messages in the last group commit",
    "last_commit_seconds": "duration of the last group commit",
    "last_tx_id": "newest store transaction id seen by the writer (index lag = this - index watermark)",
}


class FleetCollector:
    def __init__(self, broker_url: str, root: str | None = None) -> None:
        self.redis = redis.Redis.from_url(broker_url, socket_timeout=2)
        self.root = Path(root) if root else None

    def index_gauges(self) -> Iterator[GaugeMetricFamily]:
        """Index lag and quarantined batches, when this process can see the store root."""
        if self.root is None or not (self.root / LINK).exists():
            return
        try:
            with Index.open(self.root) as index:
                status = index.status()
        except Exception:  # noqa: BLE001 - a scrape must never fail because the index is busy
            return
        yield GaugeMetricFamily("sessiondb_index_lag", "store transactions not yet in the Datalog index",
                                value=float(status["lag"]))
        yield GaugeMetricFamily("sessiondb_index_quarantined", "transaction batches the indexer could not apply",
                                value=float(len(status["quarantined"])))

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        depth = GaugeMetricFamily("sessiondb_queue_depth", "messages waiting in a sessiondb queue", labels=["queue"])
        try:
            pipe = self.redis.pipeline(transaction=False)
            for queue in QUEUES:
                pipe.llen(queue)
            lengths = pipe.execute()
            values = stats.read(self.redis)
        except redis.RedisError:
            return
        for queue, length in zip(QUEUES, lengths, strict=True):
            depth.add_metric([queue], float(length))
        yield depth
        for name, doc in COUNTERS.items():
            metric = name.removesuffix("_total")
            counter = CounterMetricFamily(f"sessiondb_writer_{metric}", doc)
            counter.add_metric([], float(values.get(name, 0)))
            yield counter
        for name, doc in GAUGES.items():
            yield GaugeMetricFamily(f"sessiondb_writer_{name}", doc, value=float(values.get(name, 0)))
        yield from self.index_gauges()


def register(broker_url: str, root: str | None = None) -> None:
    REGISTRY.register(FleetCollector(broker_url, root))
