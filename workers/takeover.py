"""Give a dead writer's in-flight `writes` messages back to the queue, at once.

A `writes` message that left the queue is in one of two places (tasks/transport.py):
`writes.inflight` (moved there by the writer's BLMOVE, not yet recorded) or kombu's
`unacked` hash (recorded, not yet acknowledged). kombu restores the hash only after the
visibility timeout (an hour here). When a writer takes the writer lock, the previous
holder is dead, and only lock holders consume `writes`, so every `writes` message in
either place belonged to a dead writer: we put them back at the consuming end of the
queue, oldest first (the recorded ones were popped before the in-flight ones), using
kombu's own restore (the same transaction and mutex it uses), so order is kept and
nothing waits an hour. Duplicates are harmless: the store answers a known write id with
its stored receipt.

Owns only this restore; must never run unless the caller holds the writer lock.
"""

from __future__ import annotations

import json
import time

from celery import Celery
from kombu.transport.redis import Mutex, MutexHeld
from kombu.utils.encoding import bytes_to_str

from sessiondb.tasks.routing import WRITES
from sessiondb.tasks.transport import INFLIGHT


def restore_unacked_writes(app: Celery, attempts: int = 50) -> int:
    """Restore the unacknowledged `writes` messages; returns how many."""
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        client = channel.client
        for _ in range(attempts):
            try:
                with Mutex(client, channel.unacked_mutex_key, channel.unacked_mutex_expire):
                    return _restore(channel, client)
            except MutexHeld:
                time.sleep(0.1)
    return 0


def _restore(channel, client) -> int:
    tags = client.zrange(channel.unacked_index_key, 0, -1)  # oldest delivery first
    restored = _restore_inflight(client, {bytes_to_str(t) for t in tags})
    # Each restore pushes to the consuming end, so push the newest first: the oldest ends up next.
    for tag in reversed(tags):
        raw = client.hget(channel.unacked_key, tag)
        if raw is None:
            continue
        _message, exchange, routing_key = json.loads(raw)
        if WRITES in channel._lookup(exchange, routing_key):
            channel.qos.restore_by_tag(tag, client)
            restored += 1
    return restored


def _restore_inflight(client, recorded: set[str]) -> int:
    """Put the moved-but-unrecorded messages back (newest first, so the oldest is consumed first)."""
    restored = 0
    for item in client.lrange(INFLIGHT, 0, -1):  # BLMOVE pushes left: newest first
        tag = json.loads(item).get("properties", {}).get("delivery_tag")
        pipe = client.pipeline()
        if tag not in recorded:  # (a recorded one is restored from `unacked` below)
            pipe.rpush(WRITES, item)
            restored += 1
        pipe.lrem(INFLIGHT, 1, item).execute()
    return restored
