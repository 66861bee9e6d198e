"""Removing a deleted session's traces from Redis: stored task results that name it.

Run by the reader (`reads.scrub_results`, the fleet's own Redis user: a producer's user may not
list keys) after a `session/deleted` write commits through `SessionClient.delete_session`.
Owns only that scan; it never touches queues or the store.
"""

from __future__ import annotations

import logging

import msgspec
import redis

log = logging.getLogger(__name__)


def scrub_results(url: str, sessions: list[str]) -> int:
    """Remove the stored task results (`celery-task-meta-*`: read values, with contents) that
    name one of `sessions`, then ask Redis to rewrite its append-only file so older copies of
    them (and of the sessions' write messages) leave the disk too, where the user may (`up`'s
    users may not: Redis then rewrites it on its own schedule). Returns the keys removed."""
    backend = redis.Redis.from_url(url, socket_connect_timeout=5.0)
    needles = [msgspec.json.encode(s) for s in sessions]
    removed = 0
    try:
        for key in backend.scan_iter(match="celery-task-meta-*", count=500):
            value = backend.get(key)
            if value is not None and any(n in value for n in needles):
                removed += backend.delete(key)
        try:
            if backend.config_get("appendonly").get("appendonly") == "yes":
                backend.bgrewriteaof()
        except redis.ResponseError as exc:  # no @admin for this user, or CONFIG renamed on a managed Redis
            log.info("could not rewrite Redis's append-only file after a delete: %s", exc)
    finally:
        backend.close()
    return removed
