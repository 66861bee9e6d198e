"""Progress bars of the long commands, drawn on stderr so stdout stays the command's result.

Each bar is transient: it is gone from the terminal before the command prints its result,
so the two never share a line. On a pipe (not a terminal) there is no bar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sessiondb.ops.cli_common import err


@contextmanager
def progress_bar(label: str, quiet: bool = False, total: int | None = None) -> Iterator[Callable[..., None]]:
    """A callback `(done, total)` or `(phase, done, total)` drawing one bar on stderr."""
    if quiet or not err.is_terminal:  # on a pipe or a log file a bar is only noise (rich leaves a blank line)
        yield lambda *args: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=total)

        def update(*args: Any) -> None:
            *phase, done, total = args
            bar.update(task, completed=done, total=total or None,
                       description=f"{label} {phase[0]}" if phase else label)

        yield update
