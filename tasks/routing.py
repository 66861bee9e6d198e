"""Queues and task routing: the one place that says which task goes to which queue.

Owns the queue names and the name -> queue routes. It must never define tasks or talk
to a broker.
"""

from __future__ import annotations

from kombu import Exchange, Queue

WRITES, INDEX, INTEGRITY, READS = "writes", "index", "integrity", "reads"
QUEUES = (WRITES, INDEX, INTEGRITY, READS)

#: stable task names (part of the public surface: producers and beat send by name)
COMMIT = "writes.commit"
INDEX_CATCH_UP = "index.catch_up"
INDEX_REBUILD = "index.rebuild"
INDEX_STATUS = "index.status"
INTEGRITY_SCAN = "integrity.scan"
INTEGRITY_CHECK = "integrity.check"
#: retention (then blob GC) and blob GC alone run on the scanner too (docs/retention.md)
INTEGRITY_RETENTION = "integrity.retention"
INTEGRITY_GC = "integrity.gc"
READS_PREFIX = "reads."

# Each queue has its own direct exchange of the same name. Left unnamed, kombu/Celery would bind
# every queue to the default exchange (named after `task_default_queue`, i.e. `reads`), and the
# worker banner would show `exchange=reads` for the writes queue: routing still worked, by key
# alone, but the declared topology said something else than this table.
TASK_QUEUES = tuple(Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES)
TASK_ROUTES = {f"{queue}.*": {"queue": queue, "routing_key": queue} for queue in QUEUES}
