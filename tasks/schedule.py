"""The beat schedule: what runs periodically, with configurable intervals.

Owns the schedule entries only (task names come from `tasks.routing`). It must never
import task modules or talk to the broker.
"""

from __future__ import annotations

from typing import Any

from sessiondb.store import Settings

from . import routing


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat entries from the `SESSIONDB_BEAT_*` settings; an interval <= 0 leaves that entry out."""
    entries = {
        "index-catch-up": (routing.INDEX_CATCH_UP, settings.beat_index_catch_up_s, {}),
        "index-rebuild": (routing.INDEX_REBUILD, settings.beat_index_rebuild_s, {}),
        "integrity-scan-incremental": (routing.INTEGRITY_SCAN, settings.beat_scan_incremental_s,
                                       {"mode": "incremental"}),
        "integrity-scan-full": (routing.INTEGRITY_SCAN, settings.beat_scan_full_s, {"mode": "full"}),
        "integrity-check": (routing.INTEGRITY_CHECK, settings.beat_check_s, {}),
        # retention, then blob GC: only when a retention policy is set
        "retention-then-gc": (routing.INTEGRITY_RETENTION,
                              settings.beat_retention_s if settings.retain_heads > 0
                              or settings.retain_abandoned_days > 0 or settings.retain_stopped_days > 0 else 0,
                              {"then_gc": True}),
        "blob-gc": (routing.INTEGRITY_GC, settings.beat_gc_s, {}),
    }
    return {
        name: {"task": task, "schedule": float(every), "kwargs": kwargs, "options": {"expires": float(every)}}
        for name, (task, every, kwargs) in entries.items()
        if every > 0
    }
