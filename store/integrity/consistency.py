"""The consistency check: rows vs blobs vs head states (vs the Datalog index, when given).

    report = check_consistency(store)                 # refs, heads, counters, transcripts
    report = check_consistency(store, index=probe)    # ... plus index lag and replay mismatch

Runs every check of `checks.CHECKS` inside ONE read transaction, so the findings describe
one consistent snapshot (a write committing meanwhile cannot look like a dangling ref), and
appends the report to the scan history. It never repairs anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from . import checks, sqlite_check
from .blob_scan import Progress
from .checks import index as index_check
from .checks.index import IndexProbe
from .findings import Report
from .reports import save_report

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["IndexProbe", "check_consistency"]


def check_consistency(
    store: Store,
    index: IndexProbe | None = None,
    *,
    only: Iterable[str] | None = None,
    max_index_lag: int = 0,
    index_sample: int | None = 200,
    progress: Progress | None = None,
    save: bool = True,
) -> Report:
    """Run the checks (all, or the names in `only`: refs, heads, counters, transcript, index).

    `index`: the Datalog index as an `IndexProbe`; None skips `index/lag` and `index/mismatch`.
    `max_index_lag`: batches the index may trail the store before `index/lag` is reported.
    `index_sample`: how many batches to compare with the index (None: all)."""
    names = list(checks.CHECKS) + ["index"]
    chosen = names if only is None else list(only)
    unknown = set(chosen) - set(names)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; choose from {names}")
    report = Report("consistency", _now())
    if not sqlite_check.check_databases(store.root, report):
        # the row checks would read damaged pages: report the damage alone
        report.count("checks_skipped", len(chosen))
        report.finished_at = _now()
        if save:
            try:
                save_report(store, report)
            except Exception:  # noqa: BLE001 - a damaged database may refuse the history row too
                pass
        return report
    with store.engine.connect() as conn, conn.begin():
        for i, name in enumerate(chosen):
            if name == "index":
                if index is None:
                    report.counts["index_skipped"] = 1
                else:
                    index_check.check(conn, index, report, max_lag=max_index_lag, sample=index_sample)
            else:
                checks.CHECKS[name](conn, store.blobs, report)
            if progress is not None:
                progress(name, i + 1, len(chosen))
    report.finished_at = _now()
    if save:
        save_report(store, report)
    return report


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
