"""One open `Store` per worker process, for the tasks that read the store root.

Owns the per-process cache of opened stores. It must never write: only the writer
(workers/) commits, under its lock.
"""

from __future__ import annotations

import threading

from celery import Celery

from sessiondb.store import Store

from .celery_app import settings_of

_lock = threading.Lock()
_stores: dict[str, Store] = {}


def store_for(app: Celery) -> Store:
    settings = settings_of(app)
    with _lock:
        store = _stores.get(settings.root)
        if store is None:
            store = _stores[settings.root] = Store.open(settings.root, settings)
        return store
