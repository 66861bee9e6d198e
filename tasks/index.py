"""`index.*` tasks: keep the derived Datalog index (index.sqlite) caught up with the store.

Names and arguments are stable: `index.catch_up(reason="")` (sent, debounced, by the
writer after commits and by beat), `index.rebuild()` (a fresh generation swapped in
atomically), `index.status()`. Results are plain dicts (watermark, lag, quarantined
batches), visible in Flower. One indexer process runs them (`workers.roles`); the index
itself serializes concurrent catch-ups with its own lock. This module must never write
store.sqlite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessiondb.store.index import Index

from . import routing
from .celery_app import app, settings_of


def _with_index(task: str, run: Any) -> dict[str, Any]:
    root = Path(settings_of(app).root)
    if not (root / "store.sqlite").exists():
        return {"task": task, "status": "no-store", "message": f"no store at {root} yet; nothing to index"}
    with Index.open(root) as index:
        result = run(index)
        status = index.status()
    return {"task": task, "status": "ok", **result, "watermark": status["watermark"], "lag": status["lag"],
            "store_tx": status["store_tx"], "quarantined_total": len(status["quarantined"])}


@app.task(name=routing.INDEX_CATCH_UP, acks_late=True)
def catch_up(reason: str = "") -> dict[str, Any]:
    return {**_with_index(routing.INDEX_CATCH_UP, lambda index: index.catch_up()), "reason": reason}


@app.task(name=routing.INDEX_REBUILD, acks_late=True)
def rebuild() -> dict[str, Any]:
    return _with_index(routing.INDEX_REBUILD, lambda index: index.rebuild())


@app.task(name=routing.INDEX_STATUS, acks_late=True)
def status() -> dict[str, Any]:
    return _with_index(routing.INDEX_STATUS, lambda index: {})
