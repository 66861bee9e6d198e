"""`integrity.*` tasks: blob scans and the consistency check of the store root (docs/spec.md, Integrity).

Names and arguments are stable: `integrity.scan(mode="incremental" | "full",
partition=None)` — without a partition and with `Settings.scan_partitions` > 1 it fans
out one task per blob-prefix partition ("i/n") so that several scanners share the work;
`integrity.check()` — rows vs blobs vs heads vs the index; `integrity.retention(then_gc=False)`
— the retention policies of the settings, then (with `then_gc`) blob GC; `integrity.gc()` —
blob GC alone (docs/retention.md). Each returns its report as a
dict (visible in Flower; also stored in the scan history by `store.integrity`). This
module must never change canonical rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sessiondb.store.blobs.gc import collect_garbage
from sessiondb.store.forget.retention import apply_retention
from sessiondb.store.index import Index
from sessiondb.store.integrity import check_consistency, scan_blobs

from . import routing
from .celery_app import app, settings_of
from .stores import store_for

MODES = ("incremental", "full")


@app.task(name=routing.INTEGRITY_SCAN, acks_late=True)
def scan(mode: str = "incremental", partition: str | None = None) -> dict[str, Any]:
    if mode not in MODES:
        return {"task": routing.INTEGRITY_SCAN, "status": "error", "message": f"mode must be one of {MODES}"}
    settings = settings_of(app)
    if partition is None and settings.scan_partitions > 1:
        n = settings.scan_partitions
        for i in range(n):
            app.send_task(routing.INTEGRITY_SCAN, kwargs={"mode": mode, "partition": f"{i}/{n}"})
        return {"task": routing.INTEGRITY_SCAN, "status": "fanned-out", "mode": mode, "partitions": n}
    report = scan_blobs(store_for(app), full=mode == "full", partition=partition,
                        grace_seconds=settings.scan_grace_seconds, period_seconds=settings.scan_period_seconds,
                        workers=settings.scan_workers or None, checkpoint_seconds=settings.scan_checkpoint_seconds)
    return report.as_dict()


@app.task(name=routing.INTEGRITY_CHECK, acks_late=True)
def check() -> dict[str, Any]:
    settings = settings_of(app)
    store = store_for(app)
    index = Index.open(settings.root) if (Path(settings.root) / "store.sqlite").exists() else None
    try:
        report = check_consistency(store, index, max_index_lag=settings.index_max_lag,
                                   index_sample=settings.index_check_sample)
    finally:
        if index is not None:
            index.close()
    return report.as_dict()


@app.task(name=routing.INTEGRITY_RETENTION, acks_late=True)
def retention(then_gc: bool = False) -> dict[str, Any]:
    """The retention policies of the settings (nothing when none is set), then blob GC if asked."""
    store = store_for(app)
    client = None

    def submit(write: dict[str, Any]) -> dict[str, Any]:  # the age policy's deletes go to the writer
        nonlocal client
        if client is None:
            from .client import SessionClient

            client = SessionClient(settings_of(app), app=app)
        return client.submit(write).receipt(timeout=600, raise_on_reject=True)

    try:
        result = apply_retention(store, submit=submit).as_dict()
    finally:
        if client is not None:
            client.close()
    if then_gc:
        result["gc"] = collect_garbage(store).as_dict()
    return result


@app.task(name=routing.INTEGRITY_GC, acks_late=True)
def gc() -> dict[str, Any]:
    return collect_garbage(store_for(app)).as_dict()
