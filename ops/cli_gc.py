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
