"""`sessiondb query`, `sessiondb index ...`, `sessiondb scan`, `sessiondb check`, `sessiondb blobs pack`.

The commands over the derived index, the integrity checks and blob maintenance; registered
on the main `app` of `ops.cli` (which imports this module once its helpers exist). Each is
a library call (`store.index.Index`, `store.integrity`, `store.blobs.pack`) plus formatting
and a progress bar; a problem found makes the exit code non-zero, a user mistake prints
one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from sessiondb.ops.cli_common import JsonOpt, RootOpt, app, emit, fail, open_store, out
from sessiondb.ops.progress import progress_bar
from sessiondb.store.blobs.pack import pack_blobs
from sessiondb.store.datalog import DatalogError, Keyword, Symbol, parse_query, read_edn
from sessiondb.store.index import Index
from sessiondb.store.integrity import Report, check_consistency, scan_blobs

index_app = typer.Typer(no_args_is_help=True, help="the derived Datalog index: status, catch-up, rebuild")
app.add_typer(index_app, name="index")
blobs_app = typer.Typer(no_args_is_help=True, help="payload blobs: move small blob files inline (pack)")
app.add_typer(blobs_app, name="blobs")


def parse_arg(text: str) -> Any:
    """A query argument: EDN data (`[1 2]`, `"s1"`, `42`, `:kw`), else the text as a string."""
    try:
        value = read_edn(text)
    except DatalogError:
        return text
    if isinstance(value, Symbol):  # a bare word like agent-0 means the string
        return text
    if isinstance(value, Keyword) and not text.startswith(":"):
        return text
    return value


def column_names(edn: str, width: int) -> list[str]:
    """`?m`, `(count ?c)`, `(pull ?s)`: the find elements of a query, as column headers."""
    names = []
    for element in parse_query(edn).find:
        var = str(getattr(element, "var", "?"))
        kind = type(element).__name__
        names.append(var if kind == "FindVar" else f"({getattr(element, 'fn', 'pull')} {var})")
    return names if len(names) == width else [str(i) for i in range(width)]


@app.command()
def query(edn: str = typer.Argument(..., help="the query, e.g. '[:find ?m (count ?c) :where [?c :call/model ?m]]'"),
          args: list[str] = typer.Argument(None, help="inputs for :in, in order (EDN; bare words are strings)"),
          catch_up: bool = typer.Option(True, "--catch-up/--no-catch-up", help="bring the index up to date first"),
          root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Ask a Datalog question across all sessions (DataScript dialect)."""
    with open_store(root) as store, Index.open(store.root) as index:
        if catch_up:
            with progress_bar("indexing", as_json) as bar:
                index.catch_up(progress=bar)
        try:
            result = index.q(edn, *[parse_arg(a) for a in args or []])
        except DatalogError as exc:
            fail(f"query: {exc}")
        if not as_json and isinstance(result, list) and result and isinstance(result[0], tuple | list):
            table = Table()
            for header in column_names(edn, len(result[0])):
                table.add_column(header)
            for row in result:
                table.add_row(*[str(v) for v in row])
            out.print(table)
            out.print(f"{len(result)} rows")
        else:
            emit(result, as_json, noun="rows")


@index_app.command("status")
def index_status(root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Watermark, the store's last tx, lag and quarantined batches."""
    with open_store(root) as store, Index.open(store.root, create=False) as index:
        emit(index.status(), as_json)


@index_app.command("catch-up")
def index_catch_up(root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Apply every transaction batch committed since the watermark."""
    with open_store(root) as store, Index.open(store.root) as index, progress_bar("indexing", as_json) as bar:
        emit(index.catch_up(progress=bar), as_json)


@index_app.command("rebuild")
def index_rebuild(root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Build a fresh index from the whole log and swap it in atomically."""
    with open_store(root) as store, Index.open(store.root) as index, progress_bar("rebuilding", as_json) as bar:
        emit(index.rebuild(progress=bar), as_json)


def show(report: Report, as_json: bool) -> None:
    if as_json:
        emit(report.as_dict(), True)
    else:
        table = Table(title=f"{report.kind}: {'ok' if report.ok else 'PROBLEMS FOUND'}")
        for col in ("severity", "type", "message"):
            table.add_column(col)
        for finding in report.findings[:200]:
            table.add_row(finding.severity, finding.type, finding.message)
        out.print(table)
        if len(report.findings) > 200:
            out.print(f"... and {len(report.findings) - 200} more (use --json)")
        out.print(", ".join(f"{k}: {v}" for k, v in report.counts.items()))
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def scan(full: bool = typer.Option(False, "--full", help="re-hash every blob (default: incremental)"),
         quarantine: bool = typer.Option(False, "--quarantine",
                                         help="repair: move corrupt files to quarantine/ and record the scan"),
         collect_orphans: bool = typer.Option(False, "--collect-orphans",
                                              help="repair: delete orphan blob files past the grace period"
                                                   " (implies --quarantine)"),
         root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Re-hash blob files; find missing, corrupt, orphan and leftover files. Read-only unless a repair flag
    is given (--quarantine, --collect-orphans)."""
    repair = quarantine or collect_orphans
    with open_store(root, write=repair) as store, progress_bar("scanning", as_json) as bar:
        settings = store.settings
        report = scan_blobs(store, full=full, collect_orphans=collect_orphans, repair=repair,
                            grace_seconds=settings.scan_grace_seconds, period_seconds=settings.scan_period_seconds,
                            workers=settings.scan_workers or None, progress=bar)
    show(report, as_json)


@app.command()
def check(root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Rows vs blobs vs heads vs the index: dangling references, bad head states, counters, transcripts."""
    # read-only: the report is not added to the store's scan history, and a missing index is skipped, not made
    with (open_store(root) as store, Index.open(store.root, create=False) as index,
          progress_bar("checking", as_json) as bar):
        report = check_consistency(store, index=index if index.exists() else None,
                                   max_index_lag=store.settings.index_max_lag,
                                   index_sample=store.settings.index_check_sample, progress=bar, save=False)
    show(report, as_json)


@blobs_app.command("pack")
def blobs_pack(max_bytes: int | None = typer.Option(None, "--max-bytes", min=0,
                                                    help="pack files of at most this many bytes"
                                                         " (default: SESSIONDB_INLINE_MAX_BYTES)"),
               root: Path | None = RootOpt, as_json: bool = JsonOpt) -> None:
    """Move small blob files into store.sqlite (the inline tier), then remove the files. Takes the
    writer lock: refuses while a fleet's writer runs."""
    with open_store(root, write=True) as store, progress_bar("packing", as_json) as bar:
        counts = pack_blobs(store, max_bytes, progress=bar)
    emit(counts, as_json)
