"""The `writes.commit` task: one broker message carrying a batch of session writes.

Arguments (stable): `writes` — a list of session writes (`{"write_id", "session",
"events"}`), and `reply_to` — the Redis list the receipts go to (see `tasks.receipts`),
or None to get them as the Celery task result. Only the single writer consumes these
messages; it does so through a custom consumer strategy (`workers.writer`) that gathers
many messages into one group commit, so `run` is never called by a worker.

This module must never open a store: it only declares the task.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from . import routing
from .celery_app import app


class CommitTask(Task):
    name = routing.COMMIT
    # Resolved by name inside the worker only, so producers never import workers/.
    Strategy = "sessiondb.workers.writer:group_commit_strategy"
    acks_late = True
    reject_on_worker_lost = True
    typing = False

    def run(self, writes: list[dict[str, Any]], reply_to: str | None = None) -> Any:
        raise RuntimeError("writes.commit runs only inside the writer worker (sessiondb worker writer)")


commit = app.register_task(CommitTask())
