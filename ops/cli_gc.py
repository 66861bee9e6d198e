"""`sessiondb gc` and `sessiondb retention`: collecting unreferenced payloads and applying retention policies.

Registered on the main `app` of `ops.cli` like ops/cli_data.py. Each command is one library
call (`store.blobs.gc.collect_garbage`, `store.forget.retention.apply_retention`) plus the
report table `scan` and `check` print; `--dry-run` opens the store read-only and changes
nothing. A user mistake prints one line.
"""

from __future__ import annotations

from pathlib import Path

import typer

from sessiondb.ops.cli_common import JsonOpt, RootOpt, app, fail, open_store
from sessiondb.ops.cli_data import show
from sessiondb.ops.progress import progress_bar
from sessiondb.store.blobs.gc import collect_garbage
from sessiondb.store.forget.retention import apply_retention


@app.command()
def gc(dry_run: bool = typer.Option(False, "--dry-run", help="show what would be collected; change nothing"),
       grace_hours: float | None = typer.Option(None, "--grace-hours",
                                                help="leave payloads younger than this alone"
                                                     " (default: SESSIONDB_GC_GRACE_HOURS)"),
       root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Collect payloads (inline and files) no row references any more, and orphan files, past the grace
    period. Safe while the fleet's writer runs; the run is stored as a `blob-gc` report."""
    if grace_hours is not None and grace_hours < 0:
        fail(f"--grace-hours must be >= 0, not {grace_hours}")
    with open_store(root, write=not dry_run) as store, progress_bar("collecting", as_json) as bar:
        report = collect_garbage(store, grace_hours=grace_hours, dry_run=dry_run, progress=bar)
    show(report, as_json)


@app.command()
def retention(dry_run: bool = typer.Option(False, "--dry-run", help="show what would be removed; change nothing"),
              keep_heads: int | None = typer.Option(None, "--keep-heads", min=0,
                                                    help="keep the last K heads of each session"
                                                         " (default: SESSIONDB_RETAIN_HEADS; 0: off)"),
              abandoned_days: float | None = typer.Option(None, "--abandoned-days", min=0,
                                                          help="drop abandoned branches older than this"
                                                               " (default: SESSIONDB_RETAIN_ABANDONED_DAYS; 0: off)"),
              stopped_days: float | None = typer.Option(None, "--stopped-days", min=0,
                                                        help="delete sessions stopped longer than this, nothing"
                                                             " depending on them (default:"
                                                             " SESSIONDB_RETAIN_STOPPED_DAYS; 0: off)"),
              gc_after: bool = typer.Option(False, "--gc", help="then collect the payloads it released (sessiondb gc)"),
              root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Apply the retention policies: drop old heads nothing needs and abandoned branches, never what a
    current branch, a fork, an invocation or a young head needs. Stored as a `retention` report."""
    with open_store(root, write=not dry_run) as store, progress_bar("retention", as_json) as bar:
        report = apply_retention(store, keep_heads=keep_heads, abandoned_days=abandoned_days,
                                 stopped_days=stopped_days, dry_run=dry_run, progress=bar)
        collected = collect_garbage(store, dry_run=dry_run) if gc_after else None
    if collected is not None and not as_json:
        show(collected, False)
    show(report, as_json)
