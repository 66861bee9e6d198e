"""The writer's consumer bootstep: take the writer lock before consuming `writes`.

Registered on every worker (by name, in `tasks.celery_app`) but active only in a worker
that consumes the `writes` queue. Its `start` runs before the consumer's event loop
fetches any message: it blocks until `<root>/writer.lock` is ours (a second writer is a
hot standby that has fetched nothing), then gives the dead predecessor's in-flight
messages back to the queue (`workers.takeover`). When the consumer restarts after a
lost broker connection, it gives back its own unacknowledged messages the same way
(they would otherwise wait for the visibility timeout). Must never commit anything.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from sessiondb.tasks.routing import WRITES

from .takeover import restore_unacked_writes
from .writer import WriterRuntime

log = logging.getLogger("sessiondb.writer")


class WriterLockStep(bootsteps.StartStopStep):
    requires = ("celery.worker.consumer.connection:Connection",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.enabled = WRITES in c.app.amqp.queues.consume_from

    def start(self, c: Any) -> None:
        runtime = WriterRuntime.of(c.app)
        if runtime.lock.held:
            # The consumer restarted (lost broker connection): messages delivered on the old
            # connection can no longer be acknowledged reliably; give them back now, and forget
            # the ones still buffered (they come again).
            runtime.generation += 1
            restored = restore_unacked_writes(c.app)
            log.warning("writer: consumer restarted, %d unacknowledged messages restored", restored)
            return
        runtime.lock.acquire(on_wait=lambda pid: log.warning(
            "standby: writer.lock in %s is held by pid %s; waiting to take over", runtime.settings.root, pid))
        restored = restore_unacked_writes(c.app)
        runtime.ready()
        # A normal start: INFO. Restored messages mean a writer died with work in flight: WARNING.
        log.log(logging.WARNING if restored else logging.INFO,
                "writer: lock taken (pid in %s), %d in-flight messages of a previous writer restored",
                runtime.lock.path, restored)
