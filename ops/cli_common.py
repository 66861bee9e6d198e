"""What every `sessiondb` command shares: the Typer app, `--root` / `--json`, output and errors.

cli.py (store and fleet commands) and cli_data.py (query, index, scan, check) both register
their commands on `app` here; neither imports the other's commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from sessiondb.store import Settings, Store

app = typer.Typer(add_completion=False, no_args_is_help=True, help="sessiondb: durable store for AI-agent sessions",
                  context_settings={"help_option_names": ["-h", "--help"]})
out = Console()
err = Console(stderr=True, soft_wrap=True)  # one line per error, however long

RootOpt = typer.Option(None, "--root", help="store root (default: $SESSIONDB_ROOT or ./var/store)")
JsonOpt = typer.Option(False, "--json", help="machine-readable JSON output")


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def settings_for(root: Path | None) -> Settings:
    """The settings, with `--root` (when given) over SESSIONDB_ROOT."""
    return Settings.from_env(root=str(root)) if root else Settings.from_env()


def open_store(root: Path | None, write: bool = False) -> Store:
    """The store at `--root`, read-only unless the command writes: a read command never
    creates, migrates or changes anything, and a missing root, a file that is not a
    sessiondb store or a newer schema raise a StoreError that `main` prints as one line.
    A writing command also needs an existing store (a typo'd --root must not create one)."""
    settings = settings_for(root)
    if not write:
        return Store.open(settings.root, settings, readonly=True)
    if not (Path(settings.root) / "store.sqlite").exists():
        fail(f"no store at {settings.root} (set --root or SESSIONDB_ROOT)")
    return Store.open(settings.root, settings)


def emit(data: Any, as_json: bool, title: str = "", noun: str = "results") -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    if isinstance(data, list) and not data:  # a person reads "0 results", never []
        out.print(f"0 {noun}", highlight=False)
        return
    if isinstance(data, list) and data and isinstance(data[0], dict):
        table = Table(title=title or None)
        for col in data[0]:
            table.add_column(col)
        for row in data:
            table.add_row(*["" if v is None else str(v) for v in row.values()])
        out.print(table)
    elif isinstance(data, dict):
        from sessiondb.ops.render import mapping_table  # rendering lives there; imported when used

        out.print(mapping_table(data))
    else:
        out.print_json(json.dumps(data, default=str))


def _version(value: bool) -> None:
    if value:
        from sessiondb import __version__

        out.print(f"sessiondb {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="print the version and exit"),
) -> None:
    """sessiondb: durable store for AI-agent sessions."""
