"""The worker roles of the fleet and how each one runs: queue, pool, concurrency, prefetch.

    sessiondb worker writer      ==  celery -A sessiondb.tasks worker -Q writes -P solo ...
    sessiondb worker indexer     ==  celery -A sessiondb.tasks worker -Q index -P solo ...

Owns the role table and starts a Celery worker for a role in this process. It must
never change what a task does.
"""

from __future__ import annotations

import os
import socket

from celery import Celery

from sessiondb.tasks.celery_app import run_celery

ROLES: dict[str, dict[str, str]] = {
    # One consumer, commits in the consumer thread; the prefetch window is widened by the strategy.
    "writer": {"queue": "writes", "pool": "solo", "concurrency": "1", "prefetch": "4"},
    # Index batches apply in order: one at a time.
    "indexer": {"queue": "index", "pool": "solo", "concurrency": "1", "prefetch": "1"},
    # One scan at a time per scanner: a scan forks its own hashing processes (Settings.scan_workers),
    # and several scanners share a scan by blob-prefix partition.
    "scanner": {"queue": "integrity", "pool": "solo", "concurrency": "1", "prefetch": "1"},
    "reader": {"queue": "reads", "pool": "threads", "concurrency": "4", "prefetch": "4"},
}


def node_name(role: str, pid: int) -> str:
    """The Celery node name of the `role` worker running as process `pid` on this host
    (`sessiondb up` pings its workers by these names)."""
    return f"{role}-{pid}@{socket.gethostname()}"


def worker_argv(role: str, loglevel: str = "INFO") -> list[str]:
    spec = ROLES[role]
    return [
        "worker", "-Q", spec["queue"], "-P", spec["pool"], "-c", spec["concurrency"],
        "--prefetch-multiplier", spec["prefetch"], "-n", node_name(role, os.getpid()),
        "--without-mingle", "--without-gossip", "-E", "-l", loglevel,
    ]


def run_worker(app: Celery, role: str, loglevel: str = "INFO") -> int:
    """Run the worker of `role` in this process until it is stopped; returns its exit code."""
    return run_celery(app, worker_argv(role, loglevel))
