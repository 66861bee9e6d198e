"""Debounced "there are new commits" notifications from the writer to the indexer.

`poke()` is called after every commit and never blocks; a background thread sends at
most one `index.catch_up` per debounce interval, and always one after the last poke
(trailing edge), so the indexer is told about every commit without being flooded.
Owns only that thread; must never wait for the indexer or touch the store.
"""

from __future__ import annotations

import logging
import threading

from celery import Celery

from sessiondb.tasks import routing

log = logging.getLogger(__name__)


class IndexNotifier:
    def __init__(self, app: Celery, debounce_s: float) -> None:
        self.app, self.debounce_s = app, debounce_s
        self._wanted = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sessiondb-index-notify", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wanted.set()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            try:
                # expires: a pile of stale pokes (indexer down for a while) is dropped, not replayed
                self.app.send_task(routing.INDEX_CATCH_UP, kwargs={"reason": "commit"}, expires=300,
                                   retry=True, retry_policy={"max_retries": 3})
            except Exception:  # noqa: BLE001 - best effort: beat's periodic catch-up covers a miss
                log.warning("could not notify the indexer", exc_info=True)
            threading.Event().wait(self.debounce_s)
