"""Queues and task routing: the one place that says which task goes to which queue.

Owns the queue names and the name -> queue routes. It must never define tasks or talk
to a broker.
"""

from __future__ import annotations

from kombu import Queue

WRITES, INDEX, INTEGRITY, READS = "writes", "index", "integrity", "reads"
QUEUES = (WRITES, INDEX, INTEGRITY, READS)

#: stable task names (part of the public surface: producers and beat send by name)
COMMIT = "writes.commit"
INDEX_CATCH_UP = "index.catch_up"
INDEX_REBUILD = "index.rebuild"
INDEX_STATUS = "index.status"
INTEGRITY_SCAN = "integrity.scan"
INTEGRITY_CHECK = "integrity.check"
READS_PREFIX = "reads."

TASK_QUEUES = tuple(Queue(name, routing_key=name) for name in QUEUES)
TASK_ROUTES = {f"{queue}.*": {"queue": queue, "routing_key": queue} for queue in QUEUES}
